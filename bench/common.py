"""Shared set-up for benchmarks: a database of their own, never the one `make run` uses."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import UTC, datetime


def use_bench_database() -> str:
    """Point DATABASE_URL at ``<name>_bench``, create and migrate it, and set Django up."""
    import dj_database_url
    import psycopg

    url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:{}/mailsystem".format(
        os.environ.get("EMBEDDED_PG_PORT", "55432")
    )
    config = dj_database_url.parse(url)
    name = f"{config['NAME']}_bench"
    bench_url = url.rsplit("/", 1)[0] + "/" + name
    os.environ["DATABASE_URL"] = bench_url
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webmail.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return bench_url


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.5) * 1000:.2f} ms, p99 {percentile(values, 0.99) * 1000:.2f} ms, "
            f"mean {statistics.fmean(values) * 1000:.2f} ms")
