"""Listening sockets for the mail listeners, bound here or inherited from the supervisor.

With ``MAIL_PROCESSES`` above 1, :mod:`mailcore.net.supervisor` binds every listener once per
worker slot with ``SO_REUSEPORT`` (the kernel spreads new connections over the slots) and keeps
those sockets open for the life of the mail role, so connections that arrive while a worker is
being restarted wait in its slot's backlog instead of being refused. Each worker inherits its
slot's sockets; their descriptors are named in :data:`INHERITED_ENV` as
``name=fd,fd;name=fd`` (``name`` is the listener's role: smtp, submission, smtps, imap, imaps,
pop3, pop3s).

A listener with no inherited socket binds its own, as ``loop.create_server`` would: every
address ``MAIL_BIND`` resolves to, ``IPV6_V6ONLY`` on IPv6 sockets, ``SO_REUSEADDR``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterable
from typing import Any

INHERITED_ENV = "MAIL_LISTEN_FDS"
BACKLOG = 511


def _listening(family: int, kind: int, proto: int, address: tuple[Any, ...], *, reuse_port: bool,
               opened: list[socket.socket]) -> None:
    sock = socket.socket(family, kind, proto)
    opened.append(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(address)
    sock.listen(BACKLOG)
    sock.setblocking(False)


def bind(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Bound and listening sockets for every address of ``host`` (all interfaces when empty).

    Port 0 picks a free port; with several addresses they all get the port of the first.
    Raises OSError (e.g. address in use) with every socket opened so far closed.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[Any, ...]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            if port == 0 and sockets:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            _listening(family, kind, proto, address, reuse_port=reuse_port, opened=sockets)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_like(sockets: list[socket.socket]) -> list[socket.socket]:
    """One more ``SO_REUSEPORT`` socket on each address of ``sockets`` (a further worker slot)."""
    more: list[socket.socket] = []
    try:
        for template in sockets:
            _listening(template.family, template.type, template.proto, template.getsockname(), reuse_port=True,
                       opened=more)
    except OSError:
        for sock in more:
            sock.close()
        raise
    return more


def encode_inherited(named: Iterable[tuple[str, list[socket.socket]]]) -> str:
    return ";".join(f"{name}={','.join(str(s.fileno()) for s in socks)}" for name, socks in named)


def decode_inherited(value: str) -> dict[str, list[int]]:
    """``name=fd,fd;name=fd`` → ``{name: [fd, ...]}``; ValueError on anything else."""
    out: dict[str, list[int]] = {}
    for part in filter(None, value.split(";")):
        name, sep, fds = part.partition("=")
        if not sep or not name or not fds:
            raise ValueError(f"{INHERITED_ENV}: bad entry {part!r}")
        out[name] = [int(fd) for fd in fds.split(",")]
    return out


def inherited(name: str) -> list[socket.socket] | None:
    """The sockets the supervisor bound for listener ``name``, or None outside a worker."""
    value = os.environ.get(INHERITED_ENV)
    if value is None:
        return None
    fds = decode_inherited(value).get(name)
    if fds is None:
        return None
    sockets = [socket.socket(fileno=fd) for fd in fds]
    for sock in sockets:
        sock.setblocking(False)
    return sockets


def listen_sockets(name: str, host: str, port: int) -> list[socket.socket]:
    """The sockets listener ``name`` serves: inherited from the supervisor, else bound now."""
    return inherited(name) or bind(host, port)


def describe(sockets: list[socket.socket]) -> str:
    parts = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        parts.append(f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}")
    return ", ".join(parts)


class ServerGroup(asyncio.AbstractServer):
    """Several asyncio servers (one per address) that open and close as one."""

    def __init__(self, servers: list[asyncio.AbstractServer]) -> None:
        self.servers = servers

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        out: list[socket.socket] = []
        for server in self.servers:
            out.extend(getattr(server, "sockets", ()))
        return tuple(out)

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.servers[0].get_loop()

    def is_serving(self) -> bool:
        return any(server.is_serving() for server in self.servers)

    async def start_serving(self) -> None:
        for server in self.servers:
            await server.start_serving()

    async def serve_forever(self) -> None:
        await asyncio.gather(*(server.serve_forever() for server in self.servers))

    async def wait_closed(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
