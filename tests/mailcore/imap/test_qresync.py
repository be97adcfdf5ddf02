"""CONDSTORE and QRESYNC (RFC 7162) from the change log."""

from __future__ import annotations

import pytest

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)


def test_qresync_select_reports_vanished_and_changed_flags(imap_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    for _ in range(4):
        store.message_append(account=alice, folder=inbox, raw=make_message())
    inbox.refresh_from_db()
    since = inbox.highest_modseq
    store.flags_store(account=alice, folder=inbox, uids=[2], mode="add", flags=["\\Flagged"])
    store.folder_expunge(account=alice, folder=inbox, uids=[3], only_deleted=False)
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    assert raw.cmd("b", f"SELECT INBOX (QRESYNC ({inbox.uidvalidity} {since}))")[-1].startswith(b"b BAD")
    assert raw.cmd("c", "ENABLE QRESYNC")[0] == b"* ENABLED QRESYNC\r\n"
    lines = raw.cmd("d", f"SELECT INBOX (QRESYNC ({inbox.uidvalidity} {since} 1:4))")
    assert b"* VANISHED (EARLIER) 3\r\n" in lines
    assert any(line.startswith(b"* 2 FETCH (UID 2 FLAGS (\\Flagged") and b"MODSEQ (" in line for line in lines)
    lines = raw.cmd("e", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 3\r\n"
    assert len(lines) == 3 and lines[1].startswith(b"* 2 FETCH (UID 2 FLAGS")
    raw.cmd("f", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    lines = raw.cmd("g", "EXPUNGE")
    assert lines[0] == b"* VANISHED 1\r\n" and lines[-1].startswith(b"g OK [HIGHESTMODSEQ ")
    raw.close()


def test_condstore_fetch_changedsince_and_search_modseq(imap_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    for _ in range(3):
        store.message_append(account=alice, folder=inbox, raw=make_message())
    inbox.refresh_from_db()
    since = inbox.highest_modseq
    store.flags_store(account=alice, folder=inbox, uids=[3], mode="add", flags=["\\Seen"])
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    lines = raw.cmd("b", "SELECT INBOX (CONDSTORE)")
    assert any(line.startswith(b"* OK [HIGHESTMODSEQ ") for line in lines)
    lines = raw.cmd("c", f"FETCH 1:* (FLAGS) (CHANGEDSINCE {since})")
    assert len(lines) == 2 and lines[0].startswith(b"* 3 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (")
    lines = raw.cmd("d", f"SEARCH MODSEQ {since + 1}")
    assert lines[0].startswith(b"* SEARCH 3 (MODSEQ ")
    raw.close()
