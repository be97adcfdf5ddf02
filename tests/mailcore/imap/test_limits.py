from __future__ import annotations

import time
from typing import Any

import pytest

from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)


def test_append_literal_over_the_limit_is_refused_before_the_continuation(imap_port: int, alice: Account,
                                                                          settings: Any) -> None:
    settings.MAX_MESSAGE_SIZE = 1000
    raw = Raw(imap_port)
    assert b"APPENDLIMIT=1000" in raw.greeting
    raw.login()
    raw.send(b"a APPEND INBOX {5000}\r\n")
    assert raw.line() == b"a NO [TOOBIG] literal too large\r\n"
    message = make_message()
    raw.send(b"b APPEND INBOX {%d}\r\n" % len(message))
    assert raw.line().startswith(b"+ ")
    raw.send(message + b"\r\n")
    assert raw.until("b")[-1].startswith(b"b OK [APPENDUID")
    raw.send(b"c APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    assert raw.until("c")[-1].startswith(b"c OK [APPENDUID")
    assert Folder.objects.get(account=alice, name="INBOX").entries.count() == 2
    raw.close()


def test_long_lines_before_login_close_the_connection(imap_port: int) -> None:
    raw = Raw(imap_port)
    raw.send(b"a LOGIN " + b"x" * 20000 + b"\r\n")
    assert raw.line().startswith(b"* BYE")
    raw.close()


def test_big_literal_before_login_is_refused(imap_port: int) -> None:
    raw = Raw(imap_port)
    raw.send(b"a LOGIN {100000}\r\n")
    assert raw.line().startswith(b"a BAD")
    raw.send(b"b LOGIN {100000+}\r\n")
    assert raw.line().startswith(b"* BYE")
    raw.close()


def test_pipelined_commands_after_starttls_are_not_executed(imap_port: int) -> None:
    raw = Raw(imap_port)
    raw.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert raw.line().startswith(b"a OK")
    with pytest.raises((ConnectionError, OSError)):
        for _ in range(3):
            raw.line()
    raw.close()


def test_bad_syntax_gets_bad_with_tag_or_untagged(imap_port: int) -> None:
    raw = Raw(imap_port)
    assert raw.cmd("a", 'LOGIN "unterminated')[-1].startswith(b"a BAD")
    raw.send(b"\r\n")
    assert raw.line().startswith(b"* BAD")
    raw.close()


def test_idle_connections_are_closed_sooner_before_login(transactional_db: None, alice: Account,
                                                         settings: Any) -> None:
    from mailcore.imap.server import Limits

    settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = True
    from .conftest import ServerThread

    server = ServerThread(limits=Limits(timeout_before_auth=0.5, timeout=2.0))
    port = server.start()
    try:
        raw = Raw(port)
        assert raw.line() == b"* BYE autologout; idle for too long\r\n"
        raw.close()
        raw = Raw(port)
        raw.login()
        started = time.monotonic()
        assert raw.line() == b"* BYE autologout; idle for too long\r\n"
        assert time.monotonic() - started > 1.0
        raw.close()
    finally:
        server.stop()


def test_append_nonsync_literal_over_the_limit_ends_with_toobig(imap_port: int, alice: Account, settings: Any) -> None:
    settings.MAX_MESSAGE_SIZE = 1000
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    # RFC 7888 §4: the octets of a {n+} literal are already coming; the server cannot skip
    # them, so it says why (TOOBIG) in the BYE and in the command's completion, then closes.
    raw.send(b"b APPEND INBOX {5000+}\r\n")
    assert raw.line() == b"* BYE [TOOBIG] literal too large\r\n"
    assert raw.line() == b"b NO [TOOBIG] literal too large\r\n"
    with pytest.raises(ConnectionError):
        raw.line()
    raw.close()
