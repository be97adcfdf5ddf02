"""One Redis client per process for the small synchronous calls (events, login throttling).

redis-py clients are thread-safe and pool their connections, so sharing one saves a TCP
connection per call. It is made again after a fork and when ``REDIS_URL`` changes (tests).
When Redis fails, callers are told to skip it for a few seconds (:func:`redis_available`),
so an outage costs one short timeout now and then instead of one on every store write.
"""

from __future__ import annotations

import os
import threading
import time

import redis
from django.conf import settings

TIMEOUT = 0.5  # seconds, connect and read: these calls are tiny
BACKOFF = 5.0  # seconds to skip Redis after a failure

_lock = threading.Lock()
_state: dict[str, object] = {}
_down_until: dict[str, float] = {}  # per REDIS_URL


def shared_redis() -> redis.Redis:
    key = (os.getpid(), settings.REDIS_URL)
    with _lock:
        client = _state.get("client")
        if client is None or _state.get("key") != key:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
            _state["client"], _state["key"] = client, key
    assert isinstance(client, redis.Redis)
    return client


def redis_available() -> bool:
    """False for a few seconds after :func:`redis_failed` (for the same ``REDIS_URL``)."""
    return time.monotonic() >= _down_until.get(settings.REDIS_URL, 0.0)


def redis_failed() -> None:
    _down_until[settings.REDIS_URL] = time.monotonic() + BACKOFF
