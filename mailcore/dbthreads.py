"""Blocking database work in the protocol servers' thread pools (SMTP, IMAP, POP3).

Each pool thread keeps its own Django connection between jobs. When PostgreSQL drops
connections (a restart, a failover, ``pg_terminate_backend``) every thread's connection is dead
at once; the first job to meet one drops it and makes every other thread check its own before
its next job, so that the loss costs at most one failed job, not one per thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections

T = TypeVar("T")
log = logging.getLogger(__name__)

HEALTH_CHECK_INTERVAL = 1.0  # seconds between connection checks per thread
_thread_state = threading.local()
# Bumped when a job finds its connection dead: the database went away for every thread, so each
# checks its own before its next job instead of failing one job first.
_lost_connections = [0]


def lost_connections() -> int:
    """How many times a connection of this process was found dead (it only grows)."""
    return _lost_connections[0]


def connection_lost() -> None:
    """A connection was found dead: every other one is to be checked before its next job."""
    _lost_connections[0] += 1


def drop_dead_connection() -> None:
    """After a job that met a database error (raised or caught inside it): close the thread's
    connection if it is unusable, and if it was, make every other thread check its own."""
    connection = connections[DEFAULT_DB_ALIAS]
    errored = connection.errors_occurred
    close_old_connections()
    if errored and connection.connection is None:
        connection_lost()


def run_in_db_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` as one job of a pool thread (call it through ``run_in_executor``)."""
    # Django's connection check (CONN_HEALTH_CHECKS: a round trip) at most once a second per
    # thread rather than per job, and at once after any thread found the database gone; a job
    # that failed, or caught a database error, drops a dead connection at once.
    now = time.monotonic()
    lost = _lost_connections[0]
    if now - getattr(_thread_state, "checked", 0.0) >= HEALTH_CHECK_INTERVAL or lost != getattr(
        _thread_state, "lost", 0
    ):
        _thread_state.checked = now
        _thread_state.lost = lost
        close_old_connections()
        # Now, outside any transaction: a connection found dead inside the job's atomic block
        # could not be replaced there (Django refuses to reconnect in one).
        connections[DEFAULT_DB_ALIAS].close_if_health_check_failed()
    failed = True
    try:
        result = fn(*args, **kwargs)
        failed = False
        return result
    finally:
        if failed or connections[DEFAULT_DB_ALIAS].errors_occurred:
            drop_dead_connection()


async def in_db_thread(executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Await ``fn(*args, **kwargs)`` run as a job of one of ``executor``'s threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(run_in_db_thread, fn, *args, **kwargs))


def executor_close(executor: ThreadPoolExecutor, threads: int, *, timeout: float = 10.0) -> None:
    """Close every worker thread's database connection, then stop the pool.

    A barrier of ``threads`` parties makes each worker run exactly one closing job.
    """
    barrier = threading.Barrier(threads)

    def close_mine() -> None:
        connections.close_all()
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            pass

    futures = [executor.submit(close_mine) for _ in range(threads)]
    deadline = time.monotonic() + timeout + 1
    try:
        for future in futures:
            future.result(timeout=max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        # A job still running (a long SEARCH, a big COPY): shutting down must not fail on it.
        # Its closing job stays queued, so the thread closes its connection when the job ends.
        log.warning("a database thread was still busy %.0f s into shutdown; not waiting for it", timeout)
        executor.shutdown(wait=False)
        return
    executor.shutdown(wait=True)
