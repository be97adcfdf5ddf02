"""The IMAP listeners: asyncio streams, STARTTLS and implicit TLS, timeouts and limits.

``serve(stack)`` opens IMAP_PORT (STARTTLS) and IMAPS_PORT (implicit TLS) on MAIL_BIND for
``manage.py runmail``; :func:`start_listener` takes a host and port so tests use ephemeral ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

from mailcore.dbthreads import executor_close, in_db_thread
from mailcore.net.listen import ServerGroup, describe, listen_sockets
from mailcore.net.proxy import proxied_server_start
from mailcore.net.tls import server_context

from .compress import Deflater, InflatingReader
from .notify import Notifier
from .parser import ParseError, literal_at_end, parse_command
from .session import IDLE_TIMEOUT_SECONDS, FatalIOError, Session, State

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Every limit of a connection, named (STYLE.md)."""

    line_before_auth: int = 8 * 1024
    line: int = 64 * 1024
    literal_before_auth: int = 8 * 1024
    literal: int = 64 * 1024  # any literal but APPEND's message
    command_before_auth: int = 16 * 1024
    command: int = 256 * 1024  # a whole command without APPEND's message
    timeout_before_auth: float = 60.0
    timeout: float = float(IDLE_TIMEOUT_SECONDS)
    write_buffer: int = 256 * 1024
    db_threads: int = 16


class DatabasePool:
    """Blocking ORM work off the event loop, in a bounded pool of threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="imap-db")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # The connection check and the dead-connection handling shared with SMTP and POP3.
        return await in_db_thread(self.executor, fn, *args, **kwargs)

    def close(self) -> None:
        executor_close(self.executor, self.threads)


class TooLarge(FatalIOError):
    """A limit the connection cannot recover from; ``tagged`` is the command's completion, if any."""

    def __init__(self, text: str, tagged: bytes = b"") -> None:
        super().__init__(text)
        self.tagged = tagged


class Connection:
    """One client: implements the session's SessionIO over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool,
                 starttls_available: bool, limits: Limits, peer: tuple[str, int] | None = None) -> None:
        self.reader: asyncio.StreamReader | InflatingReader = reader
        self.raw_reader = reader
        self.writer = writer
        self.deflater: Deflater | None = None
        self.limits = limits
        self.is_tls = tls
        self.starttls_available = starttls_available
        # The client's address: from the PROXY header behind a balancer, else the socket's peer.
        peer = peer or writer.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else ""
        try:
            self.is_loopback = ipaddress.ip_address(self.client_ip.split("%")[0]).is_loopback
        except ValueError:
            self.is_loopback = False
        self.session: Session | None = None

    def _authenticated(self) -> bool:
        return self.session is not None and self.session.state is not State.NOT_AUTHENTICATED

    def _timeout(self) -> float:
        return self.limits.timeout if self._authenticated() else self.limits.timeout_before_auth

    @property
    def compressing(self) -> bool:
        return self.deflater is not None

    async def write(self, data: bytes) -> None:
        if self.deflater is not None:
            data = self.deflater.compress(data)
        self.writer.write(data)
        await self.writer.drain()

    async def start_compression(self) -> None:
        """COMPRESS DEFLATE (RFC 4978): everything after the tagged OK is deflated both ways.
        Bytes the client sent right after its command are already compressed."""
        pending = bytes(self.raw_reader._buffer)  # type: ignore[attr-defined]
        self.raw_reader._buffer.clear()  # type: ignore[attr-defined]
        self.reader = InflatingReader(self.raw_reader, pending, self.limits.line + 2)
        self.deflater = Deflater()

    async def read_line(self, timeout: float | None = None) -> bytes:
        limit = self.limits.line if self._authenticated() else self.limits.line_before_auth
        try:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for wraps the read in a task of
            # its own, on every line of every command.
            async with asyncio.timeout(timeout or self._timeout()):
                line = await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise TooLarge("line too long") from None
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("client went away") from exc
        if len(line) > limit:
            raise TooLarge("line too long")
        return line

    def _ack_now(self) -> None:
        """Acknowledge the literal at once: clients that send the literal and the closing CRLF
        in two writes (imaplib) otherwise wait for our delayed ACK under Nagle (~40 ms)."""
        sock = self.writer.get_extra_info("socket")
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if sock is not None and quickack is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    async def starttls(self) -> None:
        if self.raw_reader._buffer:  # type: ignore[attr-defined]
            # Commands pipelined after STARTTLS were sent in the clear: never act on them.
            raise ConnectionResetError("data sent before the TLS handshake")
        await self.writer.start_tls(server_context())
        self.is_tls = True

    async def read_command(self) -> bytes | None:
        """One complete command with its literals, or None when it was refused (already answered)."""
        authed = self._authenticated()
        command_limit = self.limits.command if authed else self.limits.command_before_auth
        literal_limit = self.limits.literal if authed else self.limits.literal_before_auth
        line = await self.read_line()
        data = bytearray()
        words = line.split(b" ", 3)
        tag = words[0].decode("ascii", "replace")
        name = words[1].upper() if len(words) > 1 else b""
        is_append = name == b"APPEND" and authed
        while True:
            data += line
            announced = literal_at_end(line)
            if announced is None:
                break
            size, nonsync = announced
            allowed = settings.MAX_MESSAGE_SIZE if is_append else literal_limit
            total_limit = command_limit + (settings.MAX_MESSAGE_SIZE if is_append else 0)
            if size > allowed or len(data) + size > total_limit:
                if nonsync:
                    # RFC 7888 §4: the literal's octets are already on their way and cannot be
                    # told apart from commands, so the connection ends: BYE, then the command's
                    # completion, both with TOOBIG (RFC 9051 §7.1).
                    kind = "NO" if is_append else "BAD"
                    raise TooLarge("[TOOBIG] literal too large",
                                   f"{tag} {kind} [TOOBIG] literal too large\r\n".encode())
                code = "[TOOBIG] " if is_append else ""
                await self.write(f"{tag} {'NO' if is_append else 'BAD'} {code}literal too large\r\n".encode())
                return None
            if not nonsync:
                await self.write(b"+ Ready for literal data\r\n")
            try:
                async with asyncio.timeout(self._timeout()):
                    data += await self.reader.readexactly(size)
            except asyncio.IncompleteReadError as exc:
                raise ConnectionResetError("client went away") from exc
            self._ack_now()
            line = await self.read_line()
            if len(data) + len(line) > total_limit:
                raise TooLarge("command too long")
        return bytes(data)

    async def run(self, db: DatabasePool, notifier: Notifier | None = None) -> None:
        session = Session(self, db=db.run, notifier=notifier)
        self.session = session
        try:
            await self.write(session.greeting())
            while session.state is not State.LOGOUT:
                try:
                    data = await self.read_command()
                except TooLarge as exc:
                    await self.write(f"* BYE {exc}\r\n".encode() + exc.tagged)
                    return
                except TimeoutError:
                    await self.write(b"* BYE autologout; idle for too long\r\n")
                    return
                if data is None:
                    continue
                try:
                    command = parse_command(data)
                except ParseError as exc:
                    await session.parse_error(exc)
                    continue
                await session.handle(command)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except Exception:
            log.exception("IMAP session from %s failed", self.client_ip)
            with contextlib.suppress(Exception):
                await self.write(b"* BYE internal server error\r\n")
        finally:
            await session.close()
            with contextlib.suppress(Exception):
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 5)


class Listener:
    def __init__(self, server: asyncio.AbstractServer, db: DatabasePool, tasks: set[asyncio.Task[None]],
                 notifier: Notifier) -> None:
        self.server = server
        self.db = db
        self.tasks = tasks
        self.notifier = notifier

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def close(self) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        await self.notifier.close()
        await self.server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, self.db.close)


async def start_listener(host: str, port: int, *, implicit_tls: bool = False, limits: Limits | None = None,
                         db: DatabasePool | None = None, sockets: list[socket.socket] | None = None,
                         proxy_protocol: bool = False) -> Listener:
    """Listen for IMAP clients on host:port (port 0 picks a free one), or on ``sockets`` already bound.

    With ``proxy_protocol`` every connection must start with a PROXY v1/v2 header (a balancer's);
    its source address is the client's for login throttling, LOGIN on loopback, and logs.
    """
    limits = limits or Limits()
    pool = db or DatabasePool(limits.db_threads)
    tasks: set[asyncio.Task[None]] = set()
    notifier = Notifier()  # one Redis pub/sub connection for the account events of all sessions

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: tuple[str, int] | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            conn = Connection(reader, writer, tls=implicit_tls, starttls_available=not implicit_tls, limits=limits,
                              peer=peer)
            await conn.run(pool, notifier)
        except asyncio.CancelledError:
            # Closing the listener cancels its clients; end quietly (Python 3.11's stream
            # callback would log a cancelled handler task as an error).
            pass
        finally:
            tasks.discard(task)

    tls = server_context() if implicit_tls else None
    server: asyncio.AbstractServer
    if proxy_protocol:
        # TLS (IMAPS) starts after the header: the server gets no ssl context of its own.
        def start(sock: socket.socket | None) -> Awaitable[asyncio.AbstractServer]:
            return proxied_server_start(client, sock=sock, host=None if sock else host, port=None if sock else port,
                                        ssl=tls, limit=limits.line + 2, tasks=tasks)
    else:
        def start(sock: socket.socket | None) -> Awaitable[asyncio.AbstractServer]:
            if sock is not None:
                return asyncio.start_server(client, sock=sock, ssl=tls, limit=limits.line + 2)
            return asyncio.start_server(client, host, port, ssl=tls, limit=limits.line + 2)
    if sockets:
        server = ServerGroup([await start(sock) for sock in sockets])
    else:
        server = await start(None)
    return Listener(server, pool, tasks, notifier)


def listen_ports() -> list[tuple[str, int]]:
    """(listener name, port) of the listeners :func:`serve` opens, for the supervisor; a port of 0
    means that listener is disabled (as for SMTP), never "any free port"."""
    ports = [("imap", int(settings.IMAP_PORT)), ("imaps", int(settings.IMAPS_PORT))]
    return [(name, port) for name, port in ports if port != 0]


async def serve(stack: contextlib.AsyncExitStack) -> list[str]:
    lines = []
    for name, port in listen_ports():
        implicit = name == "imaps"
        sockets = listen_sockets(name, settings.MAIL_BIND, port)
        proxy = name in settings.PROXY_PROTOCOL_LISTENERS
        listener = await start_listener(settings.MAIL_BIND, port, implicit_tls=implicit, sockets=sockets,
                                        proxy_protocol=proxy)
        stack.push_async_callback(listener.close)
        lines.append(f"IMAP{'S' if implicit else ''} listening on {describe(sockets)}"
                     f" ({'implicit TLS' if implicit else 'STARTTLS'}){' (PROXY protocol)' if proxy else ''}")
    return lines
