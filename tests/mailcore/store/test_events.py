from __future__ import annotations

import asyncio
import os
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections, transaction

from mailcore import store
from mailcore.events import account_group, events_flush
from tests.conftest import make_message


def _in_thread(action):
    def run() -> None:
        try:
            action()
        finally:
            connections.close_all()

    return run


async def _collect(account_id: int, action, wait: float = 3.0) -> list[dict]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(account_group(account_id), channel)
    try:
        await sync_to_async(_in_thread(action), thread_sensitive=False)()
        events = []
        try:
            while True:
                events.append(await asyncio.wait_for(layer.receive(channel), wait))
                wait = 0.5
        except TimeoutError:
            pass
        return events
    finally:
        await layer.group_discard(account_group(account_id), channel)
        await layer.flush()


@pytest.mark.django_db(transaction=True)
def test_delivery_publishes_an_exists_event_after_commit(alice):
    events = asyncio.run(_collect(alice.pk, lambda: store.message_deliver(raw=make_message(), recipients=[alice.address])))
    assert len(events) == 1
    event = events[0]
    assert event["type"] == "mail.changed" and event["kind"] == "exists" and event["account"] == alice.pk
    assert event["modseq"] > 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_publishes_nothing(alice):
    def deliver_then_fail() -> None:
        try:
            with transaction.atomic():
                store.message_deliver(raw=make_message(), recipients=[alice.address])
                raise RuntimeError("storage failed")
        except RuntimeError:
            pass

    assert asyncio.run(_collect(alice.pk, deliver_then_fail, wait=1.0)) == []


@pytest.mark.django_db
def test_a_redis_outage_loses_no_mail_and_is_not_retried_on_every_write(
    alice, settings, caplog, django_capture_on_commit_callbacks
):
    import socket

    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{dead}/0"
    caplog.set_level("DEBUG", logger="mailcore.events")
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            result = store.message_deliver(raw=make_message(), recipients=["alice@a.test"])
        assert result.recipients[0].ok
        assert events_flush(5.0)  # events go out from a publisher thread, after the commit
    messages = [r.getMessage() for r in caplog.records]
    assert sum("not published" in m for m in messages) == 1  # one attempt, then skipped for a while
    assert sum("dropped" in m for m in messages) == 2
    assert alice.messages.count() == 3


@pytest.mark.django_db(transaction=True)
def test_events_of_a_burst_of_deliveries_all_arrive_in_commit_order(alice):
    def deliver_several() -> None:
        for i in range(20):
            store.message_deliver(raw=make_message(subject=f"burst {i}"), recipients=[alice.address])

    events = asyncio.run(_collect(alice.pk, deliver_several))
    assert len(events) == 20
    modseqs = [e["modseq"] for e in events]
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == 20


def test_one_publisher_thread_per_process_and_flush_returns():
    from mailcore import events

    assert events.events_flush(5.0)
    publisher = events._get_publisher()
    assert publisher.thread.is_alive() and publisher.pid == os.getpid()
    assert events._get_publisher() is publisher  # one thread per process


def test_events_queued_within_the_gather_window_go_out_in_one_round_trip(settings, monkeypatch):
    from mailcore import events

    assert events.events_flush(5.0)
    batches: list[list[int]] = []
    publish = events._publish_batch

    def recording(batch):  # the real publish, with a note of what went in each round trip
        batches.append([account for account, _ in batch])
        publish(batch)

    monkeypatch.setattr(events, "_publish_batch", recording)
    settings.EVENTS_GATHER_SECONDS = 0.5
    payload = {"type": "mail.changed", "kind": "exists"}
    events.publish_soon(1, payload)
    time.sleep(0.1)  # well inside the window: the publisher is still gathering
    events.publish_soon(2, payload)
    events.publish_soon(3, payload)
    assert events.events_flush(5.0)
    assert batches == [[1, 2, 3]]
