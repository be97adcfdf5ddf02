"""The session state machine fed lines directly: no sockets, the real maildrop and database."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailcore import store
from mailcore.dbthreads import executor_close
from mailcore.models import Account
from mailcore.pop3.maildrop import Maildrop, is_loopback
from mailcore.pop3.session import DISPATCH, Action, Pop3Limits, Reply, Session, State
from tests.conftest import PASSWORD, make_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def maildrop() -> Iterator[Maildrop]:
    executor = ThreadPoolExecutor(max_workers=1)
    try:
        yield Maildrop(executor, leave_on_server=False)
    finally:
        executor_close(executor, 1)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def body(reply: Reply) -> bytes:
    data = b""
    if reply.body is not None:
        async for chunk in reply.body:
            data += chunk
    return data


async def feed(session: Session, *lines: bytes) -> list[tuple[bytes, bytes, Action]]:
    out = []
    for line in lines:
        reply = await session.handle_line(line)
        out.append((reply.line, await body(reply), reply.action))
    return out


def test_every_rfc_1939_command_has_a_handler_in_its_state() -> None:
    assert {name for state, name in DISPATCH if state is State.AUTHORIZATION} == {
        "CAPA", "STLS", "USER", "PASS", "AUTH", "QUIT"}
    assert {name for state, name in DISPATCH if state is State.TRANSACTION} == {
        "CAPA", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET", "QUIT"}
    assert not any(state is State.UPDATE for state, _ in DISPATCH)


def test_login_retr_dele_quit_moves_through_the_states(maildrop: Maildrop, alice: Account) -> None:
    raw = make_message(body=".dot\r\n")
    store.message_deliver(raw=raw, recipients=["alice@a.test"])

    async def scenario() -> None:
        session = Session(maildrop, client_ip="127.0.0.1", allow_plaintext_on_loopback=True)
        assert session.state is State.AUTHORIZATION
        (user, pw) = await feed(session, b"USER alice@a.test\r\n", f"PASS {PASSWORD}\r\n".encode())
        assert pw[0].startswith(b"+OK logged in; 1 messages")
        assert session.state is State.TRANSACTION
        [(line, data, _)] = await feed(session, b"RETR 1\r\n")
        assert line == f"+OK {len(raw)} octets\r\n".encode()
        assert data == raw.replace(b"\r\n.dot", b"\r\n..dot") + b".\r\n"
        [(line, _, action)] = await feed(session, b"DELE 1\r\n")
        [(line, _, action)] = await feed(session, b"QUIT\r\n")
        assert action is Action.CLOSE and b"1 messages removed" in line
        assert session.state is State.UPDATE
        await session.close()

    run(scenario())
    assert not alice.messages.exists()


def test_capabilities_follow_tls_and_the_loopback_setting(maildrop: Maildrop) -> None:
    remote = Session(maildrop, client_ip="192.0.2.7", tls_available=True, allow_plaintext_on_loopback=True)
    assert "STLS" in remote.capabilities() and "USER" not in remote.capabilities()
    remote.tls_started()
    assert "STLS" not in remote.capabilities() and "USER" in remote.capabilities()
    loopback = Session(maildrop, client_ip="::ffff:127.0.0.1", allow_plaintext_on_loopback=True)
    assert "SASL PLAIN" in loopback.capabilities()
    strict = Session(maildrop, client_ip="127.0.0.1", allow_plaintext_on_loopback=False)
    assert "USER" not in strict.capabilities()


@pytest.mark.parametrize(("ip", "loopback"), [
    ("127.0.0.1", True), ("127.5.5.5", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.1", False), ("::ffff:192.0.2.1", False), ("", False), ("nonsense", False),
])
def test_loopback_detection(ip: str, loopback: bool) -> None:
    assert is_loopback(ip) is loopback


def test_stls_asks_the_server_to_start_tls(maildrop: Maildrop) -> None:
    session = Session(maildrop, client_ip="192.0.2.7", tls_available=True)
    [(line, _, action)] = run(feed(session, b"STLS\r\n"))
    assert line == b"+OK begin TLS negotiation\r\n" and action is Action.STARTTLS
    unavailable = Session(maildrop, client_ip="192.0.2.7", tls_available=False)
    [(line, _, action)] = run(feed(unavailable, b"STLS\r\n"))
    assert line.startswith(b"-ERR [SYS/PERM]") and action is Action.NONE


def test_user_before_tls_from_a_remote_client_is_refused_with_auth_code(maildrop: Maildrop) -> None:
    session = Session(maildrop, client_ip="192.0.2.7", tls_available=True, allow_plaintext_on_loopback=True)
    [(line, _, _)] = run(feed(session, b"USER alice@a.test\r\n"))
    assert line.startswith(b"-ERR [AUTH] plaintext authentication is not allowed")


def test_sasl_continuation_takes_the_next_line_whatever_it_is(maildrop: Maildrop, alice: Account) -> None:
    session = Session(maildrop, client_ip="127.0.0.1", allow_plaintext_on_loopback=True)
    token = base64.b64encode(f"\0alice@a.test\0{PASSWORD}".encode())

    async def scenario() -> list[tuple[bytes, bytes, Action]]:
        try:  # the lock's connection belongs to this event loop: close it in the same one
            return await feed(session, b"AUTH PLAIN\r\n", token + b"\r\n")
        finally:
            await session.close()

    replies = run(scenario())
    assert replies[0][0] == b"+ \r\n"
    assert replies[1][0].startswith(b"+OK logged in")


def test_bad_commands_are_counted_and_the_last_one_closes(maildrop: Maildrop) -> None:
    session = Session(maildrop, client_ip="127.0.0.1", limits=Pop3Limits(max_bad_commands=3))
    replies = run(feed(session, b"STAT\r\n", b"HELO x\r\n", b"\x01\r\n"))
    assert replies[0][0] == b"-ERR STAT is not valid in the authorization state\r\n"
    assert replies[1][0] == b"-ERR unknown command\r\n"
    assert replies[2][2] is Action.CLOSE


def test_closing_a_session_that_never_logged_in_is_harmless(maildrop: Maildrop) -> None:
    session = Session(maildrop, client_ip="127.0.0.1")
    run(session.close())
    run(session.close())


def test_an_overlong_sasl_response_ends_the_exchange(maildrop: Maildrop, alice: Account) -> None:
    session = Session(maildrop, client_ip="127.0.0.1", allow_plaintext_on_loopback=True)
    assert run(feed(session, b"AUTH PLAIN\r\n"))[0][0] == b"+ \r\n"
    assert session.line_too_long().line == b"-ERR line too long\r\n"
    [(line, _, _)] = run(feed(session, b"CAPA\r\n"))
    assert line.startswith(b"+OK")  # a command again, not taken as the SASL response


def test_postgresql_counts_wire_sizes_exactly_like_python(alice: Account) -> None:
    from mailcore.models import Message
    from mailcore.pop3.maildrop import blob_wire_sizes
    from mailcore.pop3.wire import wire_size

    every_byte = bytes(range(256))
    bodies = [
        b"plain\r\ntext\r\n",
        b"bare\nlf\nonly\n",
        b"mixed\r\nand\nbare \r cr\r\r\n\n\r\n",
        b"back\\slash \\\\ and \\012 octal-looking\n",
        every_byte * 3 + b"\r\n" + every_byte[::-1],
        b"no final newline",
    ]
    raws = [b"Subject: sizes\r\nFrom: a@example.org\n\n" + body for body in bodies]
    for raw in raws:
        store.message_deliver(raw=raw, recipients=["alice@a.test"])
    blobs = dict(Message.objects.filter(account=alice).values_list("blob_id", "blob__data"))
    assert len(blobs) == len(raws)
    assert blob_wire_sizes(list(blobs)) == {blob_id: wire_size(bytes(data)) for blob_id, data in blobs.items()}
    assert sorted(wire_size(bytes(d)) for d in blobs.values()) == sorted(wire_size(r) for r in raws)
