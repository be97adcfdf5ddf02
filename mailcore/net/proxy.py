"""PROXY protocol v1 and v2 (HAProxy's spec) for listeners behind a TCP balancer.

Protocol-agnostic: SMTP, IMAP and POP3 listeners call :func:`read_proxy_header` before their
greeting when the listener's role is named in ``PROXY_PROTOCOL_LISTENERS``. The parser is pure
(:func:`parse_proxy_header`) and is tested by feeding bytes.

Only the client's source address is used. ``PROXY UNKNOWN`` (v1) and the ``LOCAL`` command or an
unspecified family (v2) mean "use the real peer" and come back as ``None``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl as ssl_module
import struct
from collections.abc import Awaitable, Callable

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # including CRLF (spec §2.1)
V2_MAX_PAYLOAD = 4096  # addresses plus TLVs; the spec allows 64 KiB, balancers send far less
DEFAULT_TIMEOUT = 5.0

Address = tuple[str, int]

log = logging.getLogger(__name__)


class ProxyError(ValueError):
    """A connection that should have started with a PROXY header did not."""


class ProxyIncomplete(ProxyError):
    """More bytes are needed to parse the header."""


def _port(text: bytes) -> int:
    if not text.isdigit() or (len(text) > 1 and text.startswith(b"0")):
        raise ProxyError(f"bad port {text!r}")
    value = int(text)
    if value > 65535:
        raise ProxyError(f"bad port {text!r}")
    return value


def parse_v1(line: bytes) -> Address | None:
    """Parse one complete v1 line (ending in CRLF)."""
    if len(line) > V1_MAX_LENGTH or not line.endswith(b"\r\n") or not line.startswith(V1_PREFIX):
        raise ProxyError("malformed PROXY v1 line")
    fields = line[:-2].split(b" ")
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return None
    if len(fields) != 6:
        raise ProxyError("PROXY v1 line needs 6 fields")
    _, family, src, dst, sport, dport = fields
    try:
        source = ipaddress.ip_address(src.decode("ascii"))
        ipaddress.ip_address(dst.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyError("bad address in PROXY v1 line") from None
    if (family, source.version) not in ((b"TCP4", 4), (b"TCP6", 6)):
        raise ProxyError("PROXY v1 family does not match the address")
    _port(dport)
    return str(source), _port(sport)


def parse_v2(data: bytes) -> tuple[Address | None, int]:
    """Parse a v2 header at the start of ``data``; returns (source, bytes consumed)."""
    if len(data) < 16:
        raise ProxyIncomplete("PROXY v2 header is 16 bytes at least")
    if not data.startswith(V2_SIGNATURE):
        raise ProxyError("no PROXY v2 signature")
    ver_cmd, family, length = struct.unpack("!BBH", data[12:16])
    if ver_cmd >> 4 != 2:
        raise ProxyError("PROXY v2 version is not 2")
    if length > V2_MAX_PAYLOAD:
        raise ProxyError("PROXY v2 payload too long")
    total = 16 + length
    if len(data) < total:
        raise ProxyIncomplete("PROXY v2 payload is incomplete")
    payload = data[16:total]
    command = ver_cmd & 0x0F
    if command == 0x0:  # LOCAL: health check from the balancer itself
        return None, total
    if command != 0x1:
        raise ProxyError("unknown PROXY v2 command")
    if family == 0x11:  # TCP over IPv4
        if length < 12:
            raise ProxyError("PROXY v2 IPv4 payload too short")
        src = ipaddress.IPv4Address(payload[0:4])
        (sport,) = struct.unpack("!H", payload[8:10])
        return (str(src), sport), total
    if family == 0x21:  # TCP over IPv6
        if length < 36:
            raise ProxyError("PROXY v2 IPv6 payload too short")
        src6 = ipaddress.IPv6Address(payload[0:16])
        (sport,) = struct.unpack("!H", payload[32:34])
        return (str(src6), sport), total
    if family == 0x00:  # UNSPEC
        return None, total
    raise ProxyError(f"unsupported PROXY v2 family {family:#x}")


def parse_proxy_header(data: bytes) -> tuple[Address | None, int]:
    """Parse a v1 or v2 header at the start of ``data``: (source or None, bytes consumed).

    Raises :class:`ProxyIncomplete` when more bytes are needed, :class:`ProxyError` when the
    bytes cannot be a PROXY header.
    """
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < len(V2_SIGNATURE):
        raise ProxyIncomplete("need more bytes")
    if data.startswith(V2_SIGNATURE):
        return parse_v2(data)
    if not V1_PREFIX.startswith(data[:6]) and not data.startswith(V1_PREFIX):
        raise ProxyError("no PROXY header")
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyError("PROXY v1 line too long")
        raise ProxyIncomplete("need more bytes")
    return parse_v1(data[: end + 2]), end + 2


async def read_proxy_header(reader: asyncio.StreamReader, *, timeout: float = DEFAULT_TIMEOUT) -> Address | None:
    """Read exactly one PROXY header from ``reader`` and return the client's source address.

    ``None`` means the header said to use the real peer (v1 UNKNOWN, v2 LOCAL/UNSPEC).
    Raises :class:`ProxyError` on a malformed header, end of stream or timeout; the caller
    closes the connection.
    """

    async def _read() -> Address | None:
        head = await reader.readexactly(12)
        if head == V2_SIGNATURE:
            fixed = await reader.readexactly(4)
            (length,) = struct.unpack("!H", fixed[2:4])
            if length > V2_MAX_PAYLOAD:
                raise ProxyError("PROXY v2 payload too long")
            payload = await reader.readexactly(length)
            return parse_v2(head + fixed + payload)[0]
        if not head.startswith(V1_PREFIX):
            raise ProxyError("no PROXY header")
        data = bytearray(head)
        while not data.endswith(b"\r\n"):
            if len(data) >= V1_MAX_LENGTH:
                raise ProxyError("PROXY v1 line too long")
            data += await reader.readexactly(1)
        return parse_v1(bytes(data))

    try:
        return await asyncio.wait_for(_read(), timeout)
    except asyncio.IncompleteReadError:
        raise ProxyError("connection closed inside the PROXY header") from None
    except TimeoutError:
        raise ProxyError("no PROXY header in time") from None


def build_v1(source: Address, destination: Address) -> bytes:
    """A v1 header, for tests and for clients of our own that sit behind nothing."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode("ascii")


def build_v2(source: Address | None, destination: Address | None = None) -> bytes:
    """A v2 header (PROXY command, TCP), or LOCAL when ``source`` is None."""
    if source is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, 0)
    destination = destination or (("::1" if ":" in source[0] else "127.0.0.1"), 0)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    payload = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(payload)) + payload


# --- listeners behind a balancer: the header is taken off the socket before anything else ------

PEEK_MAX = 16 + V2_MAX_PAYLOAD
INCOMPLETE_PAUSE = 0.01  # a header split over segments: look again shortly (balancers send it in one)

Connected = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Address | None], Awaitable[None]]


def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> asyncio.Future[None]:
    fd = sock.fileno()
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_reader(fd, ready)
    future.add_done_callback(lambda _: loop.remove_reader(fd))
    return future


async def take_proxy_header(sock: socket.socket, *, timeout: float = DEFAULT_TIMEOUT) -> Address | None:
    """Read exactly one PROXY header off a non-blocking socket, leaving what follows unread.

    Peeks (MSG_PEEK) until the header parses, then consumes just its bytes: a TLS ClientHello
    sent right behind it stays in the kernel for the TLS layer. Raises :class:`ProxyError`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ProxyError("no PROXY header in time")
        try:
            await asyncio.wait_for(_readable(loop, sock), remaining)
            data = sock.recv(PEEK_MAX, socket.MSG_PEEK)
        except TimeoutError:
            raise ProxyError("no PROXY header in time") from None
        except BlockingIOError:
            continue
        except OSError as exc:
            raise ProxyError(f"connection failed inside the PROXY header: {exc}") from None
        if not data:
            raise ProxyError("connection closed inside the PROXY header")
        try:
            source, consumed = parse_proxy_header(data)
        except ProxyIncomplete:
            if len(data) >= PEEK_MAX:
                raise ProxyError("PROXY header too long") from None
            await asyncio.sleep(INCOMPLETE_PAUSE)
            continue
        while consumed > 0:
            consumed -= len(sock.recv(consumed))
        return source


class _ProxyAccept(asyncio.Protocol):
    """Holds a new connection unread until its PROXY header is taken, then hands it to a
    stream protocol (after a TLS handshake on implicit-TLS listeners)."""

    def __init__(self, connected: Connected, *, ssl: ssl_module.SSLContext | None, ssl_handshake_timeout: float | None,
                 limit: int, timeout: float, tasks: set[asyncio.Task[None]]) -> None:
        self.connected = connected
        self.ssl = ssl
        self.ssl_handshake_timeout = ssl_handshake_timeout
        self.limit = limit
        self.timeout = timeout
        self.tasks = tasks
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # runs before the transport's first read is scheduled
        self.task = asyncio.get_running_loop().create_task(self._start(transport))
        self.tasks.add(self.task)
        self.task.add_done_callback(self.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _start(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        raw = transport.get_extra_info("socket")
        # A second descriptor on the same connection: the transport's own is not ours to poll.
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        try:
            sock.setblocking(False)
            source = await take_proxy_header(sock, timeout=self.timeout)
        except ProxyError as exc:
            log.info("%s: bad PROXY header, closing: %s", peer, exc)
            transport.abort()
            return
        finally:
            sock.close()
        reader = asyncio.StreamReader(limit=self.limit)

        async def connected(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await self.connected(r, w, source)

        protocol = asyncio.StreamReaderProtocol(reader, connected)
        if self.ssl is None:
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            transport.resume_reading()
            return
        try:
            tls_transport = await loop.start_tls(transport, protocol, self.ssl, server_side=True,
                                                 ssl_handshake_timeout=self.ssl_handshake_timeout)
        except (OSError, ssl_module.SSLError, TimeoutError, ConnectionError) as exc:
            log.info("%s (for %s): TLS handshake failed: %s", peer, source, exc)
            transport.abort()
            return
        if tls_transport is None:
            transport.abort()
            return
        protocol.connection_made(tls_transport)


async def proxied_server_start(connected: Connected, *, sock: socket.socket | None = None, host: str | None = None,
                               port: int | None = None, ssl: ssl_module.SSLContext | None = None,
                               ssl_handshake_timeout: float | None = None, limit: int = 2**16,
                               timeout: float = DEFAULT_TIMEOUT,
                               tasks: set[asyncio.Task[None]] | None = None) -> asyncio.Server:
    """Like ``asyncio.start_server`` for a listener behind a balancer: every connection must open
    with a PROXY v1/v2 header (else it is closed); ``connected(reader, writer, source)`` gets the
    client's address from it (None: the header said to use the real peer). TLS, if any, starts
    after the header. Header tasks go into ``tasks`` so that the listener's close can cancel them.
    """
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = tasks if tasks is not None else set()

    def factory() -> _ProxyAccept:
        return _ProxyAccept(connected, ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout, limit=limit,
                            timeout=timeout, tasks=pending)

    if sock is not None:
        return await loop.create_server(factory, sock=sock)
    return await loop.create_server(factory, host, port or 0)
