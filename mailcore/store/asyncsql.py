"""The store's statements from an event loop: a few psycopg async connections.

The SMTP server stores a message for one mailbox with one statement that is its own transaction
(``copies_statement(alone=True)``). Handing that statement to a database thread and back cost
the server about a fifth of its CPU per message: two thread wake-ups, the GIL passed back and
forth, and a wake-up of the event loop through its self-pipe. Awaited here, the statement goes
out from the event loop and its result comes back on the loop's own poll.

Each connection runs one statement at a time; at most ``size`` are open. The statements are
prepared once per connection as in :mod:`mailcore.store.sql`, whose rules they follow:
parameters sent apart, generic plans, autocommit (a statement is its own transaction), and
the connection checks of :mod:`mailcore.dbthreads`: an idle connection unused for
``HEALTH_CHECK_INTERVAL`` is checked before use, and a connection found dead makes every other
one (the threads' too) be checked or dropped before its next statement, so that a database
restart costs one failed statement, not one per connection.

A statement once sent always runs to its end, even when the task awaiting it is cancelled
(server shutdown): the reply depends on whether it committed, and an interrupted connection
could not go back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import pq

from mailcore import dbthreads

from .sql import GENERIC_PLANS_SQL, PREPARE_ONLY_EXPLICIT

log = logging.getLogger(__name__)


class AsyncStatements:
    """Up to ``size`` connections of one event loop, one statement at a time on each."""

    def __init__(self, size: int) -> None:
        self.idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []  # (connection, last used)
        self.busy: set[psycopg.AsyncConnection[Any]] = set()
        self.slots = asyncio.Semaphore(size)
        self.lost = dbthreads.lost_connections()
        self.statements = 0  # run to their end, successful or not (tests look at it)
        self.closed = False
        self.running: set[asyncio.Task[list[tuple[Any, ...]]]] = set()

    async def fetch_all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one prepared statement (none for a statement without rows); psycopg's
        errors as raised."""
        if self.closed:
            raise psycopg.OperationalError("the store's async connections are closed")
        task = asyncio.ensure_future(self._run(sql, params))
        self.running.add(task)
        task.add_done_callback(self._ended)
        return await asyncio.shield(task)

    def _ended(self, task: asyncio.Task[list[tuple[Any, ...]]]) -> None:
        self.running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its awaiter may have been cancelled (it logged nothing)

    async def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self.slots:
            if self.closed:  # closed while this statement waited for a connection
                raise psycopg.OperationalError("the store's async connections are closed")
            conn = await self._acquire()
            self.busy.add(conn)
            reusable = False
            try:
                async with conn.cursor() as cur:
                    await cur.execute(sql, params, prepare=True)  # type: ignore[arg-type]
                    result = cur.pgresult
                    rows = await cur.fetchall() if result is not None and result.status == pq.ExecStatus.TUPLES_OK else []
                reusable = True
                return rows
            except psycopg.Error:
                # The statement failed (a constraint, a vanished folder): the connection stays
                # usable unless it is the connection that broke.
                reusable = _alive(conn)
                raise
            finally:
                self.statements += 1
                self.busy.discard(conn)
                if reusable and not self.closed:
                    self.idle.append((conn, time.monotonic()))
                else:
                    # Whatever else went wrong leaves the connection in an unknown state.
                    dead = not _alive(conn)
                    await _close(conn)
                    if dead:
                        await self._lost()

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        lost = dbthreads.lost_connections()
        if lost != self.lost:  # some connection of this process died: these may have too
            self.lost = lost
            stale, self.idle = self.idle, []
            for conn, _ in stale:
                await _close(conn)
        while self.idle:
            conn, used = self.idle.pop()
            if time.monotonic() - used < dbthreads.HEALTH_CHECK_INTERVAL:
                return conn
            try:
                await conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                await _close(conn)
                await self._lost()
        return await self._connect()

    async def _lost(self) -> None:
        """A connection was found dead: the database went away for every connection, the
        threads' (told through dbthreads) and ours (the idle ones are dropped)."""
        dbthreads.connection_lost()
        self.lost = dbthreads.lost_connections()
        stale, self.idle = self.idle, []
        for conn, _ in stale:
            await _close(conn)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        # Django's parameters for this database (the test database under tests), without its
        # synchronous cursor class; prepared statements as in store/sql.py.
        params = connections[DEFAULT_DB_ALIAS].get_connection_params()
        params.pop("cursor_factory", None)
        params["prepare_threshold"] = PREPARE_ONLY_EXPLICIT
        params["autocommit"] = True
        conn = await psycopg.AsyncConnection.connect(**params)
        try:
            await conn.execute(GENERIC_PLANS_SQL)
        except BaseException:
            await _close(conn)
            raise
        return conn

    async def close(self, timeout: float = 30.0) -> None:
        """Let statements under way end (up to ``timeout`` seconds), then close every connection."""
        self.closed = True
        if self.running:
            await asyncio.wait(set(self.running), timeout=timeout)
        stale, self.idle = self.idle, []
        for conn, _ in stale:
            await _close(conn)
        for conn in list(self.busy):
            log.warning("closing a database connection whose statement has not ended")
            await _close(conn)


def _alive(conn: psycopg.AsyncConnection[Any]) -> bool:
    return not conn.broken and conn.pgconn.status == pq.ConnStatus.OK


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.close()
    except Exception:  # noqa: BLE001 - a connection that cannot even close is gone anyway
        log.debug("closing a database connection failed", exc_info=True)
