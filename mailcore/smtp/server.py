"""SMTP listeners: MX (``SMTP_PORT``), submission with STARTTLS (``SUBMISSION_PORT``) and
submission over implicit TLS (``SMTPS_PORT``). Port 0 in the settings means "do not open".

:func:`listener_start` opens one listener on any host/port (tests use ephemeral ports);
:func:`serve` opens the three from the settings for ``manage.py runmail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from mailcore.dbthreads import executor_close
from mailcore.net.listen import ServerGroup, listen_sockets
from mailcore.net.tls import server_context
from mailcore.store.asyncsql import AsyncStatements
from mailcore.store.sql import use_generic_plans

from .dmarc import organizational_domain
from .handler import DEFAULT_DB_THREADS, MailHandler
from .protocol import Limits, MailSMTP, Role

log = logging.getLogger("mailcore.smtp.server")

STOP_GRACE = 20.0  # seconds a message being stored at shutdown may take to get its reply
# ...and how much longer one still being stored then is waited for (its commit cannot be stopped).
STORE_LIMIT = 300.0


def limits_from_settings(**overrides: object) -> Limits:
    values: dict[str, object] = {
        "max_message_size": int(settings.MAX_MESSAGE_SIZE),
        "max_recipients": int(settings.MAX_RECIPIENTS),
        "max_messages_per_connection": int(settings.SMTP_MAX_MESSAGES_PER_CONNECTION),
    }
    values.update(overrides)
    return Limits(**values)  # type: ignore[arg-type]


@dataclass
class Listener:
    role: Role
    server: asyncio.AbstractServer
    host: str
    port: int
    proxy_protocol: bool
    connections: weakref.WeakSet[MailSMTP] = field(default_factory=weakref.WeakSet)
    handler: MailHandler | None = None  # its database connections close with the listener

    def describe(self) -> str:
        proxy = " (PROXY protocol)" if self.proxy_protocol else ""
        return f"smtp {self.role.value} listening on {self.host}:{self.port}{proxy}"


async def listener_start(
    *,
    role: Role,
    host: str,
    port: int,
    executor: ThreadPoolExecutor,
    limits: Limits | None = None,
    proxy_protocol: bool | None = None,
    hostname: str | None = None,
    sockets: list[socket.socket] | None = None,
    db: AsyncStatements | None = None,
) -> Listener:
    """Listen on host:port (port 0 picks a free one), or on ``sockets`` already bound.

    ``db``: the event loop's database connections, shared with the other listeners (whoever made
    it closes it); without it the listener has its own, closed by :func:`listener_stop`."""
    loop = asyncio.get_running_loop()
    name = hostname or settings.MAIL_HOSTNAME
    handler = MailHandler(role=role, executor=executor, hostname=name, db=db)
    limits = limits or limits_from_settings()
    if proxy_protocol is None:
        proxy_protocol = role.value in settings.PROXY_PROTOCOL_LISTENERS
    tls = server_context()
    if role is Role.MX:
        # Parse the bundled Public Suffix List now rather than during the first message's DMARC check.
        await loop.run_in_executor(executor, organizational_domain, "example.org")

    connections: weakref.WeakSet[MailSMTP] = weakref.WeakSet()

    def factory() -> MailSMTP:
        protocol = MailSMTP(
            handler, role=role, limits=limits, hostname=name, tls_context=tls, proxy_protocol=proxy_protocol, loop=loop
        )
        connections.add(protocol)
        return protocol

    server: asyncio.AbstractServer
    if sockets:
        server = ServerGroup([await loop.create_server(factory, sock=sock) for sock in sockets])
    else:
        server = await loop.create_server(factory, host=host, port=port)
    bound = server.sockets[0].getsockname()[1] if server.sockets else port
    return Listener(
        role=role, server=server, host=host, port=bound, proxy_protocol=proxy_protocol, connections=connections,
        handler=handler,
    )


async def listener_stop(listener: Listener, *, grace: float = STOP_GRACE, store_limit: float = STORE_LIMIT) -> None:
    """Stop accepting; let messages being stored get their reply (up to ``grace`` seconds), then
    close every connection with 421 (a client retries what it did not get a 250 for).

    A message still being stored when the grace ends is waited for (up to ``store_limit``): its
    transaction, in a database thread or sent from the event loop (shielded), commits whatever
    becomes of the client's connection, so dropping that connection first would make the client
    resend a message we kept (a duplicate).
    Its connection closes with 421 right after its reply."""
    loop = asyncio.get_running_loop()
    listener.server.close()
    deadline = loop.time() + grace
    while any(p.storing for p in listener.connections) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for protocol in list(listener.connections):
        if protocol.storing:
            protocol.close_after_reply = True
        else:
            protocol.shut_down()
    deadline = loop.time() + store_limit
    while any(p.storing for p in listener.connections) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for protocol in list(listener.connections):
        if protocol.storing:
            log.warning("%r: message still being stored after %.0f s at shutdown; connection dropped",
                        protocol.session and protocol.session.peer, grace + store_limit)
        protocol.shut_down()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(listener.server.wait_closed(), 5)
    if listener.handler is not None:
        await listener.handler.close()


def listen_ports() -> list[tuple[str, int]]:
    """(listener name, port) of every listener :func:`serve` opens, for the supervisor."""
    return [(role.value, port) for role, port in ports_from_settings() if port != 0]


def ports_from_settings() -> list[tuple[Role, int]]:
    return [
        (Role.MX, int(settings.SMTP_PORT)),
        (Role.SUBMISSION, int(settings.SUBMISSION_PORT)),
        (Role.SUBMISSIONS, int(settings.SMTPS_PORT)),
    ]


async def serve(stack: contextlib.AsyncExitStack) -> list[str]:
    aiosmtpd_log = logging.getLogger("mail.log")
    if aiosmtpd_log.level == logging.NOTSET:
        aiosmtpd_log.setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
    executor = ThreadPoolExecutor(
        max_workers=DEFAULT_DB_THREADS, thread_name_prefix="smtp-db", initializer=use_generic_plans
    )
    stack.callback(executor_close, executor, DEFAULT_DB_THREADS)
    db = AsyncStatements(size=DEFAULT_DB_THREADS)
    stack.push_async_callback(db.close)  # after the listeners have stopped (the stack unwinds in reverse)
    lines = []
    for role, port in ports_from_settings():
        if port == 0:
            continue
        sockets = listen_sockets(role.value, settings.MAIL_BIND, port)
        listener = await listener_start(role=role, host=settings.MAIL_BIND, port=port, executor=executor,
                                        sockets=sockets, db=db)
        stack.push_async_callback(listener_stop, listener)
        lines.append(listener.describe())
    return lines
