"""Shared set-up for benchmarks: a database of their own (never the one `make run` uses), free
ports, our mail role as a subprocess, and the machine line every result is printed with."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_bench_database(suffix: str = "_bench") -> str:
    """Point DATABASE_URL at ``<name><suffix>``, create and migrate it, and set Django up."""
    import dj_database_url
    import psycopg

    url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:{}/mailsystem".format(
        os.environ.get("EMBEDDED_PG_PORT", "55432")
    )
    config = dj_database_url.parse(url)
    name = f"{config['NAME']}{suffix}"
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
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}")


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    """Until a server on ``port`` answers with a greeting (a bound socket alone is not enough:
    with several processes the supervisor binds before the workers serve)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            if sock.recv(1):
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


@contextlib.contextmanager
def runmail(protocol: str, port_setting: str, *, processes: int = 1, env: dict[str, str] | None = None,
            ) -> Iterator[tuple[int, int]]:
    """``manage.py runmail --only PROTOCOL --processes N`` on a free port: (port, supervisor pid).

    Only ``port_setting`` is opened; the other ports of the protocol are set to free ones.
    ``BENCH_PROFILE=file`` runs a single process under cProfile.
    """
    others = {"smtp": ["SUBMISSION_PORT", "SMTPS_PORT"], "imap": ["IMAPS_PORT"], "pop3": ["POP3S_PORT"]}[protocol]
    port = free_port()
    full = dict(os.environ, MAIL_BIND="127.0.0.1", **{port_setting: str(port)},
                **{name: str(0 if protocol == "smtp" else free_port()) for name in others})
    full.update(env or {})
    profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    proc = subprocess.Popen([sys.executable, *profile, str(ROOT / "manage.py"), "runmail", "--only", protocol,
                             "--processes", str(processes)], env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port, proc.pid
    finally:
        process_stop(proc, 60)


def process_stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.5) * 1000:.2f} ms, p99 {percentile(values, 0.99) * 1000:.2f} ms, "
            f"mean {statistics.fmean(values) * 1000:.2f} ms")
