from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from imapclient import IMAPClient

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ic(imap_port: int, alice: Account) -> Iterator[IMAPClient]:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="Quarterly Report", body="numbers"),
                         internal_date=datetime(2026, 1, 10, 12, tzinfo=UTC))
    store.message_append(account=alice, folder=inbox, raw=make_message(
        subject="Lunch", sender="dave@example.net", body="Pizza at noon?\r\n",
        extra_headers="Cc: erin@example.com\r\nX-Priority: 1\r\n"), flags=["\\Seen", "$Food"],
        internal_date=datetime(2026, 2, 10, 12, tzinfo=UTC))
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="Gr\u00fc\u00dfe", body="x" * 5000), flags=["\\Flagged", "\\Deleted"],
        internal_date=datetime(2026, 3, 10, 12, tzinfo=UTC))
    with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
        client.login("alice@a.test", PASSWORD)
        client.select_folder("INBOX")
        yield client


@pytest.mark.parametrize(("criteria", "expected"), [
    (["ALL"], [1, 2, 3]),
    (["SUBJECT", "report"], [1]),
    (["FROM", "DAVE@"], [2]),
    (["TO", "alice"], [1, 2, 3]),
    (["CC", "erin"], [2]),
    (["BODY", "PIZZA"], [2]),
    (["TEXT", "pizza"], [2]),
    (["TEXT", "Lunch"], [2]),
    (["HEADER", "X-Priority", "1"], [2]),
    (["HEADER", "X-Priority", ""], [2]),
    (["SEEN"], [2]),
    (["UNSEEN"], [1, 3]),
    (["FLAGGED", "DELETED"], [3]),
    (["UNDELETED"], [1, 2]),
    (["KEYWORD", "$Food"], [2]),
    (["UNKEYWORD", "$Food"], [1, 3]),
    (["LARGER", "1000"], [3]),
    (["SMALLER", "1000"], [1, 2]),
    (["BEFORE", "1-Feb-2026"], [1]),
    (["ON", "10-Feb-2026"], [2]),
    (["SINCE", "10-Feb-2026"], [2, 3]),
    (["SENTON", "28-Nov-2026"], [1, 2, 3]),
    (["OR", "SEEN", "FLAGGED"], [2, 3]),
    (["NOT", "SEEN"], [1, 3]),
    (["UID", "2:*"], [2, 3]),
    (["1,3"], [1, 3]),
    (["RECENT"], [1, 2, 3]),
    (["NEW"], [1, 3]),
    (["OLD"], []),
    (["MODSEQ", "1"], [1, 2, 3]),
])
def test_search_keys(ic: IMAPClient, criteria: list[str], expected: list[int]) -> None:
    assert ic.search(criteria) == expected


def test_search_wire_format_esearch_and_badcharset(imap_port: int, ic: IMAPClient) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "EXAMINE INBOX")
    assert raw.cmd("c", "SEARCH SEEN") == [b"* SEARCH 2\r\n", b"c OK SEARCH completed\r\n"]
    assert raw.cmd("d", "UID SEARCH RETURN (MIN MAX COUNT ALL) ALL") == [
        b'* ESEARCH (TAG "d") UID MIN 1 MAX 3 ALL 1:3 COUNT 3\r\n', b"d OK UID SEARCH completed\r\n"]
    assert raw.cmd("e", "SEARCH CHARSET KOI8-R ALL")[-1].startswith(b"e NO [BADCHARSET")
    assert raw.cmd("f", "SEARCH FROBNICATE")[-1].startswith(b"f BAD")
    raw.send(b"g SEARCH CHARSET UTF-8 SUBJECT {6}\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send("Grüß\r\n".encode())
    assert raw.until("g") == [b"* SEARCH 3\r\n", b"g OK SEARCH completed\r\n"]
    raw.close()


def test_searchres_saves_and_reuses_the_result(imap_port: int, ic: IMAPClient) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "SELECT INBOX")
    assert raw.cmd("c", "SEARCH RETURN (SAVE) UNSEEN") == [b"c OK SEARCH completed\r\n"]
    assert raw.cmd("d", "UID FETCH $ (UID)")[:2] == [b"* 1 FETCH (UID 1)\r\n", b"* 3 FETCH (UID 3)\r\n"]
    assert raw.cmd("e", "SEARCH $ FLAGGED")[0] == b"* SEARCH 3\r\n"
    assert raw.cmd("f", "SEARCH RETURN (SAVE MAX) ALL")[0] == b'* ESEARCH (TAG "f") MAX 3\r\n'
    assert raw.cmd("g", "FETCH $ (UID)")[0] == b"* 3 FETCH (UID 3)\r\n"
    raw.close()
