"""A POP3 service on ephemeral loopback ports, run in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import poplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mailcore.net.tls import server_context
from mailcore.pop3.server import Pop3Service
from tests.conftest import PASSWORD
from tests.mailcore.serving import LoopThread, _fresh_login_throttle

__all__ = ["RunningPop3", "ServerThread", "_fresh_login_throttle"]


@dataclass
class RunningPop3:
    service: Pop3Service
    port: int
    tls_port: int
    loop: asyncio.AbstractEventLoop


class ServerThread(LoopThread):
    def __init__(self) -> None:
        super().__init__()
        self.services: list[Pop3Service] = []

    def start(self, **kwargs: Any) -> RunningPop3:
        async def open_service() -> RunningPop3:
            kwargs.setdefault("ssl_context", server_context())
            service = Pop3Service(**kwargs)
            self.services.append(service)
            plain = await service.listen("127.0.0.1", 0)
            tls = await service.listen("127.0.0.1", 0, implicit_tls=True)
            return RunningPop3(service, plain.sockets[0].getsockname()[1],  # type: ignore[attr-defined]
                               tls.sockets[0].getsockname()[1], self.loop)  # type: ignore[attr-defined]

        return self.run(open_service())

    def close(self) -> None:
        self.stop([service.aclose for service in self.services])


@pytest.fixture
def pop3_start(transactional_db: None) -> Iterator[Callable[..., RunningPop3]]:
    """Start a POP3 service (plain port with STLS, implicit-TLS port) with the given options."""
    thread = ServerThread()
    try:
        yield thread.start
    finally:
        thread.close()


@pytest.fixture
def pop3(pop3_start: Callable[..., RunningPop3]) -> RunningPop3:
    """The usual service: plaintext login allowed on loopback, messages deleted on QUIT."""
    return pop3_start(allow_plaintext_on_loopback=True, leave_on_server=False)


def client_tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(port: int) -> poplib.POP3:
    return poplib.POP3("127.0.0.1", port, timeout=10)


def login(port: int, address: str = "alice@a.test", password: str = PASSWORD) -> poplib.POP3:
    client = connect(port)
    client.user(address)
    client.pass_(password)
    return client


def close(client: poplib.POP3) -> None:
    try:
        client.close()
    except OSError:
        pass
