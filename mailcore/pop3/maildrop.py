"""The POP3 maildrop on the database: login, the one-session lock, the INBOX snapshot,
reading blobs in chunks, and the UPDATE state's writes through the store.

Blocking work (ORM, Redis) runs on an executor the server owns, never on the event loop, and
no transaction is held across a network wait: every call here is one short unit of work.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from django.db import connection

from mailcore import store
from mailcore.auth import LoginThrottle, authenticate_mail
from mailcore.dbthreads import in_db_thread
from mailcore.models import Account, Folder, FolderEntry

log = logging.getLogger(__name__)

T = TypeVar("T")

# Advisory lock key space (two int4 keys): the first names the purpose, so other users of
# advisory locks (IMAP, maintenance) never collide with a POP3 maildrop lock.
LOCK_NAMESPACE = 0x504F5033  # "POP3"
READ_CHUNK_SIZE = 256 * 1024
SIZE_CACHE_LIMIT = 200_000

# Blobs are immutable and their ids never reused, so a blob's wire size is cached per process
# for as long as we like: a mailbox polled every few minutes and left on the server is read
# from PostgreSQL once, not at every login.
_wire_sizes: dict[int, int] = {}
_wire_sizes_lock = threading.Lock()


class LoginOutcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class Login:
    outcome: LoginOutcome
    account: Account | None = None


@dataclass(frozen=True)
class DropEntry:
    """A message of the snapshot taken at login; ``size`` is its octet count as sent."""

    uid: int
    message_id: int
    blob_id: int
    raw_size: int
    size: int

    @property
    def unique_id(self) -> str:
        # The Message primary key: it stays with the message for its whole life, whatever
        # folders it is moved through (a move out of INBOX and back keeps it, so a client
        # that leaves mail on the server does not fetch it twice), and PostgreSQL sequences
        # never hand it to another message. RFC 1939 §7 asks for 1-70 characters 0x21-0x7E.
        return str(self.message_id)


@dataclass(frozen=True)
class Snapshot:
    folder: Folder
    entries: list[DropEntry]


class MessageGone(Exception):
    """The message was expunged by another client after the snapshot was taken."""


def is_loopback(client_ip: str) -> bool:
    try:
        address = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class MaildropLock:
    """A session-level PostgreSQL advisory lock held on a connection of its own.

    The lock lives exactly as long as that connection: a crashed process or a dropped
    network link releases it with no expiry to tune (a Redis lock would need a TTL and
    renewal, and a stalled process could lose it while still serving). It is not the ORM's
    connection, whose lifetime Django manages (CONN_MAX_AGE, health checks) and which may be
    closed and reopened under us.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    @classmethod
    async def acquire(cls, account_id: int) -> MaildropLock | None:
        params: dict[str, Any] = dict(connection.get_connection_params())
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        connecting = asyncio.ensure_future(
            psycopg.AsyncConnection.connect(**params, autocommit=True, connect_timeout=10)
        )
        try:
            conn = await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # Cancelled mid-connect (the server shutting down): close what the connect makes.
            connecting.add_done_callback(_close_when_connected)
            raise
        try:
            lock_key = (account_id & 0x7FFFFFFF) - (account_id & 0x80000000)
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s::int4, %s::int4)", [LOCK_NAMESPACE, lock_key])
            row = await cur.fetchone()
        except BaseException:
            await conn.close()
            raise
        if not row or not row[0]:
            await conn.close()
            return None
        return cls(conn)

    async def release(self) -> None:
        # Closing the connection releases every session lock it holds.
        await self._conn.close()


def _close_when_connected(task: asyncio.Future[psycopg.AsyncConnection[Any]]) -> None:
    if not task.cancelled() and task.exception() is None:
        asyncio.ensure_future(task.result().close())


class Maildrop:
    """Database side of POP3 sessions, sharing one executor and its DB connections."""

    def __init__(self, executor: ThreadPoolExecutor, *, leave_on_server: bool, throttle: LoginThrottle | None = None,
                 read_chunk_size: int = READ_CHUNK_SIZE) -> None:
        self.executor = executor
        self.leave_on_server = leave_on_server
        self.throttle = throttle or LoginThrottle()
        self.read_chunk_size = read_chunk_size

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await in_db_thread(self.executor, fn, *args, **kwargs)

    async def login(self, address: str, password: str, client_ip: str) -> Login:
        return await self.run(self._login, address, password, client_ip)

    def _login(self, address: str, password: str, client_ip: str) -> Login:
        if self.throttle.is_blocked(client_ip, address):
            return Login(LoginOutcome.THROTTLED)
        account = authenticate_mail(address, password)
        if account is None:
            self.throttle.record_failure(client_ip, address)
            return Login(LoginOutcome.FAILED)
        self.throttle.record_success(client_ip, account.address)
        return Login(LoginOutcome.OK, account)

    async def lock(self, account: Account) -> MaildropLock | None:
        return await MaildropLock.acquire(account.pk)

    async def snapshot(self, account: Account) -> Snapshot:
        return await self.run(_snapshot, account)

    async def read(self, account: Account, entry: DropEntry) -> AsyncIterator[bytes]:
        """The stored bytes of ``entry`` in chunks, read from PostgreSQL a chunk at a time."""
        offset = 0
        while offset < entry.raw_size or offset == 0:
            chunk = await self.run(_read_chunk, account.pk, entry.message_id, offset, self.read_chunk_size)
            if chunk is None:
                raise MessageGone(entry.message_id)
            if not chunk:
                return
            yield chunk
            offset += len(chunk)

    async def update(self, account: Account, folder: Folder, *, deleted: list[DropEntry],
                     seen: list[DropEntry]) -> int:
        """The UPDATE state (RFC 1939 §6); returns how many messages were removed."""
        return await self.run(self._update, account, folder, deleted, seen)

    def _update(self, account: Account, folder: Folder, deleted: list[DropEntry], seen: list[DropEntry]) -> int:
        if self.leave_on_server:
            seen, deleted = seen + deleted, []
        deleted_uids = {e.uid for e in deleted}
        seen_uids = sorted({e.uid for e in seen} - deleted_uids)
        if seen_uids:
            store.flags_store(account=account, folder=folder, uids=seen_uids, mode="add", flags=["\\Seen"])
        if not deleted_uids:
            return 0
        removed = store.folder_expunge(account=account, folder=folder, uids=sorted(deleted_uids), only_deleted=False)
        return len(removed)


def _snapshot(account: Account) -> Snapshot:
    folder = Folder.objects.get(account=account, name=Folder.INBOX)
    rows = list(
        FolderEntry.objects.filter(folder=folder)
        .order_by("uid")
        .values_list("uid", "message_id", "message__blob_id", "message__size")
    )
    with _wire_sizes_lock:
        sizes = {blob_id: _wire_sizes[blob_id] for _, _, blob_id, _ in rows if blob_id in _wire_sizes}
    missing = sorted({blob_id for _, _, blob_id, _ in rows} - sizes.keys())
    if missing:
        computed = blob_wire_sizes(missing)
        with _wire_sizes_lock:
            if len(_wire_sizes) + len(computed) > SIZE_CACHE_LIMIT:
                _wire_sizes.clear()
            _wire_sizes.update(computed)
        sizes.update(computed)
    entries = [
        DropEntry(uid=uid, message_id=message_id, blob_id=blob_id, raw_size=raw_size, size=sizes[blob_id])
        for uid, message_id, blob_id, raw_size in rows
        if blob_id in sizes
    ]
    return Snapshot(folder=folder, entries=entries)


# wire_size() computed inside PostgreSQL, so that a big mailbox's bytes are not shipped to us
# just to be counted. encode(data, 'escape') keeps CR and LF as they are and writes any other
# byte as itself, as a doubled backslash or as a backslash and three octal digits, none of
# which contains CR or LF; so counting LF and CRLF in that text counts them in the blob.
_WIRE_SIZE_SQL = """
    SELECT id, octet_length(data) + (octet_length(t) - octet_length(replace(t, E'\\n', '')))
                    - (octet_length(t) - octet_length(replace(t, E'\\r\\n', ''))) / 2
    FROM (SELECT id, data, encode(data, 'escape') AS t FROM mailcore_blob WHERE id = ANY(%s)) AS b
"""


def blob_wire_sizes(blob_ids: list[int]) -> dict[int, int]:
    """``wire_size`` of each blob, by id, computed by PostgreSQL."""
    sizes: dict[int, int] = {}
    for start in range(0, len(blob_ids), 100):
        with connection.cursor() as cur:
            cur.execute(_WIRE_SIZE_SQL, [blob_ids[start:start + 100]])
            sizes.update((int(blob_id), int(size)) for blob_id, size in cur.fetchall())
    return sizes


def _read_chunk(account_id: int, message_id: int, offset: int, length: int) -> bytes | None:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT substring(b.data FROM %s FOR %s) FROM mailcore_message m "
            "JOIN mailcore_blob b ON b.id = m.blob_id WHERE m.id = %s AND m.account_id = %s",
            [offset + 1, length, message_id, account_id],
        )
        row = cur.fetchone()
    return None if row is None else bytes(row[0])
