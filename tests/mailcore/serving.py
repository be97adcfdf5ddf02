"""What the protocol suites share to run a server under test: an event loop in a thread, for
blocking clients (imaplib, poplib, getmail, fetchmail), and a clean login throttle per test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
import redis

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread; servers start and stop on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    @staticmethod
    async def _drain() -> None:
        """Let whatever the servers left running (the channel layer's reader) finish."""
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=5)
        from channels.layers import channel_layers

        for layer in list(channel_layers.backends.values()):
            flush = getattr(layer, "flush", None)
            if flush is not None:
                try:
                    await flush()
                except Exception:  # noqa: BLE001 - best effort at teardown
                    pass

    def stop(self, closers: list[Callable[[], Awaitable[None]]]) -> None:
        """Close the servers (each closer on the loop), drain what is left, end the thread."""

        async def close(closer: Callable[[], Awaitable[None]]) -> None:
            await closer()

        for closer in closers:
            self.run(close(closer), timeout=30)
        self.run(self._drain(), timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(autouse=True)
def _fresh_login_throttle(settings: Any) -> None:
    """Failed logins of earlier tests must not throttle this one (the counters live in Redis)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter("authfail:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def other_backends() -> int:
    """How many client backends of the test database other than this test's own are open now
    (the connections of servers under test)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return int(cursor.fetchone()[0])


def kill_other_backends() -> None:
    """Terminate every other client backend of the test database (the servers' pooled
    connections) and wait until they are gone: ``pg_terminate_backend`` only signals."""
    import time

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        pids = [row[0] for row in cursor.fetchall()]
        assert pids, "no server connection to kill"
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.01)
    raise AssertionError(f"backends {pids} outlived pg_terminate_backend")
