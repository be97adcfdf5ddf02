"""POP3 login with Redis unreachable: the login throttle counts in the process, never fails open."""

from __future__ import annotations

import poplib

import pytest

from mailcore.models import Account
from tests.conftest import PASSWORD

from .conftest import RunningPop3, close, connect

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_is_throttled_with_sys_temp_when_redis_is_unreachable(  # type: ignore[no-untyped-def]
    pop3: RunningPop3, alice: Account, settings, redis_unreachable: str
) -> None:
    for _ in range(settings.AUTH_FAILURE_LIMIT):  # the service read the limit when it started
        client = connect(pop3.port)
        client.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
            client.pass_("wrong")
        close(client)
    client = connect(pop3.port)
    try:
        client.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[SYS/TEMP\]"):
            client.pass_(PASSWORD)
    finally:
        close(client)
