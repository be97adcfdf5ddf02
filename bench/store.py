"""Store delivery benchmark: N messages of mixed sizes delivered through ``message_deliver``.

Several processes deliver at once (as several SMTP sessions would), each to its own recipient
or to a shared INBOX; the figure is deliveries per second with p50/p99 latency per delivery.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time

from bench.common import machine, summary, use_bench_database

SIZES = [(0.6, 2_000), (0.3, 20_000), (0.09, 200_000), (0.01, 2_000_000)]


def make_raw(i: int, rng: random.Random) -> bytes:
    roll, size = rng.random(), SIZES[-1][1]
    acc = 0.0
    for share, candidate in SIZES:
        acc += share
        if roll <= acc:
            size = candidate
            break
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
    body = line * max(1, size // len(line))
    return (
        f"From: Bench <bench@example.org>\r\nTo: user@bench.test\r\nSubject: Benchmark message {i}\r\n"
        f"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{i}.{os.getpid()}.{time.time_ns()}@example.org>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode() + body


def _worker(args: tuple[int, int, list[str]]) -> list[float]:
    worker_id, count, recipients = args
    import django

    django.setup()
    from django.db import connection

    from mailcore import store

    rng = random.Random(worker_id)
    latencies = []
    for i in range(count):
        raw = make_raw(worker_id * 1_000_000 + i, rng)
        rcpt = recipients[(worker_id + i) % len(recipients)]
        start = time.perf_counter()
        store.message_deliver(raw=raw, recipients=[rcpt])
        latencies.append(time.perf_counter() - start)
    connection.close()
    return latencies


def _parse_median_ms() -> float:
    """The parse every delivery pays, alone: a Gmail-shaped multipart message with an attachment."""
    import statistics
    from pathlib import Path

    from mailcore.mime import parse_message

    corpus = Path(__file__).resolve().parent.parent / "tests" / "mailcore" / "mime" / "corpus"
    raw = (corpus / "gmail_mixed_attachment.eml").read_bytes()
    raw = raw.replace(b"Draft attached, please review.", b"Draft attached, please review. " * 60)
    times = []
    for _ in range(300):
        start = time.perf_counter()
        parse_message(raw)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench store")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--recipients", type=int, default=20, help="distinct mailboxes spread over")
    parser.add_argument("--quick", action="store_true", help="1,000 messages")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.messages = 1_000
    use_bench_database()
    from mailcore import store
    from mailcore.models import Account, Domain, Tenant

    tenant = Tenant.objects.filter(name="bench").first() or store.tenant_create(name="bench")
    if not Domain.objects.filter(name="bench.test").exists():
        store.domain_create(tenant=tenant, name="bench.test")
    recipients = []
    for n in range(opts.recipients):
        address = f"user{n}@bench.test"
        if not Account.objects.filter(address=address).exists():
            store.account_create(address=address, password=None, quota_bytes=0)
        recipients.append(address)
    from django.db import connection

    connection.close()
    per = opts.messages // opts.processes
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    with ctx.Pool(opts.processes) as pool:
        results = pool.map(_worker, [(w, per, recipients) for w in range(opts.processes)])
    elapsed = time.perf_counter() - start
    latencies = [x for r in results for x in r]
    rate = len(latencies) / elapsed
    print(f"store deliveries: {len(latencies)} messages (mixed 2 KB-2 MB), {opts.processes} processes, "
          f"{opts.recipients} mailboxes")
    print(f"  {rate:.0f} deliveries/s; {summary(latencies)}")
    # The full-text vectors are filled just after delivery by the index job: time the backlog.
    from mailcore.store.index import search_index_pending

    start = time.perf_counter()
    indexed = search_index_pending(max_batches=1_000_000)
    took = time.perf_counter() - start
    print(f"  search index backlog: {indexed} messages in {took:.1f} s ({indexed / max(took, 1e-9):.0f}/s, one process)")
    print(f"  MIME parse of a typical 6 KB message (median of 300): {_parse_median_ms():.2f} ms")
    print(f"  machine: {machine()}")
    return 0
