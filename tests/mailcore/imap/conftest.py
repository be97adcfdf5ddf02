"""An IMAP server on an ephemeral loopback port, run in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import imaplib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from mailcore.imap.server import Limits, Listener, start_listener
from mailcore.models import Account
from tests.conftest import PASSWORD


class ServerThread:
    def __init__(self, implicit_tls: bool = False, limits: Limits | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.implicit_tls = implicit_tls
        self.limits = limits
        self.listener: Listener | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> int:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_listener("127.0.0.1", 0, implicit_tls=self.implicit_tls, limits=self.limits), self.loop)
        self.listener = future.result(timeout=10)
        return self.listener.port

    @staticmethod
    async def _drain() -> None:
        """Let whatever the server left running (the channel layer's reader) finish."""
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

    def stop(self) -> None:
        if self.listener is not None:
            asyncio.run_coroutine_threadsafe(self.listener.close(), self.loop).result(timeout=20)
        asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result(timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(autouse=True)
def _fresh_login_throttle(settings: Any) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter("authfail:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def imap_port(settings: Any, transactional_db: None) -> Iterator[int]:
    settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = True
    server = ServerThread()
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


@pytest.fixture
def imaps_port(settings: Any, transactional_db: None) -> Iterator[int]:
    server = ServerThread(implicit_tls=True)
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


@pytest.fixture
def client(imap_port: int, alice: Account) -> Iterator[imaplib.IMAP4]:
    conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    conn.login("alice@a.test", PASSWORD)
    try:
        yield conn
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            conn.shutdown()
