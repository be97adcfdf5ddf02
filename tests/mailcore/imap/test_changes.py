"""STORE, COPY, MOVE, EXPUNGE and what other sessions see of them (RFC 3501 §5.5, §7.4.1)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry
from tests.conftest import PASSWORD, make_message

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def inbox(alice: Account) -> Folder:
    folder = Folder.objects.get(account=alice, name="INBOX")
    for i in range(5):
        store.message_append(account=alice, folder=folder, raw=make_message(subject=f"m{i}"))
    return folder


@pytest.fixture
def ic(imap_port: int, inbox: Folder) -> Iterator[IMAPClient]:
    with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
        client.login("alice@a.test", PASSWORD)
        client.select_folder("INBOX")
        yield client


def test_store_add_remove_replace_flags(ic: IMAPClient) -> None:
    assert ic.add_flags([1, 2], [b"\\Flagged", b"$Label1"])[1] == (b"\\Flagged", b"$Label1", b"\\Recent")
    assert ic.remove_flags([1], [b"\\Flagged"])[1] == (b"$Label1", b"\\Recent")
    assert ic.set_flags([2], [b"\\Seen"])[2] == (b"\\Seen", b"\\Recent")
    assert ic.get_flags([1, 2, 3]) == {1: (b"$Label1", b"\\Recent"), 2: (b"\\Seen", b"\\Recent"),
                                       3: (b"\\Recent",)}


def test_store_silent_and_unchangedsince(imap_port: int, inbox: Folder) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "SELECT INBOX")
    assert raw.cmd("c", "STORE 1 +FLAGS.SILENT (\\Seen)") == [b"c OK STORE completed\r\n"]
    lines = raw.cmd("d", "STORE 1,2 (UNCHANGEDSINCE 1) +FLAGS (\\Flagged)")
    assert lines[-1].startswith(b"d OK [MODIFIED 1")
    raw.close()


def test_copy_gives_copyuid_and_independent_flags(ic: IMAPClient, alice: Account) -> None:
    ic.copy([1, 2], "Archive")
    archive = Folder.objects.get(account=alice, name="Archive")
    assert sorted(FolderEntry.objects.filter(folder=archive).values_list("uid", flat=True)) == [1, 2]
    ic.add_flags([1], [b"\\Flagged"])
    ic.select_folder("Archive")
    assert b"\\Flagged" not in ic.get_flags([1])[1]


def test_move_expunges_from_source(ic: IMAPClient, alice: Account) -> None:
    ic.move([2, 3], "Trash")
    assert ic.search("ALL") == [1, 4, 5]
    assert Folder.objects.get(account=alice, name="Trash").entries.count() == 2
    with pytest.raises(IMAPClient.Error, match="TRYCREATE"):
        ic.move([1], "Nowhere")


def test_expunge_reports_sequence_numbers(imap_port: int, inbox: Folder) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "SELECT INBOX")
    raw.cmd("c", "STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    assert raw.cmd("d", "EXPUNGE") == [b"* 2 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n", b"d OK EXPUNGE completed\r\n"]
    raw.cmd("e", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert raw.cmd("f", "UID EXPUNGE 3") == [b"f OK UID EXPUNGE completed\r\n"]
    assert raw.cmd("g", "UID EXPUNGE 1") == [b"* 1 EXPUNGE\r\n", b"g OK UID EXPUNGE completed\r\n"]
    archive = Folder.objects.get(account=inbox.account, name="Archive")
    assert raw.cmd("h", "UID COPY 3:5 Archive") == [
        f"h OK [COPYUID {archive.uidvalidity} 3,5 1:2] UID COPY completed\r\n".encode()]
    lines = raw.cmd("i", "UID MOVE 5 Archive")
    assert lines == [f"* OK [COPYUID {archive.uidvalidity} 5 3] moved\r\n".encode(), b"* 2 EXPUNGE\r\n",
                     b"i OK UID MOVE completed\r\n"]
    raw.close()


def test_other_sessions_see_changes_only_where_allowed(imap_port: int, inbox: Folder, alice: Account) -> None:
    watcher = Raw(imap_port)
    watcher.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    watcher.cmd("b", "SELECT INBOX")
    store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Deleted", "\\Flagged"])
    store.folder_expunge(account=alice, folder=inbox)
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="new"))
    time.sleep(0.3)  # the events reach the server's listener
    # FETCH must not show EXPUNGE (RFC 3501 §7.4.1): sequence numbers stay put.
    lines = watcher.cmd("c", "FETCH 1:* (UID)")
    assert not any(b"EXPUNGE" in line for line in lines)
    assert b"* 6 EXISTS\r\n" in lines
    lines = watcher.cmd("d", "NOOP")
    assert lines[0] == b"* 1 EXPUNGE\r\n"
    assert lines[-1] == b"d OK NOOP completed\r\n"
    lines = watcher.cmd("e", "FETCH 1:* (UID)")
    assert lines[0].startswith(b"* 1 FETCH (UID 2)") and lines[-2].startswith(b"* 5 FETCH (UID 6)")
    watcher.close()


def test_close_expunges_deleted_and_unselect_does_not(ic: IMAPClient, inbox: Folder) -> None:
    ic.add_flags([1], [b"\\Deleted"])
    ic.unselect_folder()
    assert inbox.entries.count() == 5
    ic.select_folder("INBOX")
    ic.close_folder()
    assert inbox.entries.count() == 4


def test_examine_is_read_only(ic: IMAPClient, inbox: Folder) -> None:
    ic.select_folder("INBOX", readonly=True)
    with pytest.raises(IMAPClient.Error, match="READ-ONLY"):
        ic.add_flags([1], [b"\\Seen"])
    ic.fetch([1], ["BODY[]"])
    assert not inbox.entries.get(uid=1).message.seen


def test_recent_cannot_be_stored_or_appended(imap_port: int, inbox: Folder) -> None:
    # RFC 3501 §2.3.2: \Recent "can not be altered by the client". Dovecot answers BAD to STORE
    # and APPEND naming it; so do we, rather than ignore it, and nothing changes.
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "SELECT INBOX")
    for tag, command in (("c", "STORE 1 +FLAGS (\\Recent)"), ("d", "STORE 1 FLAGS (\\Seen \\recent)"),
                         ("e", "STORE 1 -FLAGS.SILENT (\\Recent)")):
        lines = raw.cmd(tag, command)
        assert lines[-1].startswith(f"{tag} BAD".encode()) and b"\\recent" in lines[-1].lower()
    assert raw.cmd("f", "FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
    lines = raw.cmd("g", "APPEND INBOX (\\Seen \\Recent) {5+}\r\nhello")
    assert lines[-1].startswith(b"g BAD")
    assert FolderEntry.objects.filter(folder=inbox).count() == 5
    raw.close()
