"""The POP3 listeners: asyncio streams, implicit TLS (POP3S) and STLS (RFC 2595), timeouts.

``serve(stack)`` opens ``POP3_PORT`` and ``POP3S_PORT`` on ``MAIL_BIND`` for ``runmail``;
:class:`Pop3Service` takes any host and port, so tests start it on ephemeral ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from mailcore.dbthreads import executor_close
from mailcore.net.listen import ServerGroup, describe, listen_sockets
from mailcore.net.proxy import proxied_server_start
from mailcore.net.tls import server_context

from .maildrop import Maildrop
from .session import Action, Pop3Limits, Reply, Session, err

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
MAX_DISCARD = 64 * 1024  # bytes of one overlong line thrown away before the connection is closed
DB_WORKERS = 8
CLOSE_GRACE = 5.0
TLS_HANDSHAKE_TIMEOUT = 30.0


class LineTooLong(Exception):
    pass


class LineFlood(Exception):
    pass


class LineReader:
    """Lines from a stream, each at most ``limit`` bytes; an overlong line is skipped whole.

    Buffered here rather than in the StreamReader so that STLS can see, and refuse, any
    plaintext the client sent after it (the STARTTLS command-injection attack, RFC 2595 §4
    and CVE-2011-0411).
    """

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self.reader = reader
        self.limit = limit
        self.buffer = bytearray()

    async def readline(self) -> bytes | None:
        discarded = 0
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                if discarded or len(line) > self.limit:
                    raise LineTooLong
                return line
            if len(self.buffer) > self.limit:
                discarded += len(self.buffer)
                self.buffer.clear()
                if discarded > MAX_DISCARD:
                    raise LineFlood
            chunk = await self.reader.read(READ_SIZE)
            if not chunk:
                return None
            self.buffer += chunk


def _stream_buffered(reader: asyncio.StreamReader) -> int:
    # StreamReader has no public way to ask what it holds unread.
    return len(getattr(reader, "_buffer", b""))


class Pop3Service:
    """POP3 listeners sharing one database executor; :meth:`aclose` stops them all."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: Pop3Limits | None = None,
        leave_on_server: bool | None = None,
        allow_plaintext_on_loopback: bool | None = None,
        hostname: str | None = None,
        db_workers: int = DB_WORKERS,
        proxy_protocol: bool = False,
    ) -> None:
        """``proxy_protocol``: every connection starts with a balancer's PROXY v1/v2 header, whose
        source address is the client's (login throttling, plaintext login on loopback, logs)."""
        self.ssl_context = ssl_context
        self.limits = limits or Pop3Limits()
        self.proxy_protocol = proxy_protocol
        self.hostname = hostname or settings.MAIL_HOSTNAME
        self.allow_plaintext_on_loopback = (
            settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK if allow_plaintext_on_loopback is None
            else allow_plaintext_on_loopback
        )
        self.db_workers = db_workers
        self.executor = ThreadPoolExecutor(max_workers=db_workers, thread_name_prefix="pop3-db")
        self.maildrop = Maildrop(
            self.executor,
            leave_on_server=settings.POP3_LEAVE_ON_SERVER if leave_on_server is None else leave_on_server,
        )
        self.servers: list[asyncio.AbstractServer] = []
        self.connections: set[asyncio.Task[None]] = set()
        self.sessions: set[Session] = set()

    async def listen(self, host: str, port: int, *, implicit_tls: bool = False,
                     sockets: list[socket.socket] | None = None,
                     proxy_protocol: bool | None = None) -> asyncio.AbstractServer:
        """Listen on host:port (port 0 picks a free one), or on ``sockets`` already bound.

        ``proxy_protocol`` (default: the service's) expects a PROXY header on every connection.
        """
        if proxy_protocol is None:
            proxy_protocol = self.proxy_protocol
        if implicit_tls and self.ssl_context is None:
            raise ValueError("implicit TLS needs an SSL context")

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         peer: tuple[str, int] | None = None) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.connections.add(task)
            try:
                await self.handle(reader, writer, implicit_tls=implicit_tls, peer=peer)
            finally:
                self.connections.discard(task)

        tls = self.ssl_context if implicit_tls else None
        timeout = TLS_HANDSHAKE_TIMEOUT if implicit_tls else None
        server: asyncio.AbstractServer
        if proxy_protocol:
            # TLS (POP3S) starts after the header: the server gets no ssl context of its own.
            def start(sock: socket.socket | None) -> Awaitable[asyncio.AbstractServer]:
                return proxied_server_start(accept, sock=sock, host=None if sock else host,
                                            port=None if sock else port, ssl=tls, ssl_handshake_timeout=timeout,
                                            tasks=self.connections)
        else:
            def start(sock: socket.socket | None) -> Awaitable[asyncio.AbstractServer]:
                if sock is not None:
                    return asyncio.start_server(accept, sock=sock, ssl=tls, ssl_handshake_timeout=timeout)
                return asyncio.start_server(accept, host, port, ssl=tls, ssl_handshake_timeout=timeout)
        if sockets:
            server = ServerGroup([await start(sock) for sock in sockets])
        else:
            server = await start(None)
        self.servers.append(server)
        return server

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, implicit_tls: bool,
                     peer: tuple[str, int] | None = None) -> None:
        peer = peer or writer.get_extra_info("peername")
        client_ip = peer[0] if isinstance(peer, tuple) and peer else ""
        session = Session(
            self.maildrop,
            client_ip=client_ip,
            hostname=self.hostname,
            tls_active=implicit_tls,
            tls_available=self.ssl_context is not None,
            allow_plaintext_on_loopback=self.allow_plaintext_on_loopback,
            limits=self.limits,
        )
        lines = LineReader(reader, self.limits.max_line)
        self.sessions.add(session)
        try:
            await self._send(writer, session.greeting())
            while True:
                try:
                    line = await asyncio.wait_for(lines.readline(), session.idle_timeout())
                except TimeoutError:
                    await self._send(writer, err("idle for too long; closing"))
                    break
                except LineTooLong:
                    reply = session.line_too_long()
                else:
                    if line is None:
                        break
                    reply = await session.handle_line(line)
                if reply.action is Action.STARTTLS:
                    # Stop reading before "+OK" so the ClientHello cannot land in the plaintext
                    # buffer, and refuse plaintext pipelined after STLS (CVE-2011-0411): it would
                    # otherwise be read as if it had come over TLS.
                    transport = writer.transport
                    assert isinstance(transport, asyncio.Transport)
                    transport.pause_reading()
                    if lines.buffer or _stream_buffered(reader):
                        await self._send(writer, err("nothing may follow STLS before the TLS handshake; closing"))
                        break
                await self._send(writer, reply)
                if reply.action is Action.CLOSE:
                    break
                if reply.action is Action.STARTTLS:
                    assert self.ssl_context is not None
                    await writer.start_tls(self.ssl_context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
                    session.tls_started()
        except LineFlood:
            with contextlib.suppress(Exception):
                await self._send(writer, err("line too long; closing"))
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("POP3 connection from %s ended: %r", client_ip, exc)
        except Exception:
            # E.g. the database failing half-way through a RETR: the reply cannot be finished
            # correctly, so the connection is closed (nothing is deleted).
            log.exception("POP3 connection from %s failed", client_ip)
        finally:
            try:
                await session.close()
                self.sessions.discard(session)  # kept if cancelled: aclose releases its lock
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE)

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        writer.write(reply.line)
        if reply.body is not None:
            async for chunk in reply.body:
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), self.limits.send_timeout)
        await asyncio.wait_for(writer.drain(), self.limits.send_timeout)

    async def aclose(self) -> None:
        for server in self.servers:
            server.close()
        if self.connections:
            # Sessions whose clients are leaving end by themselves (and release their locks);
            # the rest are cancelled after a grace period.
            await asyncio.wait(list(self.connections), timeout=CLOSE_GRACE)
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=CLOSE_GRACE)
        for session in list(self.sessions):
            await session.release_lock()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), CLOSE_GRACE)
        loop = asyncio.get_running_loop()
        # One closing job for each thread the pool may have, held at a barrier: every thread takes
        # exactly one, a thread still busy with a job of a cancelled session included (closing
        # only as many as had started let new threads take the jobs of busy or idle ones, whose
        # connections were then left to the garbage collector).
        await loop.run_in_executor(None, executor_close, self.executor, self.db_workers)


def listen_ports() -> list[tuple[str, int]]:
    """(listener name, port) of the listeners :func:`serve` opens, for the supervisor; a port of 0
    means that listener is disabled (as for SMTP), never "any free port"."""
    ports = [("pop3", int(settings.POP3_PORT)), ("pop3s", int(settings.POP3S_PORT))]
    return [(name, port) for name, port in ports if port != 0]


async def serve(stack: contextlib.AsyncExitStack) -> list[str]:
    """Open POP3 (with STLS) and POP3S on ``MAIL_BIND`` for ``manage.py runmail``."""
    service = Pop3Service(ssl_context=server_context())
    stack.push_async_callback(service.aclose)
    lines = []
    for name, port in listen_ports():
        proxy = name in settings.PROXY_PROTOCOL_LISTENERS
        implicit_tls = name == "pop3s"
        sockets = listen_sockets(name, settings.MAIL_BIND, port)
        await service.listen(settings.MAIL_BIND, port, implicit_tls=implicit_tls, sockets=sockets,
                             proxy_protocol=proxy)
        bound = describe(sockets)
        lines.append(f"{name} listening on {bound}" + (" (implicit TLS)" if implicit_tls else " (STLS)")
                     + (" (PROXY protocol)" if proxy else ""))
    return lines
