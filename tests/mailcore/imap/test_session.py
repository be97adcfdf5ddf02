"""The session state machine fed parsed commands directly, with no socket."""

from __future__ import annotations

import asyncio

from mailcore.imap.parser import ParseError, parse_command
from mailcore.imap.session import DISPATCH, Session, State


class FakeIO:
    client_ip = "192.0.2.1"
    is_tls = False
    is_loopback = False
    starttls_available = True
    compressing = False

    def __init__(self) -> None:
        self.written = b""

    async def write(self, data: bytes) -> None:
        self.written += data

    async def read_line(self, timeout: float | None = None) -> bytes:
        return b"DONE\r\n"

    async def starttls(self) -> None:
        self.is_tls = True

    async def start_compression(self) -> None:
        self.compressing = True


def run(session: Session, *lines: bytes) -> bytes:
    async def go() -> None:
        for line in lines:
            try:
                await session.handle(parse_command(line))
            except ParseError as exc:
                await session.parse_error(exc)

    asyncio.run(go())
    io = session.io
    assert isinstance(io, FakeIO)
    out, io.written = io.written, b""
    return out


def test_greeting_offers_starttls_and_disables_login_without_tls() -> None:
    session = Session(FakeIO(), notifications=False)
    greeting = session.greeting()
    assert b"STARTTLS" in greeting and b"LOGINDISABLED" in greeting and b"AUTH=PLAIN" not in greeting


def test_login_without_tls_off_loopback_is_refused_without_touching_the_database() -> None:
    session = Session(FakeIO(), notifications=False)
    out = run(session, b"a LOGIN alice secret\r\n")
    assert out == b"a NO [PRIVACYREQUIRED] use STARTTLS first\r\n"
    assert session.state is State.NOT_AUTHENTICATED


def test_starttls_then_capability_drops_logindisabled() -> None:
    session = Session(FakeIO(), notifications=False)
    out = run(session, b"a STARTTLS\r\n", b"b CAPABILITY\r\n")
    assert out.startswith(b"a OK Begin TLS")
    assert b"LOGINDISABLED" not in out and b"AUTH=PLAIN" in out and b" STARTTLS" not in out


def test_selected_only_commands_are_bad_before_login() -> None:
    session = Session(FakeIO(), notifications=False)
    out = run(session, b"a FETCH 1 FLAGS\r\n", b"b UID FETCH 1 FLAGS\r\n", b"c XYZZY\r\n")
    assert out.splitlines() == [b"a BAD FETCH is not allowed in the not authenticated state",
                                b"b BAD UID FETCH is not allowed in the not authenticated state",
                                b"c BAD unknown command"]


def test_logout_says_bye_first() -> None:
    session = Session(FakeIO(), notifications=False)
    assert run(session, b"z LOGOUT\r\n") == b"* BYE logging out\r\nz OK LOGOUT completed\r\n"
    assert session.state is State.LOGOUT


def test_too_many_bad_commands_end_the_session() -> None:
    session = Session(FakeIO(), notifications=False)
    out = run(session, *[b"x FROB\r\n"] * 55)
    assert b"* BYE too many bad commands" in out and session.state is State.LOGOUT


def test_dispatch_table_covers_every_state_for_noop() -> None:
    for state in (State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED):
        assert (state, "NOOP") in DISPATCH
    assert (State.AUTHENTICATED, "FETCH") not in DISPATCH


def test_a_failing_command_gets_no_serverbug_and_the_session_goes_on() -> None:
    async def broken_db(*args: object, **kwargs: object) -> object:
        raise RuntimeError("database exploded")

    session = Session(FakeIO(), db=broken_db, notifications=False)
    session.state = State.AUTHENTICATED
    session.account = object()  # type: ignore[assignment]
    out = run(session, b'a LIST "" *\r\n', b"b NOOP\r\n")
    assert out == b"a NO [SERVERBUG] internal error; try again\r\nb OK NOOP completed\r\n"
