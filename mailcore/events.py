"""Events published after commit to the Channels group of an account.

Payload (DESIGN.md): ``{"type": "mail.changed", "account": id, "folder": id,
"kind": "exists|flags|expunge|folders", "modseq": n}``. Browser websockets and IMAP IDLE
sessions in any process subscribe to :func:`account_group`. Redis is never the only copy of
anything: an event that cannot be published is logged and dropped; readers resync from the
database (modseq) when they next look.

Publishing does not hold up the committed work: after COMMIT an event goes on a queue that one
thread per process drains, sending whatever has gathered in one pipelined round trip, in order;
after the first event of a round it waits ``EVENTS_GATHER_SECONDS`` (5 ms) for others to join.
(The SMTP server used to wait for each PUBLISH before saying 250, a round trip per message.)
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Any

import redis
from channels_redis.serializers import registry
from django.conf import settings
from django.db import transaction

from mailcore.redis_client import redis_available, redis_failed, shared_redis

log = logging.getLogger(__name__)

_GROUP_PREFIX = "asgi"  # channels_redis' default prefix
# The wire format of channels_redis' RedisPubSubChannelLayer, which the browser's websocket
# consumers read; IMAP IDLE (mailcore.imap.notify) reads the same messages straight from Redis.
event_serializer = registry.get_serializer("msgpack")


def account_group(account_id: int) -> str:
    return f"mail-account-{account_id}"


def account_channel(account_id: int) -> str:
    """The Redis pub/sub channel that carries the events of ``account_group(account_id)``."""
    return f"{_GROUP_PREFIX}__group__{account_group(account_id)}"


def publish_now(account_id: int, payload: dict[str, Any]) -> None:
    """Publish ``payload`` to the account's group in the wire format of RedisPubSubChannelLayer."""
    _publish_batch([(account_id, payload)])


def _publish_batch(events: list[tuple[int, dict[str, Any]]]) -> None:
    if not redis_available():
        log.debug("%d event(s) dropped: Redis failed a moment ago", len(events))
        return
    try:
        if len(events) == 1:
            account_id, payload = events[0]
            shared_redis().publish(account_channel(account_id), event_serializer.serialize(payload))
            return
        pipe = shared_redis().pipeline(transaction=False)
        for account_id, payload in events:
            pipe.publish(account_channel(account_id), event_serializer.serialize(payload))
        pipe.execute()
    except redis.RedisError as exc:
        redis_failed()
        log.warning("%d event(s) not published (Redis skipped for a few seconds): %s", len(events), exc)


MAX_BATCH = 256


class _Publisher:
    """One thread per process that publishes queued events, oldest first, a batch per round trip."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[int, dict[str, Any]] | threading.Event] = queue.SimpleQueue()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="events-publisher", daemon=True)
        self.thread.start()

    def put(self, account_id: int, payload: dict[str, Any]) -> None:
        self.queue.put((account_id, payload))

    def _run(self) -> None:
        while True:
            batch: list[tuple[int, dict[str, Any]]] = []
            marker: threading.Event | None = None
            item = self.queue.get()
            gather = settings.EVENTS_GATHER_SECONDS
            if gather > 0 and not isinstance(item, threading.Event):
                # Let the events of concurrent work join this round trip: under load one
                # PUBLISH per event cost the SMTP server about a tenth of its throughput
                # (our thread, Redis and the kernel, per message); a few ms is nothing to a
                # reader that is promised changes within a second.
                time.sleep(gather)
            while True:
                if isinstance(item, threading.Event):
                    marker = item  # a flush: everything queued before it goes in this batch
                    break
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    _publish_batch(batch)
                except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                    log.exception("publishing %d event(s) failed", len(batch))
            if marker is not None:
                marker.set()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far has been sent (or dropped); False on timeout."""
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def _get_publisher() -> _Publisher:
    global _publisher
    publisher = _publisher
    if publisher is None or publisher.pid != os.getpid():  # none yet, or inherited through fork
        with _publisher_lock:
            if _publisher is None or _publisher.pid != os.getpid():
                _publisher = _Publisher()
            publisher = _publisher
    return publisher


def publish_soon(account_id: int, payload: dict[str, Any]) -> None:
    """Queue ``payload`` for the account's group; the publisher thread sends it shortly."""
    _get_publisher().put(account_id, payload)


def events_flush(timeout: float = 2.0) -> bool:
    """Send every queued event before returning (at shutdown); False if that took too long."""
    publisher = _publisher
    if publisher is None or publisher.pid != os.getpid():
        return True
    return publisher.flush(timeout)


atexit.register(events_flush)


def mail_changed(account_id: int, folder_id: int | None, kind: str, modseq: int = 0) -> dict[str, Any]:
    return {"type": "mail.changed", "account": account_id, "folder": folder_id, "kind": kind, "modseq": modseq}


def publish_on_commit(account_id: int, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: publish_soon(account_id, payload))
