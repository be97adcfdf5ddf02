"""250 only after COMMIT: a storage failure mid-delivery gives 451 4.3.0 and stores nothing.

A trigger makes the database backend that is delivering terminate itself
(``pg_terminate_backend(pg_backend_pid())``) in the middle of the transaction: after the blob
and the local copy are written, while the alias's remote forward is being queued.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from mailcore import store
from mailcore.models import Blob, Message, OutboundMessage, OutboundRecipient
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import connect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue_insert_kills_the_connection() -> Iterator[None]:
    table = OutboundRecipient._meta.db_table
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


def test_server_reconnects_after_its_database_connections_are_killed(mx, alice) -> None:
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}
    with connection.cursor() as cursor:  # kill the server's pooled connections between messages
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    # The first job on a silently killed connection may fail (451: the client retries); the
    # pool then reconnects, so the retry is stored.
    replies = []
    for _ in range(2):
        client.rset()
        client.mail("carol@example.org")
        rcpt_code, _ = client.rcpt("alice@a.test")
        code, _ = client.data(make_message()) if rcpt_code == 250 else (rcpt_code, b"")
        replies.append(code)
        if code == 250:
            break
    assert replies in ([250], [451, 250]), replies
    client.quit()
    assert Message.objects.filter(account=alice).count() == 2


@pytest.fixture
def entry_insert_kills_the_connection() -> Iterator[None]:
    """The same death, for a plain one-mailbox delivery (one statement that is its own
    transaction): after the quota, the blob and the Message row, at the folder entry."""
    table = "mailcore_folderentry"
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
