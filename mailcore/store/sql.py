"""Running the store's hot statements with server-side parameters and prepared plans.

Django's psycopg cursors bind parameters on the client: every delivery would send its bytes
hex-escaped inside the SQL text and have PostgreSQL parse and plan a statement the size of
the message (planning cost more than executing). The few statements on the delivery path
run here instead, with parameters sent apart and the plan prepared once per connection.
Errors still come out as Django's database exceptions, and the statements are logged where
Django logs queries (tests count them).

Django opens its psycopg connections with ``prepare_threshold=None``, and psycopg then ignores
``prepare=True`` altogether: every "prepared" statement here used to be parsed and planned
afresh (1-4 ms of server CPU for the delivery statement). So the first use on a connection sets
a threshold no other statement reaches: only these are prepared, Django's own never are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection
from django.db.backends.signals import connection_created
from psycopg import pq

# Only statements executed with ``prepare=True`` reach it: Django's stay unprepared, as it expects.
PREPARE_ONLY_EXPLICIT = 2**31

# The delivery statement is written for a generic plan (every value a parameter, the indexes
# chosen by its shape). Left to itself (plan_cache_mode = auto) PostgreSQL compares the generic
# plan's estimated cost with the custom plans' of the first five executions; once the tables have
# statistics, value-specific estimates (the GIN reference lookups, a Message-ID) make the custom
# plans look cheaper, and it then plans the statement afresh on every execution: its backend CPU
# per message doubled (1.0 -> 2.0 ms). Only server-side prepared statements follow the setting,
# and Django prepares none; it is set only on the connections of threads that deliver (the SMTP
# server's): some other prepared statements, such as IMAP's "\Recent" claim, rely on a custom
# plan folding a boolean parameter away.
GENERIC_PLANS_SQL = "SET plan_cache_mode = force_generic_plan"
_thread_wants = threading.local()


def _generic_plans(sender: object, connection: Any, **kwargs: Any) -> None:
    if getattr(_thread_wants, "generic_plans", False) and connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(GENERIC_PLANS_SQL)


connection_created.connect(_generic_plans, dispatch_uid=__name__ + ".generic_plans")


def use_generic_plans(wanted: bool = True) -> None:
    """Give the database connections this thread opens from now on generic plans for their
    prepared statements (a thread pool's ``initializer``: the SMTP server's delivery threads)."""
    _thread_wants.generic_plans = wanted


def _has_rows(cur: psycopg.Cursor[Any]) -> bool:
    # Not ``cur.description``: that builds a Column object per column of the result each time.
    result = cur.pgresult
    return result is not None and result.status == pq.ExecStatus.TUPLES_OK


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    # What Django's cursor() does first: the CONN_HEALTH_CHECKS round trip, when
    # close_old_connections() asked for one, replaces a connection the server has closed.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    start = time.monotonic()
    with connection.wrap_database_errors:
        raw = connection.connection
        assert isinstance(raw, psycopg.Connection)
        if raw.prepare_threshold is None:
            raw.prepare_threshold = PREPARE_ONLY_EXPLICIT
        with psycopg.Cursor(raw) as cur:
            cur.execute(sql, params, prepare=True)  # type: ignore[arg-type]
            rows = cur.fetchall() if _has_rows(cur) else []
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})
    return rows


def fetch_pipelined(statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
    """Several statements in one round trip (psycopg pipeline mode); the rows of each.

    The server runs them one after the other, each with its own snapshot (read committed), as
    if sent one at a time: a lock taken by one is held when the next one reads. Used where a
    writer takes its locks (account, then folders) and reads under them before it decides.
    """
    connection.ensure_connection()
    start = time.monotonic()
    with connection.wrap_database_errors:
        raw = connection.connection
        assert isinstance(raw, psycopg.Connection)
        cursors = []
        try:
            with raw.pipeline():
                for sql, params in statements:
                    cur = psycopg.Cursor(raw)
                    cursors.append(cur)
                    cur.execute(sql, params, prepare=True)  # type: ignore[arg-type]
            results = [cur.fetchall() if _has_rows(cur) else [] for cur in cursors]
        finally:
            for cur in cursors:
                cur.close()
    if connection.queries_logged:
        for sql, _ in statements:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})
    return results
