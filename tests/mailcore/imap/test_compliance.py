"""RFC deviations found by compliance checking: NUL octets in literals, a selected mailbox
deleted or renamed by another session, and the response grammar of the commonest replies."""

from __future__ import annotations

import imaplib

import pytest

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

from .helpers import inbox_of, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


NUL_MESSAGE = (
    b"From: carol@example.org\r\nSubject: nul\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain\r\n\r\nbefore\x00after\r\n"
)


def test_append_of_nul_in_an_ordinary_literal_is_kept_as_dovecot_keeps_it(imap_port: int, alice: Account) -> None:
    # RFC 3501/9051 literals are CHAR8, but Dovecot 2.3 answers such an APPEND with OK, stores
    # the NUL, masks it as 0x80 in BODY[] and returns it in BINARY[] (checked against a throwaway
    # Dovecot as bench/imap.py runs it); refusing it would lose mail clients already hand over.
    raw = logged_in(imap_port)
    assert raw.cmd("b", b"APPEND INBOX {%d+}\r\n" % len(NUL_MESSAGE) + NUL_MESSAGE)[-1].startswith(b"b OK")
    raw.cmd("c", "SELECT INBOX")
    data = b"".join(raw.cmd("d", "FETCH 1 (RFC822.SIZE BODY.PEEK[] BINARY.PEEK[])"))
    assert b"RFC822.SIZE %d" % len(NUL_MESSAGE) in data
    assert b"BODY[] {%d}\r\n" % len(NUL_MESSAGE) + NUL_MESSAGE.replace(b"\x00", b"\x80") in data
    assert b"BINARY[] ~{%d}\r\n" % len(NUL_MESSAGE) + NUL_MESSAGE in data
    raw.close()


def test_nul_octets_are_sent_as_0x80_except_in_binary_fetches(imap_port: int, alice: Account) -> None:
    store.message_append(account=alice, folder=inbox_of(alice), raw=NUL_MESSAGE)
    masked = NUL_MESSAGE.replace(b"\x00", b"\x80")
    raw = logged_in(imap_port)
    raw.cmd("b", "SELECT INBOX")
    data = b"".join(raw.cmd("c", "FETCH 1 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT] BODY.PEEK[]<40.20>)"))
    # RFC 3501/9051 literals are CHAR8 (no NUL): same length, NUL replaced, as Dovecot does.
    assert b"\x00" not in data
    assert b"RFC822.SIZE %d" % len(NUL_MESSAGE) in data
    assert b"BODY[] {%d}\r\n" % len(masked) + masked in data
    assert b"BODY[TEXT] {14}\r\nbefore\x80after\r\n" in data
    assert b"BODY[]<40> {20}\r\n" + masked[40:60] in data
    data = b"".join(raw.cmd("d", "FETCH 1 (RFC822)"))
    assert b"\x00" not in data and b"RFC822 {%d}\r\n" % len(masked) + masked in data
    # BINARY (RFC 3516) is the client asking for the octets as they are: a literal8.
    data = b"".join(raw.cmd("e", "FETCH 1 (BINARY.PEEK[] BINARY.PEEK[1] BINARY.SIZE[1])"))
    assert b"BINARY[] ~{%d}\r\n" % len(NUL_MESSAGE) + NUL_MESSAGE in data
    assert b"BINARY[1] ~{14}\r\nbefore\x00after\r\n" in data
    assert b"BINARY.SIZE[1] 14" in data
    # Without NUL, BINARY is an ordinary literal.
    data = b"".join(raw.cmd("f", "FETCH 1 (BINARY.PEEK[]<0.6>)"))
    assert b"BINARY[]<0> {6}\r\nFrom: " in data
    raw.close()


def test_imaplib_fetches_a_message_with_nul(imap_port: int, alice: Account) -> None:
    store.message_append(account=alice, folder=inbox_of(alice), raw=NUL_MESSAGE)
    conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    conn.login("alice@a.test", PASSWORD)
    conn.select("INBOX")
    typ, data = conn.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][1] == NUL_MESSAGE.replace(b"\x00", b"\x80")  # type: ignore[index]
    conn.logout()


def test_deleting_the_selected_mailbox_elsewhere_ends_the_session_with_bye(
    imap_port: int, alice: Account
) -> None:
    store.folder_create(account=alice, name="Work")
    folder = Folder.objects.get(account=alice, name="Work")
    store.message_append(account=alice, folder=folder, raw=make_message())
    watcher = logged_in(imap_port)
    assert b"* 1 EXISTS\r\n" in watcher.cmd("b", "SELECT Work")
    other = logged_in(imap_port)
    assert other.cmd("c", "DELETE Work")[-1] == b"c OK DELETE completed\r\n"
    # No EXPUNGE (the messages were not expunged from a mailbox that still exists) but BYE,
    # and the connection is closed: RFC 3501 §7.1.5, as Dovecot does.
    watcher.send(b"d NOOP\r\n")
    assert watcher.line() == b"* BYE selected mailbox was deleted, have to disconnect\r\n"
    with pytest.raises(ConnectionError):
        watcher.line()
    watcher.close()
    other.close()


def test_deleting_the_selected_mailbox_ends_an_idle_session(imap_port: int, alice: Account) -> None:
    store.folder_create(account=alice, name="Work/Sub")  # Work stays as a \Noselect placeholder
    watcher = logged_in(imap_port)
    watcher.cmd("b", "SELECT Work/Sub")
    other = logged_in(imap_port)
    watcher.send(b"c IDLE\r\n")
    assert watcher.line().startswith(b"+ ")
    store.folder_create(account=alice, name="Work/Sub/Deeper")
    assert other.cmd("d", "DELETE Work/Sub")[-1] == b"d OK DELETE completed\r\n"
    assert watcher.line() == b"* BYE selected mailbox was deleted, have to disconnect\r\n"
    with pytest.raises(ConnectionError):
        watcher.line()
    watcher.close()
    other.close()


def test_a_renamed_selected_mailbox_stays_selected(imap_port: int, alice: Account) -> None:
    store.folder_create(account=alice, name="Work")
    folder = Folder.objects.get(account=alice, name="Work")
    store.message_append(account=alice, folder=folder, raw=make_message(subject="kept"))
    watcher = logged_in(imap_port)
    watcher.cmd("b", "SELECT Work")
    other = logged_in(imap_port)
    assert other.cmd("c", "RENAME Work Projects")[-1] == b"c OK RENAME completed\r\n"
    # The same mailbox (same UIDVALIDITY, same messages) under a new name: nothing expunged.
    assert watcher.cmd("d", "NOOP") == [b"d OK NOOP completed\r\n"]
    lines = watcher.cmd("e", "STORE 1 +FLAGS (\\Flagged)")
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n" and lines[-1].startswith(b"e OK")
    assert b"kept" in b"".join(watcher.cmd("f", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    # The selection follows the folder, not the old name.
    assert other.cmd("g", "SELECT Projects")[-1].startswith(b"g OK")
    watcher.close()
    other.close()


def test_subject_search_matches_decoded_and_raw_text_without_reading_blobs(
    imap_port: int, alice: Account
) -> None:
    from mailcore.models import Message

    inbox = inbox_of(alice)
    store.message_append(
        account=alice, folder=inbox, raw=make_message(subject="=?utf-8?q?Quarterly_R=C3=A9sum=C3=A9?=")
    )
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="plain report"))
    legacy = store.message_append(account=alice, folder=inbox, raw=make_message(subject="old 100% report"))
    # A message stored before the MIME parser: no ENVELOPE, no decoded subject; only its raw
    # header can match.
    Message.objects.filter(pk=legacy.message_id).update(envelope=[], subject="")
    raw = logged_in(imap_port)
    raw.cmd("b", "EXAMINE INBOX")
    needle = "résumé".encode()
    lines = raw.cmd("c", b"SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n" % len(needle) + needle)
    assert lines[0] == b"* SEARCH 1\r\n"  # decoded
    assert raw.cmd("d", "SEARCH SUBJECT Quarterly_R")[0] == b"* SEARCH 1\r\n"  # raw, encoded
    assert raw.cmd("e", "SEARCH SUBJECT REPORT")[0] == b"* SEARCH 2 3\r\n"
    assert raw.cmd("f", 'SEARCH SUBJECT "100%"')[0] == b"* SEARCH 3\r\n"
    assert raw.cmd("g", 'SEARCH NOT SUBJECT "_"')[0] == b"* SEARCH 2 3\r\n"  # LIKE specials are literal
    raw.close()


def test_own_append_store_and_expunge_report_without_missing_changes_made_elsewhere(
    imap_port: int, alice: Account
) -> None:
    from mailcore.models import FolderEntry

    inbox = inbox_of(alice)
    raw = logged_in(imap_port)
    raw.cmd("b", "SELECT INBOX")
    message = make_message(subject="mine")
    # Nothing else happened: the session reports its own message and takes \Recent itself.
    lines = raw.cmd("c", b"APPEND INBOX {%d+}\r\n" % len(message) + message)
    assert lines[:2] == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"] and lines[-1].startswith(b"c OK [APPENDUID ")
    assert not FolderEntry.objects.get(folder=inbox, uid=1).recent
    assert raw.cmd("d", "FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
    # Another writer got in first: the session's APPEND reports both messages.
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="theirs"))
    lines = raw.cmd("e", b"APPEND INBOX {%d+}\r\n" % len(message) + message)
    assert lines[0] == b"* 3 EXISTS\r\n" and lines[1] == b"* 3 RECENT\r\n"
    # A change elsewhere between the session's own STORE and EXPUNGE is still reported.
    raw.cmd("f", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Flagged"])
    lines = raw.cmd("g", "EXPUNGE")
    assert b"* 3 EXPUNGE\r\n" in lines and b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n" in lines
    assert raw.cmd("h", "NOOP") == [b"h OK NOOP completed\r\n"]
    # Without anything else, EXPUNGE answers alone.
    raw.cmd("i", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert raw.cmd("j", "EXPUNGE") == [b"* 2 EXPUNGE\r\n", b"j OK EXPUNGE completed\r\n"]
    assert raw.cmd("k", "NOOP") == [b"k OK NOOP completed\r\n"]
    # A second session sees the messages the first one took \Recent of as not recent.
    other = logged_in(imap_port)
    assert b"* 0 RECENT\r\n" in other.cmd("l", "SELECT INBOX")
    other.close()
    raw.close()


def test_strings_are_quoted_only_when_the_grammar_allows() -> None:
    from mailcore.imap import response as fmt

    assert fmt.string('a "b" \\ c\ttab') == b'"a \\"b\\" \\\\ c\ttab"'  # quoted-specials escaped
    assert fmt.string("Grüße") == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"  # 8-bit: a literal
    assert fmt.string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert fmt.string(b"nul\x00") == b"{4}\r\nnul\x80"  # a literal cannot carry NUL either
    assert fmt.string("x" * 2000).startswith(b"{2000}\r\n")
    assert fmt.astring("we]ird") == b'"we]ird"' and fmt.astring("Plain") == b"Plain"
    assert fmt.astring("") == b'""' and fmt.astring("a b") == b'"a b"'


def test_append_of_a_new_keyword_to_the_selected_mailbox_announces_flags_first(
    imap_port: int, alice: Account
) -> None:
    raw = logged_in(imap_port)
    raw.cmd("b", "SELECT INBOX")
    message = make_message()
    lines = raw.cmd("c", b"APPEND INBOX ($Project) {%d+}\r\n" % len(message) + message)
    assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Project)\r\n"
    assert lines[1].startswith(
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Project \\*)]"
    )
    assert lines[2] == b"* 1 EXISTS\r\n" and lines[-1].startswith(b"c OK [APPENDUID ")
    # Known now: a second APPEND with it announces nothing.
    lines = raw.cmd("d", b"APPEND INBOX ($Project) {%d+}\r\n" % len(message) + message)
    assert lines[0] == b"* 2 EXISTS\r\n"
    raw.close()
