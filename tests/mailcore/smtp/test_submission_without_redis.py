"""SMTP AUTH with Redis unreachable: the login throttle counts in the process, never fails open."""

from __future__ import annotations

import base64
import smtplib

import pytest

from tests.conftest import PASSWORD
from tests.mailcore.smtp.conftest import client_tls, connect

pytestmark = pytest.mark.django_db(transaction=True)


def auth_plain(client: smtplib.SMTP, login: str, password: str) -> tuple[int, bytes]:
    token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {token}")


def test_auth_is_throttled_with_454_when_redis_is_unreachable(
    submission, alice, settings, redis_unreachable
) -> None:  # type: ignore[no-untyped-def]
    settings.AUTH_FAILURE_LIMIT = 2
    client = connect(submission)
    client.starttls(context=client_tls())
    client.ehlo()
    assert auth_plain(client, "alice@a.test", PASSWORD)[0] == 235  # logins still work without Redis
    client.close()
    for _ in range(2):
        client = connect(submission)
        client.starttls(context=client_tls())
        client.ehlo()
        assert auth_plain(client, "alice@a.test", "wrong password")[0] == 535
        client.close()
    client = connect(submission)
    client.starttls(context=client_tls())
    client.ehlo()
    code, text = auth_plain(client, "alice@a.test", PASSWORD)
    assert (code, text[:5]) == (454, b"4.7.0")
    client.close()
