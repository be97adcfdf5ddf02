"""The IMAP server after PostgreSQL has dropped its connections (a restart, a failover,
``pg_terminate_backend``): one command may fail with a clean NO, the rest work, whichever pool
thread runs them."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailcore import dbthreads, store
from mailcore.imap.server import Limits
from mailcore.models import Account
from tests.conftest import PASSWORD, make_message
from tests.mailcore.serving import kill_other_backends, other_backends

from .conftest import ServerThread

pytestmark = pytest.mark.django_db(transaction=True)

DB_THREADS = 4


@pytest.fixture
def small_pool_port(settings, transactional_db: None) -> Iterator[int]:  # type: ignore[no-untyped-def]
    settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = True
    server = ServerThread(limits=Limits(db_threads=DB_THREADS))
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


def _busy_client(port: int) -> None:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    client.login("alice@a.test", PASSWORD)
    for _ in range(10):
        assert client.status("INBOX", "(MESSAGES)")[0] == "OK"
    client.logout()


def test_one_dead_connection_found_makes_every_db_thread_reconnect(
    small_pool_port: int, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic check: only the failed command can tell the threads that the database went away.
    monkeypatch.setattr(dbthreads, "HEALTH_CHECK_INTERVAL", 10**9)
    store.message_deliver(raw=make_message(), recipients=["alice@a.test"])
    with ThreadPoolExecutor(DB_THREADS * 2) as clients:  # concurrent commands: the pool grows
        list(clients.map(_busy_client, [small_pool_port] * DB_THREADS * 2))
    assert other_backends() >= 2  # else there would be only one thread to fail
    client = imaplib.IMAP4("127.0.0.1", small_pool_port, timeout=10)
    client.login("alice@a.test", PASSWORD)
    kill_other_backends()
    replies = []
    for _ in range(DB_THREADS * 3):  # one command at a time: the pool's idle threads take turns
        typ, data = client.status("INBOX", "(MESSAGES)")
        replies.append(typ)
        if typ == "OK":
            assert data == [b'INBOX (MESSAGES 1)']
    client.logout()
    assert replies.count("NO") <= 1, replies
    assert replies[-1] == "OK"
