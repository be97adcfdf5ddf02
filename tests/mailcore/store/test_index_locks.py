"""The index job against the store's writers: it claims its batch with the weakest lock that
keeps two workers apart (FOR NO KEY UPDATE SKIP LOCKED), so a move or a label, which only needs
a foreign-key share lock on the message, never waits for a batch to be indexed, and neither
does a delivery queued behind that writer's account lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from mailcore import store
from mailcore.models import Folder, Message
from mailcore.store.index import search_index_pending
from tests.conftest import make_message

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_locks() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return int(cur.fetchone()[0])


def _run_while_a_batch_is_held(work: Callable[[], object]) -> tuple[bool, list[BaseException], list[object]]:
    """Hold the index job's batch open in this thread's transaction and run ``work`` in another;
    returns whether ``work`` ever waited on a lock, its errors and its results."""
    errors: list[BaseException] = []
    results: list[object] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    waited = False
    with transaction.atomic():
        assert search_index_pending() >= 1  # the batch stays locked until this block ends
        worker.start()
        deadline = time.monotonic() + 30
        while worker.is_alive() and time.monotonic() < deadline:
            if _waiting_on_locks():
                waited = True
                break
            time.sleep(0.01)
    worker.join(30)
    return waited, errors, results


def test_a_move_does_not_wait_for_the_index_batch_holding_its_message(alice) -> None:
    store.message_deliver(raw=make_message(subject="Fresh"), recipients=["alice@a.test"])
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    later = store.folder_create(account=alice, name="Later")

    waited, errors, results = _run_while_a_batch_is_held(
        lambda: store.message_move(account=alice, source=inbox, uids=[1], target=later)
    )
    assert errors == []
    assert not waited
    assert results == [[(1, 1)]]


def test_a_label_does_not_wait_for_the_index_batch_holding_its_message(alice) -> None:
    store.message_deliver(raw=make_message(subject="Fresh"), recipients=["alice@a.test"])
    message = Message.objects.get(account=alice)
    later = store.folder_create(account=alice, name="Later")

    waited, errors, results = _run_while_a_batch_is_held(
        lambda: store.label_add(account=alice, message_ids=[message.pk], folder=later)
    )
    assert errors == []
    assert not waited
    assert results == [[1]]


def test_a_second_worker_skips_the_batch_another_holds(alice) -> None:
    store.message_deliver(raw=make_message(subject="Fresh"), recipients=["alice@a.test"])

    waited, errors, results = _run_while_a_batch_is_held(search_index_pending)
    assert errors == []
    assert not waited
    assert results == [0]  # the held batch is the whole backlog: nothing left to claim
    assert Message.objects.filter(search_vector__isnull=True).count() == 0  # the first worker committed it
