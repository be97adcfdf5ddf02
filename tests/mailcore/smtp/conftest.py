"""SMTP test harness: our listeners in a background event loop on ephemeral ports, and a tiny
DNS server on 127.0.0.1 (the only double: it stands in for the outside internet)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from mailcore.dbthreads import executor_close
from mailcore.smtp.protocol import Limits, Role
from mailcore.smtp.server import Listener, listener_start, listener_stop

HOST = "127.0.0.1"
DB_THREADS = 4
_OPEN_CLIENTS: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Tests may leave a client mid-conversation (that is often the point); close it for them."""
    yield
    while _OPEN_CLIENTS:
        client = _OPEN_CLIENTS.pop()
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass


@dataclass
class DnsZone:
    """Records by (name, type): TXT values are strings, A values addresses, MX (pref, host),
    PTR host names. Names in ``servfail`` answer SERVFAIL; names in ``silent`` never answer
    (a dead or filtered name server), for every type."""

    records: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)
    ttl: int = 0  # of every answer; 0: tests change records mid-test and expect to see it at once
    # NXDOMAIN carries an SOA with this TTL (RFC 2308); None: no SOA (dnspython then keeps it 300 s)
    negative_ttl: int | None = None

    def add(self, name: str, rdtype: str, value: Any) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype.upper()), []).append(value)

    def add_ptr(self, ip: str, host: str) -> None:
        self.add(dns.reversename.from_address(ip).to_text(), "PTR", host)


class DnsServer(threading.Thread):
    def __init__(self, zone: DnsZone) -> None:
        super().__init__(daemon=True)
        self.zone = zone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self.answer(data)
                if reply is not None:
                    self.sock.sendto(reply, addr)
            except Exception:  # noqa: BLE001 - a bad query gets no answer, like the internet
                continue

    def answer(self, data: bytes) -> bytes | None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.zone.queries.append((name, rdtype))
        if name in self.zone.silent:
            return None
        if name in self.zone.servfail:
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        values = self.zone.records.get((name, rdtype), [])
        if values:
            texts = []
            for value in values:
                if rdtype == "TXT":
                    chunks = [value[i : i + 250] for i in range(0, len(value), 250)] or [""]
                    texts.append(" ".join('"' + c.replace('"', '\\"') + '"' for c in chunks))
                elif rdtype == "MX":
                    texts.append(f"{value[0]} {value[1]}.")
                elif rdtype in ("PTR", "CNAME"):
                    texts.append(str(value).rstrip(".") + ".")
                else:
                    texts.append(str(value))
            # TTL 0 by default: tests change records mid-test, and the server caches answers for their TTL.
            response.answer.append(dns.rrset.from_text_list(question.name, self.zone.ttl, "IN", rdtype, texts))
        elif not any(key[0] == name for key in self.zone.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
            if self.zone.negative_ttl is not None:
                ttl = self.zone.negative_ttl
                response.authority.append(dns.rrset.from_text(
                    ".", ttl, "IN", "SOA", f"ns.test. hostmaster.test. 1 3600 600 86400 {ttl}"
                ))
        return response.to_wire()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.sock.close()


@pytest.fixture(autouse=True)
def dns_zone(settings: Any) -> Iterator[DnsZone]:
    """Every SMTP test gets its own DNS: nothing leaves 127.0.0.1."""
    zone = DnsZone()
    server = DnsServer(zone)
    server.start()
    settings.DNS_NAMESERVERS = [HOST]
    settings.DNS_PORT = server.port
    yield zone
    server.stop()


class ServerThread:
    """An event loop in a thread running SMTP listeners, for blocking clients (smtplib, swaks)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="test-smtp-db")
        self.listeners: list[Listener] = []

    def start(self, role: Role, **kwargs: Any) -> Listener:
        future = asyncio.run_coroutine_threadsafe(
            listener_start(role=role, host=HOST, port=0, executor=self.executor, hostname="mx.test", **kwargs),
            self.loop,
        )
        listener = future.result(10)
        self.listeners.append(listener)
        return listener

    def stop(self) -> None:
        for listener in self.listeners:
            asyncio.run_coroutine_threadsafe(listener_stop(listener), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self._cancel_connections(), self.loop).result(10)
        executor_close(self.executor, DB_THREADS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _cancel_connections(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.05)


@pytest.fixture
def smtp_servers() -> Iterator[ServerThread]:
    servers = ServerThread()
    yield servers
    servers.stop()


StartServer = Callable[..., Listener]


@pytest.fixture
def start_server(smtp_servers: ServerThread) -> StartServer:
    def start(role: Role = Role.MX, *, proxy_protocol: bool = False, **limits: Any) -> Listener:
        return smtp_servers.start(role, limits=Limits(**limits), proxy_protocol=proxy_protocol)

    return start


@pytest.fixture
def mx(start_server: StartServer) -> Listener:
    return start_server(Role.MX)


@pytest.fixture
def submission(start_server: StartServer) -> Listener:
    return start_server(Role.SUBMISSION)


@pytest.fixture
def smtps(start_server: StartServer) -> Listener:
    return start_server(Role.SUBMISSIONS)


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(listener: Listener, *, ehlo: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP(HOST, listener.port, local_hostname="client.example", timeout=10)
    _OPEN_CLIENTS.append(client)
    if ehlo:
        client.ehlo()
    return client


def connect_starttls(listener: Listener) -> smtplib.SMTP:
    """Connected, STARTTLS done, and EHLO said again over TLS."""
    client = connect(listener)
    client.starttls(context=client_tls())
    client.ehlo()
    return client


def connect_submission(listener: Listener, address: str, password: str) -> smtplib.SMTP:
    if listener.role is Role.SUBMISSIONS:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            HOST, listener.port, local_hostname="client.example", timeout=10, context=client_tls()
        )
        _OPEN_CLIENTS.append(client)
        client.ehlo()
    else:
        client = connect_starttls(listener)
    client.login(address, password)
    return client


class RawClient:
    """A socket speaking SMTP by hand, for what smtplib will not send."""

    def __init__(self, listener: Listener, *, greet: bool = True) -> None:
        self.sock = socket.create_connection((HOST, listener.port), timeout=10)
        _OPEN_CLIENTS.append(self)
        self.buffer = b""
        if greet:
            self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffer {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> bytes:
        """One full reply (all lines of a multi-line one), joined by CRLF."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return b"\r\n".join(lines)

    def command(self, data: bytes) -> bytes:
        self.send(data + b"\r\n")
        return self.reply()

    def is_closed(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def folder_row_held(folder_id: int) -> Iterator[None]:
    """Another transaction holds the folder's row lock for the block: a delivery's UPDATE of the
    folder row (UID allocation) waits on it until the block ends."""
    from django.db import connection, transaction

    from mailcore.models import Folder

    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Folder.objects.select_for_update().get(pk=folder_id)
                locked.set()
                release.wait(20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        release.set()
        holder.join(20)


def stop_while_storing(servers: ServerThread, listener: Listener) -> concurrent.futures.Future[None]:
    """Once a message of ``listener`` is being stored, stop the listener with a 0.2 s grace and
    return the stop, still running well past the grace."""

    async def storing() -> bool:
        return any(p.storing for p in listener.connections)

    deadline = time.monotonic() + 10
    while not asyncio.run_coroutine_threadsafe(storing(), servers.loop).result(5):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stopping = asyncio.run_coroutine_threadsafe(listener_stop(listener, grace=0.2), servers.loop)
    time.sleep(0.8)  # well past the grace
    assert not stopping.done()
    return stopping
