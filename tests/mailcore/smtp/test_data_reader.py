"""DATA read in blocks: the end marker split across writes, commands pipelined behind the dot,
an empty message, an oversized one dropped as it streams, overlong lines."""

from __future__ import annotations

import time

import pytest

from mailcore.models import Message
from mailcore.smtp.protocol import Role
from tests.mailcore.smtp.conftest import RawClient, StartServer

from .test_hostile import open_transaction

pytestmark = pytest.mark.django_db(transaction=True)


def stored() -> list[bytes]:
    return [bytes(m.blob.data) for m in Message.objects.order_by("id")]


def test_end_marker_split_over_many_writes_is_found(mx, alice) -> None:
    with RawClient(mx) as raw:
        open_transaction(raw)
        for piece in (b"From: carol@example.org\r\nSubject: slow\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
            raw.send(piece)
            time.sleep(0.05)
        assert raw.reply().startswith(b"250 2.0.0")
    assert stored()[0].endswith(b"\r\n\r\nbody\r\n")


def test_commands_pipelined_behind_the_dot_are_read_as_commands(mx, alice) -> None:
    with RawClient(mx) as raw:
        open_transaction(raw)
        raw.send(b"From: carol@example.org\r\nSubject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<carol@example.org>\r\nRCPT TO:<alice@a.test>\r\n"
                 b"DATA\r\n")
        assert raw.reply().startswith(b"250 2.0.0")
        assert raw.reply().startswith(b"250")
        assert raw.reply().startswith(b"250")
        assert raw.reply().startswith(b"354")
        raw.send(b"From: carol@example.org\r\nSubject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
        assert raw.reply().startswith(b"250 2.0.0")
        assert raw.reply().startswith(b"221")
    assert [m.split(b"\r\n\r\n", 1)[1] for m in stored()][-2:] == [b"first\r\n", b"second\r\n"]


def test_an_empty_message_is_a_lone_dot(mx, alice) -> None:
    with RawClient(mx) as raw:
        open_transaction(raw)
        raw.send(b".")
        time.sleep(0.05)
        raw.send(b"\r\nNOOP\r\n")
        reply = raw.reply()
        assert reply[:1] in (b"2", b"5"), reply  # stored or refused, but answered and in step
        assert raw.reply().startswith(b"250")


def test_an_oversized_message_is_refused_and_the_session_stays_in_step(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, max_message_size=10_000)
    with RawClient(mx) as raw:
        open_transaction(raw)
        line = b"y" * 98 + b"\r\n"
        raw.send(b"From: carol@example.org\r\nSubject: big\r\n\r\n" + line * 5000 + b".\r\nNOOP\r\n")
        assert raw.reply().startswith(b"552 5.3.4")
        assert raw.reply().startswith(b"250")
    assert stored() == []


def test_dot_stuffing_does_not_count_toward_the_size(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, max_message_size=1_000)
    body = b"From: carol@example.org\r\nSubject: dots\r\n\r\n" + b"." * 8 + b"\r\n"
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    filler = b"z" * (1_000 - len(body) - 2) + b"\r\n"
    with RawClient(mx) as raw:
        open_transaction(raw)
        raw.send(stuffed + filler + b".\r\n")
        assert raw.reply().startswith(b"250 2.0.0")
    assert len(stored()[0]) > 1_000  # trace headers came on top; the message itself fit exactly


def test_a_line_over_the_limit_is_refused_and_one_at_it_is_not(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, data_line_length=100)
    with RawClient(mx) as raw:
        open_transaction(raw)
        raw.send(b"From: carol@example.org\r\nSubject: long\r\n\r\n" + b"w" * 99 + b"\r\n.\r\n")  # 101 bytes with its CRLF
        assert raw.reply().startswith(b"500 5.5.6")
        open_transaction(raw)
        raw.send(b"From: carol@example.org\r\nSubject: long\r\n\r\n" + b"w" * 98 + b"\r\n.\r\n")
        assert raw.reply().startswith(b"250 2.0.0")
    assert len(stored()) == 1
