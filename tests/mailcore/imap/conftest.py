"""An IMAP server on an ephemeral loopback port, run in a background thread with its own loop."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from typing import Any

import pytest

from mailcore.imap.server import Limits, Listener, start_listener
from mailcore.models import Account
from tests.conftest import PASSWORD
from tests.mailcore.serving import LoopThread, _fresh_login_throttle

__all__ = ["ServerThread", "_fresh_login_throttle"]


class ServerThread:
    def __init__(self, implicit_tls: bool = False, limits: Limits | None = None, proxy_protocol: bool = False) -> None:
        self.implicit_tls = implicit_tls
        self.limits = limits
        self.proxy_protocol = proxy_protocol
        self.listener: Listener | None = None
        self.thread: LoopThread | None = None

    def start(self) -> int:
        self.thread = LoopThread()
        self.listener = self.thread.run(start_listener("127.0.0.1", 0, implicit_tls=self.implicit_tls,
                                                       limits=self.limits, proxy_protocol=self.proxy_protocol))
        return self.listener.port

    def stop(self) -> None:
        assert self.thread is not None
        self.thread.stop([self.listener.close] if self.listener is not None else [])


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
