"""The POP3 server after PostgreSQL has dropped its connections (a restart, a failover,
``pg_terminate_backend``): the next login and the next command work, whichever pool thread
runs them."""

from __future__ import annotations

import poplib
import time

import pytest

from mailcore import dbthreads, store
from mailcore.models import Account
from tests.conftest import PASSWORD, make_message
from tests.mailcore.serving import kill_other_backends

from .conftest import RunningPop3, close, connect, login

pytestmark = pytest.mark.django_db(transaction=True)

DB_WORKERS = 4
TEMPORARY_ERROR = "b'-ERR [SYS/TEMP] internal error; try again later'"


@pytest.fixture(autouse=True)
def _no_periodic_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a failed job can tell the pool's threads that the database went away."""
    monkeypatch.setattr(dbthreads, "HEALTH_CHECK_INTERVAL", 10**9)


def _attempt(port: int) -> tuple[poplib.POP3 | None, str]:
    """One login: the client on success, else the reply. A mailbox still held by the session
    that has just said QUIT (its lock goes a moment after the +OK) is waited for."""
    deadline = time.monotonic() + 10
    while True:
        client = connect(port)
        client.user("alice@a.test")
        try:
            client.pass_(PASSWORD)
        except poplib.error_proto as exc:
            close(client)
            if b"[IN-USE]" in exc.args[0] and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            return None, str(exc)
        return client, "+OK"


def _login_until_ok(port: int, attempts: int) -> tuple[poplib.POP3, list[str]]:
    replies = []
    for _ in range(attempts):
        client, reply = _attempt(port)
        replies.append(reply)
        if client is not None:
            return client, replies
    raise AssertionError(f"no login in {attempts} attempts: {replies}")


def test_login_after_the_database_dropped_every_connection(pop3_start, alice: Account) -> None:
    running: RunningPop3 = pop3_start(allow_plaintext_on_loopback=True, leave_on_server=True,
                                      db_workers=DB_WORKERS)
    store.message_deliver(raw=make_message(), recipients=["alice@a.test"])
    for _ in range(DB_WORKERS * 2):  # the pool's threads have connected
        client, replies = _login_until_ok(running.port, attempts=1)
        try:
            assert client.stat()[0] == 1
            client.quit()
        finally:
            close(client)
    kill_other_backends()
    # At most one clean temporary error (the client retries), never a string of them.
    client, replies = _login_until_ok(running.port, attempts=DB_WORKERS + 1)
    try:
        assert replies in (["+OK"], [TEMPORARY_ERROR, "+OK"]), replies
        assert client.stat()[0] == 1
        assert client.retr(1)[1][-1] == b"Hi there."
        client.quit()
    finally:
        close(client)


def test_commands_of_a_session_after_the_database_dropped_every_connection(pop3_start, alice: Account) -> None:
    running: RunningPop3 = pop3_start(allow_plaintext_on_loopback=True, leave_on_server=True,
                                      db_workers=DB_WORKERS)
    for n in range(3):
        store.message_deliver(raw=make_message(subject=f"n{n}"), recipients=["alice@a.test"])
    client = login(running.port)
    try:
        assert client.stat()[0] == 3
        kill_other_backends()
        failures = 0
        for n in (1, 2, 3, 1, 2, 3):
            try:
                lines = client.retr(n)[1]
            except poplib.error_proto:
                failures += 1
                lines = client.retr(n)[1]
            assert b"Subject: n%d" % (n - 1) in lines
        assert failures <= 1
        client.quit()
    finally:
        close(client)
