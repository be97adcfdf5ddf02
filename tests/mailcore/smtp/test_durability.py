"""250 only after COMMIT: a storage failure mid-delivery gives 451 4.3.0 and stores nothing.

A trigger makes the database backend that is delivering terminate itself
(``pg_terminate_backend(pg_backend_pid())``) in the middle of the transaction: after the blob
and the local copy are written, while the alias's remote forward is being queued.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from mailcore import dbthreads, store
from mailcore.models import Blob, Message, OutboundMessage, OutboundRecipient
from tests.conftest import make_message
from tests.mailcore.serving import kill_other_backends
from tests.mailcore.smtp.conftest import DB_THREADS, connect

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def _an_insert_kills_the_connection(table: str) -> Iterator[None]:
    """A trigger that makes the backend inserting a row into ``table`` terminate itself."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE OR REPLACE FUNCTION test_smtp_die() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_terminate_backend(pg_backend_pid());
                PERFORM pg_sleep(1);
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            """
        )
        cursor.execute(
            f"CREATE TRIGGER test_smtp_die BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION test_smtp_die()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS test_smtp_die ON {table}")
        cursor.execute("DROP FUNCTION IF EXISTS test_smtp_die()")


@pytest.fixture
def queue_insert_kills_the_connection() -> Iterator[None]:
    with _an_insert_kills_the_connection(OutboundRecipient._meta.db_table):
        yield


def test_connection_lost_mid_delivery_gives_451_and_nothing_half_stored(
    mx, alice, queue_insert_kills_the_connection
) -> None:
    store.alias_create(address="team@a.test", destinations=["alice@a.test", "carol@remote.test"])
    client = connect(mx)
    client.mail("dave@example.org")
    assert client.rcpt("team@a.test")[0] == 250
    code, text = client.data(make_message())
    assert (code, text[:5]) == (451, b"4.3.0")
    assert Message.objects.count() == 0
    assert Blob.objects.count() == 0
    assert OutboundMessage.objects.count() == 0
    alice.refresh_from_db()
    assert alice.used_bytes == 0


def _send_until_stored(client: smtplib.SMTP, attempts: int) -> list[int]:
    replies = []
    for _ in range(attempts):
        client.rset()
        client.mail("carol@example.org")
        rcpt_code, _ = client.rcpt("alice@a.test")
        code, _ = client.data(make_message()) if rcpt_code == 250 else (rcpt_code, b"")
        replies.append(code)
        if code == 250:
            break
    return replies


def test_server_reconnects_after_its_database_connections_are_killed(mx, alice) -> None:
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}
    kill_other_backends()
    # The first job on a killed connection may fail (451: the client retries) when its thread
    # checked its connection less than a second ago; that failure makes every thread check its
    # connection before its next job, whichever thread runs it, so the retry is stored.
    replies = _send_until_stored(client, attempts=3)
    assert replies in ([250], [451, 250]), replies
    client.quit()
    assert Message.objects.filter(account=alice).count() == 2


def test_one_dead_connection_found_makes_every_db_thread_reconnect(mx, alice, monkeypatch) -> None:
    # No periodic check: only the failed job can tell the threads that the database went away.
    monkeypatch.setattr(dbthreads, "HEALTH_CHECK_INTERVAL", 10**9)
    client = connect(mx)
    for _ in range(DB_THREADS * 2):  # every thread the pool made has connected
        assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}
    kill_other_backends()
    # The first job lands on one of those threads (a new one only if all were busy), fails and
    # tells the others; without that, each thread would fail a message of its own.
    replies = _send_until_stored(client, attempts=DB_THREADS + 1)
    assert replies in ([250], [451, 250]), replies
    client.quit()
    assert Message.objects.filter(account=alice).count() == DB_THREADS * 2 + 1


def test_with_a_check_before_every_job_no_message_meets_a_dead_connection(mx, alice, monkeypatch) -> None:
    # The check (CONN_HEALTH_CHECKS) must also cover the store's own statements (store/sql.py),
    # which RCPT and the delivery run first.
    monkeypatch.setattr(dbthreads, "HEALTH_CHECK_INTERVAL", 0)
    client = connect(mx)
    for _ in range(DB_THREADS * 2):
        assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}
    kill_other_backends()
    assert _send_until_stored(client, attempts=DB_THREADS + 1) == [250]
    client.quit()
    assert Message.objects.filter(account=alice).count() == DB_THREADS * 2 + 1


@pytest.fixture
def entry_insert_kills_the_connection() -> Iterator[None]:
    """The same death, for a plain one-mailbox delivery (one statement that is its own
    transaction): after the quota, the blob and the Message row, at the folder entry."""
    with _an_insert_kills_the_connection("mailcore_folderentry"):
        yield


def test_connection_lost_mid_single_mailbox_delivery_gives_451_and_nothing_stored(
    mx, alice, entry_insert_kills_the_connection
) -> None:
    client = connect(mx)
    client.mail("dave@example.org")
    assert client.rcpt("alice@a.test")[0] == 250
    code, text = client.data(make_message())
    assert (code, text[:5]) == (451, b"4.3.0")
    assert Message.objects.count() == 0
    assert Blob.objects.count() == 0
    alice.refresh_from_db()
    assert alice.used_bytes == 0


def test_a_vanished_folder_fails_a_single_mailbox_delivery_as_a_whole(alice) -> None:
    """The one-statement delivery has no transaction to roll back after the fact: the statement
    itself must fail when the folder took nothing, leaving no blob, no Message, no quota used."""
    from mailcore.smtp import policy
    from mailcore.store import recipient_resolve
    from mailcore.store.errors import FolderNotFound

    resolution = recipient_resolve("alice@a.test")
    [account_id] = resolution.account_ids
    resolution.inboxes[account_id] = 2_000_000_000  # no such folder
    assert not connection.in_atomic_block
    with pytest.raises(FolderNotFound):
        policy.message_accept(local_raw=make_message(), relay_raw=make_message(), mail_from="", local=[resolution], remote=[])
    assert Message.objects.count() == 0
    assert Blob.objects.count() == 0
    alice.refresh_from_db()
    assert alice.used_bytes == 0


def test_a_single_mailbox_delivery_is_one_statement_without_begin_or_commit(alice, tmp_path) -> None:
    """libpq's trace of the connection shows what went to the server: the delivery statement and
    nothing else, no BEGIN and no COMMIT around it (it is its own transaction)."""
    from mailcore.smtp import policy
    from mailcore.store import recipient_resolve

    resolution = recipient_resolve("alice@a.test")
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    trace = tmp_path / "libpq.trace"
    with trace.open("wb") as out:
        pgconn.trace(out.fileno())
        try:
            stored = policy.message_accept(
                local_raw=make_message(), relay_raw=make_message(), mail_from="", local=[resolution], remote=[]
            )
        finally:
            pgconn.untrace()
    sent = [line for line in trace.read_bytes().split(b"\n") if b"\tF\t" in line]  # frontend messages
    assert len(stored.local_message_ids) == 1
    assert not any(b"BEGIN" in line or b"COMMIT" in line for line in sent), sent
    assert any(b"INSERT INTO mailcore_blob" in line for line in sent) or any(b"Bind" in line for line in sent)
    assert Message.objects.filter(account=alice).count() == 1
