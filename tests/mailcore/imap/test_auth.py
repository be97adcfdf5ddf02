from __future__ import annotations

import base64
import imaplib
import ssl
from typing import Any

import pytest
from imapclient import IMAPClient

from mailcore.models import Account
from tests.conftest import PASSWORD

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)


def test_greeting_lists_capabilities_and_plaintext_login_is_allowed_on_loopback(imap_port: int,
                                                                                alice: Account) -> None:
    conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    assert "IMAP4REV1" in conn.capabilities and "STARTTLS" in conn.capabilities
    assert "AUTH=PLAIN" in conn.capabilities and "LOGINDISABLED" not in conn.capabilities
    typ, _ = conn.login("alice@a.test", PASSWORD)
    assert typ == "OK"
    conn.logout()


def test_login_is_disabled_before_starttls_and_works_after(imap_port: int, alice: Account, settings: Any) -> None:
    settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = False
    conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    assert "LOGINDISABLED" in conn.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        conn.login("alice@a.test", PASSWORD)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn.starttls(context)
    conn._get_capabilities()  # type: ignore[attr-defined]
    assert "LOGINDISABLED" not in conn.capabilities and "STARTTLS" not in conn.capabilities
    assert conn.login("alice@a.test", PASSWORD)[0] == "OK"
    conn.logout()


def test_implicit_tls_login(imaps_port: int, alice: Account) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with IMAPClient("127.0.0.1", port=imaps_port, ssl=True, ssl_context=context, timeout=10) as client:
        client.login("alice@a.test", PASSWORD)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_authenticate_plain_with_initial_response(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    token = base64.b64encode(b"\0alice@a.test\0" + PASSWORD.encode()).decode()
    lines = raw.cmd("a1", f"AUTHENTICATE PLAIN {token}")
    assert lines[-1].startswith(b"a1 OK [CAPABILITY")
    raw.close()


def test_authenticate_plain_with_continuation_and_cancel(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    raw.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert raw.line().startswith(b"+")
    raw.send(b"*\r\n")
    assert raw.line().startswith(b"a1 BAD")
    with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
        client.plain_login("alice@a.test", PASSWORD)
        assert client.noop()[0]
    raw.close()


def test_wrong_password_fails_and_repeated_failures_are_throttled(imap_port: int, alice: Account,
                                                                  settings: Any, redis_or_not: str) -> None:
    settings.AUTH_FAILURE_LIMIT = 2
    for _ in range(2):
        conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            conn.login("alice@a.test", "wrong")
        conn.shutdown()
    conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
        conn.login("alice@a.test", PASSWORD)
    conn.shutdown()


def test_commands_need_the_right_state(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    assert raw.cmd("a1", "SELECT INBOX")[-1].startswith(b"a1 BAD")
    assert raw.cmd("a2", "FROB")[-1].startswith(b"a2 BAD")
    assert raw.cmd("a3", f'LOGIN alice@a.test "{PASSWORD}"')[-1].startswith(b"a3 OK")
    assert raw.cmd("a4", "FETCH 1 FLAGS")[-1].startswith(b"a4 BAD")
    assert raw.cmd("a5", "LOGIN x y")[-1].startswith(b"a5 BAD")
    lines = raw.cmd("a6", "LOGOUT")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"a6 OK")
    raw.close()
