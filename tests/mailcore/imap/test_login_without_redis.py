"""IMAP LOGIN with Redis unreachable: the login throttle counts in the process, never fails open."""

from __future__ import annotations

import imaplib
from typing import Any

import pytest

from mailcore.models import Account
from tests.conftest import PASSWORD


def test_login_is_throttled_with_unavailable_when_redis_is_unreachable(
    imap_port: int, alice: Account, settings: Any, redis_unreachable: str
) -> None:
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
