"""Celery tasks of the relay. They take ids and call one service; the schedule lives in PostgreSQL.

``queue_dispatch`` (beat, every 15 s, and ``queue_kick`` after a submission commits) claims due
rows and enqueues one ``batch_deliver`` per destination batch. No ETA/countdown: if Redis loses
the task, the lease runs out and the next dispatch claims the rows again.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import close_old_connections

from . import queue, worker

log = logging.getLogger("mailcore.relay.tasks")


def dispatch() -> int:
    """Claim due rows and hand each destination batch to a worker; returns the number of batches."""
    close_old_connections()
    batches = queue.recipients_claim()
    for batch in batches:
        batch_deliver.delay(list(batch.recipient_ids), batch.claim)
    return len(batches)


@shared_task(name="mailcore.relay.tasks.queue_dispatch", ignore_result=True)
def queue_dispatch() -> int:
    return dispatch()


@shared_task(name="mailcore.relay.tasks.queue_kick", ignore_result=True)
def queue_kick() -> int:
    """A submission just committed remote recipients: look at the queue now, not at the next beat."""
    return dispatch()


@shared_task(name="mailcore.relay.tasks.batch_deliver", ignore_result=True, acks_late=True)
def batch_deliver(recipient_ids: list[int], claim: str) -> int:
    close_old_connections()
    stats = worker.batch_deliver(recipient_ids=recipient_ids, claim=claim)
    # This destination's connection slot is free again: hand out what became due meanwhile now
    # rather than at the next beat.
    dispatch()
    return stats.messages


@shared_task(name="mailcore.relay.tasks.queue_purge", ignore_result=True)
def queue_purge() -> int:
    """Beat, hourly: drop finished queue rows after a week and release their blobs."""
    close_old_connections()
    return queue.outbound_purge()
