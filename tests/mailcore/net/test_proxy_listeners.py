"""PROXY protocol on the IMAP and POP3 listeners: the balancer's header names the client.

The address in the header decides what the client address decides: plaintext login only from
loopback, and the login throttle's per-address counter. A bad header closes the connection
before any greeting.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from mailcore.models import Account
from mailcore.net.proxy import build_v1, build_v2
from tests.conftest import PASSWORD
from tests.mailcore.imap.conftest import ServerThread as ImapServer
from tests.mailcore.pop3.conftest import RunningPop3
from tests.mailcore.pop3.conftest import ServerThread as Pop3Server
from tests.mailcore.serving import _fresh_login_throttle

__all__ = ["_fresh_login_throttle"]

REMOTE = ("203.0.113.7", 40000)
LOOPBACK = ("127.0.0.1", 40001)


class Client:
    def __init__(self, port: int, header: bytes, *, tls: bool = False) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.sendall(header)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock: socket.socket = ctx.wrap_socket(raw)
        else:
            self.sock = raw
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def send(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def closed_without_greeting(port: int, data: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        try:
            return sock.recv(100) == b""
        except ConnectionResetError:
            return True


@pytest.fixture
def imap_proxied(settings: Any, transactional_db: None) -> Iterator[Callable[..., int]]:
    settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = True
    servers: list[ImapServer] = []

    def start(implicit_tls: bool = False) -> int:
        server = ImapServer(implicit_tls=implicit_tls, proxy_protocol=True)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def pop3_proxied(transactional_db: None) -> Iterator[RunningPop3]:
    thread = Pop3Server()
    try:
        yield thread.start(allow_plaintext_on_loopback=True, leave_on_server=False, proxy_protocol=True)
    finally:
        thread.close()


def failures_from(ip: str, settings: Any) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.get(f"authfail:ip:{ip}") or 0)
    finally:
        client.close()


def test_imap_v1_header_from_a_remote_client_refuses_plaintext_login(imap_proxied: Callable[..., int],
                                                                     alice: Account) -> None:
    client = Client(imap_proxied(), build_v1(REMOTE, ("127.0.0.1", 143)))
    try:
        assert client.line().startswith(b"* OK")
        assert client.send(f'a LOGIN alice@a.test "{PASSWORD}"\r\n'.encode()).startswith(b"a NO [PRIVACYREQUIRED]")
    finally:
        client.close()


def test_imap_v2_header_from_loopback_allows_it_and_failures_count_for_that_address(
        imap_proxied: Callable[..., int], alice: Account, settings: Any) -> None:
    port = imap_proxied()
    client = Client(port, build_v2(LOOPBACK))
    try:
        assert client.line().startswith(b"* OK")
        assert client.send(b'a LOGIN alice@a.test "wrong password"\r\n').startswith(b"a NO")
        assert failures_from("127.0.0.1", settings) == 1
        assert client.send(f'b LOGIN alice@a.test "{PASSWORD}"\r\n'.encode()).startswith(b"b OK")
    finally:
        client.close()


def test_imaps_takes_the_header_before_the_tls_handshake(imap_proxied: Callable[..., int], alice: Account) -> None:
    client = Client(imap_proxied(implicit_tls=True), build_v1(REMOTE, ("127.0.0.1", 993)), tls=True)
    try:
        assert client.line().startswith(b"* OK")
        assert client.send(f'a LOGIN alice@a.test "{PASSWORD}"\r\n'.encode()).startswith(b"a OK")
    finally:
        client.close()


@pytest.mark.parametrize("data", [
    b"HELLO there\r\n",  # no header at all
    b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 143\r\n",  # bad port
    b"PROXY TCP6 203.0.113.7 127.0.0.1 5555 143\r\n",  # family does not match
    b"PROXY " + b"9" * 200 + b"\r\n",  # too long
    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12,  # v2 with version 3
])
def test_imap_malformed_header_closes_the_connection(imap_proxied: Callable[..., int], data: bytes) -> None:
    assert closed_without_greeting(imap_proxied(), data)


def test_pop3_v2_header_from_a_remote_client_is_throttled_under_that_address(
        pop3_proxied: RunningPop3, alice: Account, settings: Any) -> None:
    client = Client(pop3_proxied.port, build_v2(REMOTE))
    try:
        assert client.line().startswith(b"+OK")
        assert client.send(b"USER alice@a.test\r\n").startswith(b"-ERR")  # not loopback: TLS first
        assert client.send(b"STLS\r\n").startswith(b"+OK")
    finally:
        client.close()
    tls = Client(pop3_proxied.tls_port, build_v2(REMOTE), tls=True)
    try:
        assert tls.line().startswith(b"+OK")
        assert tls.send(b"USER alice@a.test\r\n").startswith(b"+OK")
        assert tls.send(b"PASS wrong-password\r\n").startswith(b"-ERR")
    finally:
        tls.close()
    assert failures_from(REMOTE[0], settings) == 1
    assert failures_from("127.0.0.1", settings) == 0


def test_pop3_v1_header_from_loopback_allows_plaintext_login(pop3_proxied: RunningPop3, alice: Account) -> None:
    client = Client(pop3_proxied.port, build_v1(LOOPBACK, ("127.0.0.1", 110)))
    try:
        assert client.line().startswith(b"+OK")
        assert client.send(b"USER alice@a.test\r\n").startswith(b"+OK")
        assert client.send(f"PASS {PASSWORD}\r\n".encode()).startswith(b"+OK")
        assert client.send(b"QUIT\r\n").startswith(b"+OK")
    finally:
        client.close()


@pytest.mark.parametrize("data", [b"USER alice@a.test\r\n", b"PROXY TCP4 1.2.3 127.0.0.1 1 2\r\n"])
def test_pop3_malformed_header_closes_the_connection(pop3_proxied: RunningPop3, data: bytes) -> None:
    assert closed_without_greeting(pop3_proxied.port, data)
    assert closed_without_greeting(pop3_proxied.tls_port, data)


def test_unknown_source_means_the_real_peer(pop3_proxied: RunningPop3, alice: Account) -> None:
    client = Client(pop3_proxied.port, b"PROXY UNKNOWN\r\n")
    try:
        assert client.line().startswith(b"+OK")
        assert client.send(b"USER alice@a.test\r\n").startswith(b"+OK")  # the peer is 127.0.0.1
    finally:
        client.close()
