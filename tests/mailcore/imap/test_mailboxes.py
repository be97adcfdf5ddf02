from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ic(imap_port: int, alice: Account) -> Iterator[IMAPClient]:
    with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
        client.login("alice@a.test", PASSWORD)
        yield client


def test_list_shows_special_use_and_children(ic: IMAPClient) -> None:
    ic.create_folder("Projects/2026")
    listed = {name: flags for flags, _, name in ic.list_folders()}
    assert b"\\Sent" in listed["Sent"] and b"\\HasNoChildren" in listed["Sent"]
    assert b"\\HasChildren" in listed["Projects"]
    assert "INBOX" in listed
    assert [n for _, _, n in ic.list_folders("", "%")].count("Projects/2026") == 0
    assert [n for _, _, n in ic.list_folders("Projects/", "%")] == ["Projects/2026"]


def test_list_with_empty_pattern_returns_the_delimiter(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    lines = raw.cmd("b", 'LIST "" ""')
    assert lines[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    raw.close()


def test_create_rename_delete_with_international_names(ic: IMAPClient) -> None:
    ic.create_folder("Entw\u00fcrfe")
    assert Folder.objects.filter(name="Entw\u00fcrfe").exists()
    assert "Entw\u00fcrfe" in [n for _, _, n in ic.list_folders()]
    ic.rename_folder("Entw\u00fcrfe", "Alt/Entw\u00fcrfe")
    assert ic.folder_exists("Alt/Entw\u00fcrfe") and not ic.folder_exists("Entw\u00fcrfe")
    ic.delete_folder("Alt/Entw\u00fcrfe")
    assert not ic.folder_exists("Alt/Entw\u00fcrfe")
    with pytest.raises(IMAPClient.Error, match="NONEXISTENT"):
        ic.delete_folder("Nope")
    with pytest.raises(IMAPClient.Error, match="ALREADYEXISTS"):
        ic.create_folder("Sent")
    with pytest.raises(IMAPClient.Error):
        ic.delete_folder("INBOX")


def test_subscribe_and_lsub(ic: IMAPClient) -> None:
    ic.create_folder("News")
    ic.unsubscribe_folder("News")
    assert "News" not in [n for _, _, n in ic.list_sub_folders()]
    ic.subscribe_folder("News")
    assert "News" in [n for _, _, n in ic.list_sub_folders()]


def test_status_counts(ic: IMAPClient, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=make_message(), flags=["\\Seen"])
    store.message_append(account=alice, folder=inbox, raw=make_message())
    status = ic.folder_status("INBOX", ["MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY", "RECENT", "SIZE",
                                        "HIGHESTMODSEQ"])
    assert status[b"MESSAGES"] == 2 and status[b"UNSEEN"] == 1 and status[b"RECENT"] == 2
    assert status[b"UIDNEXT"] == 3 and status[b"UIDVALIDITY"] == inbox.uidvalidity
    assert status[b"SIZE"] > 0


def test_select_reports_counts_and_claims_recent(ic: IMAPClient, alice: Account, imap_port: int) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=make_message(), flags=["\\Seen"])
    store.message_append(account=alice, folder=inbox, raw=make_message())
    info = ic.select_folder("INBOX")
    assert info[b"EXISTS"] == 2 and info[b"RECENT"] == 2 and info[b"UNSEEN"] == [b"2"]
    assert info[b"UIDVALIDITY"] == inbox.uidvalidity and info[b"UIDNEXT"] == 3
    assert info[b"HIGHESTMODSEQ"] >= 1 and info[b"READ-WRITE"]
    assert b"\\*" in info[b"PERMANENTFLAGS"]
    assert ic.fetch([1], ["FLAGS"])[1][b"FLAGS"] == (b"\\Seen", b"\\Recent")
    with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as other:
        other.login("alice@a.test", PASSWORD)
        assert other.select_folder("INBOX")[b"RECENT"] == 0
        examined = other.select_folder("INBOX", readonly=True)
        assert examined[b"READ-ONLY"] and examined[b"PERMANENTFLAGS"] == ()


def test_append_with_flags_and_date_returns_appenduid(client: imaplib.IMAP4, alice: Account) -> None:
    raw = make_message(subject="Appended")
    typ, data = client.append("Drafts", "(\\Draft \\Seen)", '"05-Jan-2026 10:00:00 +0100"', raw)
    assert typ == "OK" and b"APPENDUID" in data[0]
    entry = Folder.objects.get(account=alice, name="Drafts").entries.select_related("message").get()
    assert entry.message.draft and entry.message.seen and bytes(entry.message.blob.data) == raw
    assert entry.received_at.hour == 9
    # INTERNALDATE comes back in the zone it was given in (RFC 3501 §6.3.11).
    client.select("Drafts")
    typ, data = client.fetch("1", "(INTERNALDATE)")
    assert data[0] == b'1 (INTERNALDATE "05-Jan-2026 10:00:00 +0100")'
    client.append("Drafts", None, '" 7-Feb-2026 23:59:59 -0330"', raw)
    typ, data = client.fetch("2", "(INTERNALDATE)")
    assert data[0] == b'2 (INTERNALDATE "07-Feb-2026 23:59:59 -0330")'
    typ, data = client.copy("1:2", "INBOX")
    client.select("INBOX")
    typ, data = client.fetch("1:2", "(INTERNALDATE)")
    assert data == [b'1 (INTERNALDATE "05-Jan-2026 10:00:00 +0100")', b'2 (INTERNALDATE "07-Feb-2026 23:59:59 -0330")']
    typ, data = client.append("Nope", "", None, raw)
    assert typ == "NO" and b"TRYCREATE" in data[0]


def test_namespace_id_enable_and_quota(ic: IMAPClient) -> None:
    ns = ic.namespace()
    assert ns.personal[0][0] == "" and ns.personal[0][1] == "/"
    assert b"mailcore" in ic.id_({"name": "test"})[0]
    assert ic.enable("CONDSTORE") == [b"CONDSTORE"]
    roots, quotas = ic.get_quota_root("INBOX")
    assert roots.quota_roots == [""] and quotas[0].resource == "STORAGE"


def test_quota_of_a_limited_account(ic: IMAPClient, alice: Account) -> None:
    Account.objects.filter(pk=alice.pk).update(quota_bytes=10 * 1024 * 1024, used_bytes=2048)
    roots, quotas = ic.get_quota_root("INBOX")
    assert roots.quota_roots == [""]
    assert quotas[0].resource == "STORAGE" and quotas[0].usage == 2 and quotas[0].limit == 10240


def test_create_special_use(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    assert raw.cmd("b", "CREATE Old (USE (\\Archive))")[-1].startswith(b"b OK")
    assert Folder.objects.get(account=alice, name="Old").special_use == "\\Archive"
    assert raw.cmd("c", "CREATE Odd (USE (\\Frobs))")[-1].startswith(b"c NO [USEATTR]")
    raw.close()


def test_new_keyword_is_announced_with_flags(imap_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=make_message())
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "SELECT INBOX")
    lines = raw.cmd("c", "STORE 1 +FLAGS ($Todo)")
    assert lines[0].startswith(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Todo)")
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (")
    assert lines[2] == b"* 1 FETCH (FLAGS ($Todo \\Recent))\r\n"
    raw.close()


def test_list_extended_selection_return_and_status(imap_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=make_message())
    store.folder_create(account=alice, name="Lists/Dev")
    store.folder_subscribe(account=alice, name="Lists", subscribed=False)
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    lines = raw.cmd("b", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Lists*"')
    assert lines[0] == b'* LIST (\\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    assert lines[1] == b'* LIST (\\HasNoChildren \\Subscribed) "/" Lists/Dev\r\n'
    lines = raw.cmd("c", 'LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN))')
    assert lines[:4] == [b'* LIST (\\HasNoChildren) "/" INBOX\r\n', b"* STATUS INBOX (MESSAGES 1 UNSEEN 1)\r\n",
                         b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n', b"* STATUS Sent (MESSAGES 0 UNSEEN 0)\r\n"]
    lines = raw.cmd("d", 'LIST (SPECIAL-USE) "" "*"')
    assert len(lines) == 6 and all(b"\\HasNoChildren \\" in line for line in lines[:-1])
    assert raw.cmd("e", 'LIST (RECURSIVEMATCH) "" "*"')[-1].startswith(b"e BAD")
    raw.close()


def test_lsub_shows_an_unsubscribed_parent_as_noselect(imap_port: int, alice: Account) -> None:
    store.folder_create(account=alice, name="Lists/Dev")
    store.folder_subscribe(account=alice, name="Lists", subscribed=False)
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    assert b'* LSUB (\\Noselect) "/" Lists\r\n' in raw.cmd("b", 'LSUB "" "%"')
    lines = raw.cmd("c", 'LSUB "" "*"')
    assert b'* LSUB () "/" Lists/Dev\r\n' in lines and not any(b'"/" Lists\r\n' in line for line in lines)
    raw.close()


def test_delete_of_a_parent_leaves_it_noselect_for_its_children(imap_port: int, alice: Account) -> None:
    work = store.folder_create(account=alice, name="Work/Clients")
    parent = Folder.objects.get(account=alice, name="Work")
    store.message_append(account=alice, folder=parent, raw=make_message())
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    assert raw.cmd("b", "DELETE Work")[-1] == b"b OK DELETE completed\r\n"
    lines = raw.cmd("c", 'LIST "" "Work*"')
    assert lines[:2] == [b'* LIST (\\Noselect \\HasChildren) "/" Work\r\n',
                         b'* LIST (\\HasNoChildren) "/" Work/Clients\r\n']
    for tag, command in (("d", "SELECT Work"), ("e", "EXAMINE Work"), ("f", "STATUS Work (MESSAGES)")):
        reply = raw.cmd(tag, command)[-1]
        assert reply.startswith(tag.encode() + b" NO [NONEXISTENT]") and b"Noselect" in reply
    reply = raw.cmd("g", "APPEND Work {5+}\r\nhello")[-1]
    assert reply.startswith(b"g NO [TRYCREATE]")
    raw.cmd("h", "SELECT INBOX")
    store.message_append(account=alice, folder=Folder.objects.get(account=alice, name="INBOX"), raw=make_message())
    raw.cmd("i", "NOOP")
    assert raw.cmd("j", "COPY 1 Work")[-1].startswith(b"j NO [TRYCREATE]")
    assert raw.cmd("k", "MOVE 1 Work")[-1].startswith(b"k NO [TRYCREATE]")
    assert raw.cmd("l", "STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 1)\r\n"
    # A \Noselect name that still has children cannot be deleted (RFC 3501 §6.3.4).
    assert raw.cmd("m", "DELETE Work")[-1].startswith(b"m NO [HASCHILDREN]")
    # LIST-STATUS gives no STATUS for a \Noselect name (RFC 5819).
    lines = raw.cmd("n", 'LIST "" "Work" RETURN (STATUS (MESSAGES))')
    assert lines == [b'* LIST (\\Noselect \\HasChildren) "/" Work\r\n', b"n OK LIST completed\r\n"]
    # CREATE makes it a mailbox again, with a UIDVALIDITY never seen before.
    assert raw.cmd("o", "CREATE Work")[-1] == b"o OK CREATE completed\r\n"
    lines = raw.cmd("p", "SELECT Work")
    assert lines[-1].startswith(b"p OK [READ-WRITE]") and b"* 0 EXISTS\r\n" in lines
    validity = next(int(x.split()[3][:-1]) for x in lines if b"UIDVALIDITY" in x)
    assert validity > parent.uidvalidity
    # The last child going takes the placeholder with it.
    raw.cmd("q", "UNSELECT")
    raw.cmd("r", "DELETE Work")
    raw.cmd("s", "DELETE Work/Clients")
    assert raw.cmd("t", 'LIST "" "Work*"') == [b"t OK LIST completed\r\n"]
    assert not Folder.objects.filter(account=alice, name__startswith="Work").exists()
    assert work.name == "Work/Clients"
    raw.close()


def test_subscriptions_outlive_their_mailboxes(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    assert raw.cmd("b", "SUBSCRIBE Someday")[-1] == b"b OK SUBSCRIBE completed\r\n"
    raw.cmd("c", "CREATE Gone")
    raw.cmd("d", "SUBSCRIBE Gone")
    raw.cmd("e", "DELETE Gone")
    lines = raw.cmd("f", 'LSUB "" "*"')
    assert b'* LSUB (\\Noselect) "/" Someday\r\n' in lines and b'* LSUB (\\Noselect) "/" Gone\r\n' in lines
    assert b'* LSUB () "/" INBOX\r\n' in lines
    lines = raw.cmd("g", 'LIST (SUBSCRIBED) "" "*"')
    assert b'* LIST (\\NonExistent \\Subscribed) "/" Someday\r\n' in lines
    assert b'* LIST (\\NonExistent \\Subscribed) "/" Gone\r\n' in lines
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX\r\n' in lines
    # RETURN (SUBSCRIBED) without the selection option lists mailboxes only.
    lines = raw.cmd("h", 'LIST "" "*" RETURN (SUBSCRIBED)')
    assert not any(b"Someday" in line or b"Gone" in line for line in lines)
    assert b'* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" Sent\r\n' in lines
    # CREATE does not subscribe; a rename carries the subscription along.
    raw.cmd("i", "CREATE Plans")
    assert not any(b"Plans" in line for line in raw.cmd("j", 'LSUB "" "*"'))
    raw.cmd("k", "SUBSCRIBE Plans")
    raw.cmd("l", "RENAME Plans Projects")
    lines = raw.cmd("m", 'LSUB "" "*"')
    assert b'* LSUB () "/" Projects\r\n' in lines and not any(b"Plans" in line for line in lines)
    assert raw.cmd("n", "UNSUBSCRIBE Someday")[-1] == b"n OK UNSUBSCRIBE completed\r\n"
    assert not any(b"Someday" in line for line in raw.cmd("o", 'LSUB "" "*"'))
    raw.close()


def test_names_that_cannot_exist_are_nonexistent_to_look_up_and_cannot_to_create(imap_port: int,
                                                                                 alice: Account) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    assert raw.cmd("b", 'SELECT ""')[-1].startswith(b"b NO [NONEXISTENT]")
    assert raw.cmd("c", 'STATUS "a//b" (MESSAGES)')[-1].startswith(b"c NO [NONEXISTENT]")
    assert raw.cmd("d", 'CREATE "a//b"')[-1].startswith(b"d NO [CANNOT]")
    assert raw.cmd("e", 'RENAME Sent ""')[-1].startswith(b"e NO [CANNOT]")
    raw.close()
