"""What one loop of ``bench imap`` costs our server: statements, round trips and CPU per command.

``python -m bench.imaploop [--loops=N]`` (or ``python /path/to/bench/imaploop.py`` from another
checkout, to measure that checkout's code): the IMAP server runs in this process on a loopback
port and one imaplib client runs the benchmark's loop (LOGIN, SELECT, FETCH 20 × ENVELOPE,
FETCH one body, STORE, SEARCH SUBJECT + UNSEEN, APPEND, NOOP, STORE \\Deleted, EXPUNGE, LOGOUT)
``--loops`` times, one command at a time. Counted per command: the statements sent to
PostgreSQL (every ``execute``, plus the BEGIN and COMMIT of each transaction) and the process's
CPU time (client included; the client's share is the same for every checkout). One client and
no concurrency, so the figures hold on a loaded machine much better than the throughput runs.
"""

from __future__ import annotations

import argparse
import cProfile
import imaplib
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

if __name__ == "__main__":  # run as a file from another checkout: import that checkout's code
    sys.path.insert(0, os.getcwd())

USER = "loop@loop.test"
PASSWORD = "loop-password-123"
OPS = ["LOGIN", "SELECT", "FETCH", "FETCH BODY", "STORE", "SEARCH", "APPEND", "NOOP", "STORE DELETED", "EXPUNGE",
       "LOGOUT"]


class StatementCounter:
    """Counts what psycopg sends: statements (executes, and BEGIN/COMMIT of transactions) and
    round trips (statements sent together in a pipeline are one)."""

    def __init__(self) -> None:
        self.count = 0
        self.trips = 0
        self.lock = threading.Lock()
        self.local = threading.local()

    def _add(self, statements: int) -> None:
        with self.lock:
            self.count += statements
            if not getattr(self.local, "pipelined", False):
                self.trips += statements

    def install(self) -> None:
        import contextlib

        import psycopg

        counter = self
        original_execute = psycopg.Cursor.execute
        original_commit = psycopg.Connection.commit
        original_rollback = psycopg.Connection.rollback
        original_pipeline = psycopg.Connection.pipeline

        def execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            # A transaction's first statement also sends BEGIN (psycopg, non-autocommit).
            begins = not self.connection.autocommit and self.connection.info.transaction_status == 0
            counter._add(2 if begins else 1)
            return original_execute(self, *args, **kwargs)

        def commit(self):  # type: ignore[no-untyped-def]
            counter._add(1)
            return original_commit(self)

        def rollback(self):  # type: ignore[no-untyped-def]
            counter._add(1)
            return original_rollback(self)

        @contextlib.contextmanager
        def pipeline(self):  # type: ignore[no-untyped-def]
            counter.local.pipelined = True
            try:
                with original_pipeline(self) as p:
                    yield p
            finally:
                counter.local.pipelined = False
                with counter.lock:
                    counter.trips += 1

        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Connection.commit = commit  # type: ignore[method-assign]
        psycopg.Connection.rollback = rollback  # type: ignore[method-assign]
        psycopg.Connection.pipeline = pipeline  # type: ignore[method-assign]


def prepare() -> None:
    from bench.imap import MESSAGES, message
    from mailcore import store
    from mailcore.models import Account, Domain, Folder

    domain = Domain.objects.filter(name="loop.test").first()
    if domain is None:
        tenant = store.tenant_create(name="IMAP loop bench")
        domain = store.domain_create(tenant=tenant, name="loop.test")
    account = Account.objects.filter(address=USER).first()
    if account is None:
        account = store.account_create(address=USER, password=PASSWORD)
    Account.objects.filter(pk=account.pk).update(quota_bytes=0)
    inbox = Folder.objects.get(account=account, name="INBOX")
    for i in range(max(0, MESSAGES - inbox.entries.count())):
        store.message_append(account=account, folder=inbox, raw=message(i))


async def _disable(profile: cProfile.Profile) -> None:
    profile.disable()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.imaploop")
    parser.add_argument("--loops", type=int, default=100)
    parser.add_argument("--profile", help="write cProfile stats of the database calls and of the event loop "
                        "to PROFILE.db and PROFILE.loop")
    args = parser.parse_args(argv)
    os.environ.setdefault("ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK", "1")
    from bench.common import use_bench_database

    use_bench_database()  # the same database as `bench imap` (its own loop.test account)
    from django.conf import settings

    settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = True
    prepare()
    from bench.imap import message
    from mailcore.imap.server import start_listener
    from tests.mailcore.serving import LoopThread

    counter = StatementCounter()
    counter.install()
    loop = LoopThread()
    listener = loop.run(start_listener("127.0.0.1", 0))
    profiles: list[cProfile.Profile] = []
    if args.profile:
        from mailcore.imap.server import DatabasePool

        # CPU time of the profiled thread, not wall time: waits for PostgreSQL and the client do not count.
        db_profile, loop_profile = cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)
        profiles = [db_profile, loop_profile]
        original_call = DatabasePool._call.__func__  # type: ignore[attr-defined]

        def profiled_call(cls, fn, fargs, fkwargs):  # type: ignore[no-untyped-def]
            # One client, one command at a time: the calls never overlap.
            db_profile.enable()
            try:
                return original_call(cls, fn, fargs, fkwargs)
            finally:
                db_profile.disable()

        DatabasePool._call = classmethod(profiled_call)  # type: ignore[method-assign,assignment]
    statements: dict[str, list[int]] = defaultdict(list)
    trips: dict[str, list[int]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)

    def op(name: str, fn, *fargs):  # type: ignore[no-untyped-def]
        before, trips_before = counter.count, counter.trips
        began, began_wall = time.process_time(), time.perf_counter()
        result = fn(*fargs)
        took = time.perf_counter() - began_wall
        time.sleep(0.002)  # let the server finish what it does after the reply (events)
        if measuring:
            cpu[name].append(time.process_time() - began)
            statements[name].append(counter.count - before)
            trips[name].append(counter.trips - trips_before)
            wall[name].append(took)
        return result

    measuring = False
    started = time.monotonic()
    for i in range(args.loops + 10):
        measuring = i >= 10  # ten loops of warm-up: imports, connections, prepared statements
        if i == 10 and profiles:
            loop.loop.call_soon_threadsafe(profiles[1].enable)
        conn = imaplib.IMAP4("127.0.0.1", listener.port, timeout=30)
        op("LOGIN", conn.login, USER, PASSWORD)
        _, data = op("SELECT", conn.select, "INBOX")
        total = int(data[0])
        start = 1 + (i * 7) % max(1, total - 20)
        op("FETCH", conn.fetch, f"{start}:{start + 19}", "(FLAGS ENVELOPE RFC822.SIZE)")
        op("FETCH BODY", conn.fetch, str(1 + (i * 13) % total), "(BODY.PEEK[])")
        op("STORE", conn.store, str(1 + (i * 17) % total), "FLAGS", "(\\Seen $Bench)")
        op("SEARCH", conn.search, None, "SUBJECT", "report", "UNSEEN")
        op("APPEND", conn.append, "INBOX", "", None, message(i % 100))
        op("NOOP", conn.noop)
        op("STORE DELETED", conn.store, str(total + 1), "+FLAGS.SILENT", "(\\Deleted)")
        op("EXPUNGE", conn.expunge)
        op("LOGOUT", conn.logout)
    elapsed = time.monotonic() - started
    if profiles:
        loop.run(_disable(profiles[1]))
        profiles[0].dump_stats(args.profile + ".db")
        profiles[1].dump_stats(args.profile + ".loop")
    loop.stop([listener.close])
    print(f"{args.loops} loops (+10 warm-up) in {elapsed:.1f} s, code from {Path.cwd()}")
    print(f"{'command':<14} {'statements':>10} {'round trips':>11} {'CPU ms (median)':>16} {'wall ms (median)':>17}")
    total_statements = 0.0
    total_trips = 0.0
    total_cpu = 0.0
    total_wall = 0.0
    for name in OPS:
        mean_statements = statistics.mean(statements[name])
        total_statements += mean_statements
        total_trips += statistics.mean(trips[name])
        total_cpu += statistics.mean(cpu[name]) * 1000
        total_wall += statistics.mean(wall[name]) * 1000
        print(f"{name:<14} {mean_statements:>10.1f} {statistics.mean(trips[name]):>11.1f} "
              f"{statistics.median(cpu[name]) * 1000:>16.2f} "
              f"{statistics.median(wall[name]) * 1000:>17.2f}")
    print(f"{'loop (means)':<14} {total_statements:>10.1f} {total_trips:>11.1f} {total_cpu:>16.2f} {total_wall:>17.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
