"""IMAP4rev2 (RFC 9051) through ENABLE, and BINARY (RFC 3516) with APPEND literal8."""

from __future__ import annotations

import imaplib

import pytest

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry
from tests.conftest import PASSWORD, make_message

from .helpers import Raw, inbox_of, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_both_revisions_are_advertised_and_rev2_is_enabled(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    caps = raw.cmd("a", "CAPABILITY")[0].split()
    assert b"IMAP4rev1" in caps and b"IMAP4rev2" in caps and b"BINARY" in caps
    raw.cmd("b", f'LOGIN alice@a.test "{PASSWORD}"')
    assert raw.cmd("c", "ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n", b"c OK ENABLE completed\r\n"]
    # Enabling it again reports nothing new (RFC 5161 §3.2).
    assert raw.cmd("d", "ENABLE imap4rev2")[0] == b"* ENABLED\r\n"
    raw.close()


def test_enable_is_refused_once_a_mailbox_is_selected(imap_port: int, alice: Account) -> None:
    raw = logged_in(imap_port)
    raw.cmd("b", "SELECT INBOX")
    reply = raw.cmd("c", "ENABLE IMAP4rev2")
    assert reply == [b"c BAD ENABLE is not allowed in the selected state\r\n"]
    raw.cmd("d", "UNSELECT")
    assert raw.cmd("e", "ENABLE IMAP4rev2")[0] == b"* ENABLED IMAP4rev2\r\n"
    raw.close()


def test_rev2_select_has_no_recent_and_lists_the_mailbox(imap_port: int, alice: Account) -> None:
    inbox = inbox_of(alice)
    store.message_append(account=alice, folder=inbox, raw=make_message())
    store.message_append(account=alice, folder=inbox, raw=make_message(), flags=["\\Seen"])
    raw = logged_in(imap_port)
    raw.cmd("b", "ENABLE IMAP4rev2")
    lines = raw.cmd("c", "SELECT INBOX")
    assert b"* 2 EXISTS\r\n" in lines and b'* LIST (\\HasNoChildren) "/" INBOX\r\n' in lines
    assert not any(b"RECENT" in line or b"UNSEEN" in line for line in lines)
    assert not any(b"\\Recent" in line for line in lines)
    assert lines[-1] == b"c OK [READ-WRITE] SELECT completed\r\n"
    assert raw.cmd("d", "FETCH 1:2 FLAGS")[:2] == [b"* 1 FETCH (FLAGS ())\r\n", b"* 2 FETCH (FLAGS (\\Seen))\r\n"]
    # A rev2 session takes no \Recent: a rev1 session still gets it.
    assert FolderEntry.objects.filter(folder=inbox, recent=True).count() == 2
    # New mail: EXISTS without RECENT.
    store.message_append(account=alice, folder=inbox, raw=make_message())
    assert raw.cmd("e", "NOOP") == [b"* 3 EXISTS\r\n", b"e OK NOOP completed\r\n"]
    # SEARCH is answered with ESEARCH; RECENT, NEW and OLD are not search keys in RFC 9051.
    assert raw.cmd("f", "SEARCH UNSEEN") == [b'* ESEARCH (TAG "f") ALL 1,3\r\n', b"f OK SEARCH completed\r\n"]
    assert raw.cmd("g", "UID SEARCH ALL")[0] == b'* ESEARCH (TAG "g") UID ALL 1:3\r\n'
    assert raw.cmd("h", "SEARCH RECENT") == [b"h BAD RECENT is not a search key in IMAP4rev2\r\n"]
    assert raw.cmd("i", "SEARCH NOT (OR SEEN NEW)") == [b"i BAD NEW is not a search key in IMAP4rev2\r\n"]
    assert raw.cmd("j", "UID SEARCH OLD")[0].startswith(b"j BAD ")
    assert raw.cmd("j2", "SORT (DATE) UTF-8 RECENT")[0].startswith(b"j2 BAD ")
    assert raw.cmd("k", "SEARCH RETURN (COUNT) ALL")[0] == b'* ESEARCH (TAG "k") COUNT 3\r\n'
    raw.close()


def test_rev1_session_still_gets_recent_and_search(imap_port: int, alice: Account) -> None:
    store.message_append(account=alice, folder=inbox_of(alice), raw=make_message())
    raw = logged_in(imap_port)
    lines = raw.cmd("b", "SELECT INBOX")
    assert b"* 1 RECENT\r\n" in lines and not any(line.startswith(b"* LIST") for line in lines)
    assert raw.cmd("c", "SEARCH RECENT")[0] == b"* SEARCH 1\r\n"
    raw.close()


def test_rev2_mailbox_names_are_utf8(imap_port: int, alice: Account) -> None:
    raw = logged_in(imap_port)
    raw.cmd("b", "ENABLE IMAP4rev2")
    name = "Entwürfe & Co".encode()
    assert raw.cmd("c", b"CREATE {%d+}\r\n" % len(name) + name)[-1] == b"c OK CREATE completed\r\n"
    assert Folder.objects.filter(account=alice, name="Entwürfe & Co").exists()
    lines = raw.cmd("d", 'LIST "" "Entw*"')
    assert b"".join(lines).startswith(b'* LIST (\\HasNoChildren) "/" {%d}\r\n' % len(name) + name)
    raw.close()
    # The same mailbox in modified UTF-7 for a rev1 session.
    raw = logged_in(imap_port)
    assert raw.cmd("b", 'LIST "" "Entw*"')[0] == b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe &- Co"\r\n'
    raw.close()


def test_rev2_create_reports_a_normalised_name_with_oldname(imap_port: int, alice: Account) -> None:
    raw = logged_in(imap_port)
    raw.cmd("b", "ENABLE IMAP4rev2")
    lines = raw.cmd("c", "CREATE inbox/Sub")
    assert lines == [b'* LIST () "/" INBOX/Sub ("OLDNAME" (inbox/Sub))\r\n', b"c OK CREATE completed\r\n"]
    raw.close()


def test_status_deleted_size_and_deleted_storage(imap_port: int, alice: Account) -> None:
    inbox = inbox_of(alice)
    store.message_append(account=alice, folder=inbox, raw=make_message(body="x" * 3000), flags=["\\Deleted"])
    store.message_append(account=alice, folder=inbox, raw=make_message())
    size = sum(len(bytes(e.message.blob.data)) for e in FolderEntry.objects.filter(folder=inbox)
               .select_related("message__blob"))
    deleted = FolderEntry.objects.get(folder=inbox, message__deleted=True).message.size
    raw = logged_in(imap_port)
    raw.cmd("b", "ENABLE IMAP4rev2")
    line = raw.cmd("c", "STATUS INBOX (MESSAGES DELETED SIZE DELETED-STORAGE)")[0]
    assert line == f"* STATUS INBOX (MESSAGES 2 DELETED 1 SIZE {size} DELETED-STORAGE {(deleted + 1023) // 1024})\r\n".encode()
    raw.close()


def test_append_literal8_with_nul_and_fetch_binary(imap_port: int, alice: Account) -> None:
    body = b"\x00\x01binary\xff"
    message = (b"From: carol@example.org\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body)
    raw = logged_in(imap_port)
    lines = raw.cmd("b", b"APPEND INBOX (\\Seen) ~{%d+}\r\n" % len(message) + message)
    assert lines[-1].startswith(b"b OK [APPENDUID ")
    stored = FolderEntry.objects.select_related("message__blob").get(folder=inbox_of(alice))
    assert bytes(stored.message.blob.data) == message and stored.message.seen
    # Synchronising literal8 too: the server asks for the bytes with a continuation.
    raw.send(b"c APPEND INBOX ~{%d}\r\n" % len(message))
    assert raw.line().startswith(b"+ ")
    raw.send(message + b"\r\n")
    assert raw.until("c")[-1].startswith(b"c OK [APPENDUID ")
    raw.cmd("d", "SELECT INBOX")
    data = b"".join(raw.cmd("e", "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[])"))
    assert b"BINARY.SIZE[1] %d" % len(body) in data
    assert b"BINARY[1] ~{%d}\r\n" % len(body) + body in data
    assert b"BINARY[] ~{%d}\r\n" % len(message) + message in data
    raw.close()


def test_imaplib_can_enable_rev2_and_search(imap_port: int, alice: Account) -> None:
    store.message_append(account=alice, folder=inbox_of(alice), raw=make_message())
    conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    conn.login("alice@a.test", PASSWORD)
    typ, _ = conn.enable("IMAP4rev2")
    assert typ == "OK" and conn.untagged_responses.pop("ENABLED") == [b"IMAP4rev2"]
    conn.select("INBOX")
    typ, _ = conn.search(None, "ALL")
    assert typ == "OK"
    assert conn.untagged_responses.get("ESEARCH")
    conn.logout()


def test_unauthenticate_forgets_the_user_the_mailbox_and_enabled_extensions(imap_port: int, alice: Account,
                                                                            bob: Account) -> None:
    store.message_append(account=alice, folder=inbox_of(alice), raw=make_message())
    raw = logged_in(imap_port)
    assert b"UNAUTHENTICATE" in raw.cmd("b", "CAPABILITY")[0]
    raw.cmd("c", "ENABLE IMAP4rev2")
    raw.cmd("d", "SELECT INBOX")
    assert raw.cmd("e", "UNAUTHENTICATE") == [b"e OK UNAUTHENTICATE completed\r\n"]
    assert raw.cmd("f", "SELECT INBOX")[-1] == b"f BAD SELECT is not allowed in the not authenticated state\r\n"
    assert raw.cmd("g", "UNAUTHENTICATE")[-1].startswith(b"g BAD")
    assert raw.cmd("h", f'LOGIN bob@b.test "{PASSWORD}"')[-1].startswith(b"h OK")
    lines = raw.cmd("i", "SELECT INBOX")
    assert b"* 0 EXISTS\r\n" in lines and b"* 0 RECENT\r\n" in lines  # bob's, and IMAP4rev1 again
    assert raw.cmd("j", "SEARCH ALL")[0] == b"* SEARCH\r\n"
    raw.close()


def test_rev2_status_and_list_status_refuse_recent(imap_port: int, alice: Account) -> None:
    store.message_append(account=alice, folder=inbox_of(alice), raw=make_message())
    raw = logged_in(imap_port)
    # IMAP4rev1 still has STATUS RECENT.
    assert raw.cmd("b", "STATUS INBOX (MESSAGES RECENT)")[0] == b"* STATUS INBOX (MESSAGES 1 RECENT 1)\r\n"
    raw.cmd("c", "ENABLE IMAP4rev2")
    assert raw.cmd("d", "STATUS INBOX (MESSAGES RECENT)") == [b"d BAD RECENT is not a STATUS item in IMAP4rev2\r\n"]
    assert raw.cmd("e", 'LIST "" "*" RETURN (STATUS (RECENT))')[-1].startswith(b"e BAD ")
    assert raw.cmd("f", "STATUS INBOX (MESSAGES UNSEEN)")[0] == b"* STATUS INBOX (MESSAGES 1 UNSEEN 1)\r\n"
    raw.close()
