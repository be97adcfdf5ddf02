"""SORT and THREAD (RFC 5256): pure algorithms and over the wire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailcore import store
from mailcore.imap.ordering import base_subject, format_threads, sort_rows, thread_references
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

from .helpers import Raw


@pytest.mark.parametrize(("subject", "base"), [
    ("Re: hello", "HELLO"),
    ("RE: Fwd: [list] Re:  Hello  World (fwd)", "HELLO WORLD"),
    ("[fwd: Re: lunch]", "LUNCH"),
    ("[only blob]", "[ONLY BLOB]"),
    ("=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=", "GRÜSSE".replace("SS", "ß").upper()),
    ("", ""),
])
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


def _row(seq: int, subject: str, msgid: str, refs: list[str] | None = None, day: int = 1,
         sender: str = "a") -> dict[str, Any]:
    when = datetime(2026, 1, day, tzinfo=UTC)
    return {"uid": seq, "seq": seq, "received_at": when, "sent": when, "size": seq * 10,
            "envelope": [None, subject, [[None, None, sender, "x.test"]], None, None, None, None, None, None,
                         None],
            "message_id": msgid, "in_reply_to": [], "references": refs or []}


def test_sort_by_reverse_date_then_subject() -> None:
    rows = [_row(1, "b", "1", day=2), _row(2, "a", "2", day=2), _row(3, "c", "3", day=1)]
    assert [r["seq"] for r in sort_rows(rows, [("DATE", True), ("SUBJECT", False)])] == [2, 1, 3]
    assert [r["seq"] for r in sort_rows(rows, [("SIZE", True)])] == [3, 2, 1]


def test_thread_references_builds_trees_and_gathers_subjects() -> None:
    rows = [
        _row(1, "Plans", "p1", day=1),
        _row(2, "Re: Plans", "p2", ["p1"], day=2),
        _row(3, "Re: Plans", "p3", ["p1"], day=3),
        _row(4, "Re: Plans", "p4", ["p1", "p2"], day=4),
        _row(5, "Other", "o1", day=5),
        _row(6, "Re: Lost", "l2", ["missing"], day=6),
        _row(7, "Re: Other", "o2", [], day=7),
    ]
    assert format_threads(thread_references(rows), lambda r: r["seq"]) == "(1 (2 4)(3))(5 7)(6)"


@pytest.mark.django_db(transaction=True)
def test_sort_and_thread_over_the_wire(imap_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="Zeta", message_id="z@x"))
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="Alpha", message_id="a@x"))
    store.message_append(account=alice, folder=inbox, raw=make_message(
        subject="Re: Zeta", message_id="z2@x", extra_headers="In-Reply-To: <z@x>\r\nReferences: <z@x>\r\n"))
    raw = Raw(imap_port)
    assert b"THREAD=REFERENCES" in raw.greeting and b"SORT" in raw.greeting
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "SELECT INBOX")
    assert raw.cmd("c", "SORT (SUBJECT REVERSE ARRIVAL) UTF-8 ALL")[0] == b"* SORT 2 3 1\r\n"
    assert raw.cmd("d", "UID SORT (REVERSE SIZE) UTF-8 UID 1:2")[0].startswith(b"* SORT ")
    assert raw.cmd("e", "THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (1 3)(2)\r\n"
    assert raw.cmd("f", "THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == b"* THREAD (1 3)(2)\r\n"
    assert raw.cmd("g", "SORT (FROBS) UTF-8 ALL")[-1].startswith(b"g BAD")
    raw.close()
