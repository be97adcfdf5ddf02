"""IMAP load benchmark: our server against Dovecot on 127.0.0.1, same mailboxes, same clients.

``python -m bench imap [--quick] [--seconds=N] [--clients=N] [--idle=N] [--processes=N]``

Each of ``--clients`` threads loops for ``--seconds``: LOGIN, SELECT, FETCH (headers of 20),
FETCH (one body), STORE, SEARCH, APPEND, EXPUNGE (the appended one), LOGOUT; the figure is
operations per second by command. Then ``--idle`` connections log in, select INBOX and stay
idle, and the resident memory of the server (all of its processes) is measured.
Our server runs as ``manage.py runmail --only imap --processes N`` in a subprocess; Dovecot is configured
in a temporary directory (skipped when the ``dovecot`` binary is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    free_port,
    machine,
    process_stop,
    process_tree,
    runmail,
    use_bench_database,
    wait_port,
)

USERS = 10
PASSWORD = "bench-password-123"
MESSAGES = 200
WARM_UP_SECONDS = 5.0  # a first pass, not measured, for each server
OPS = ["LOGIN", "SELECT", "FETCH", "FETCH BODY", "STORE", "SEARCH", "APPEND", "EXPUNGE", "LOGOUT"]


def message(i: int) -> bytes:
    body = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * (20 + i % 80)
    return (f"From: Bench <bench@example.org>\r\nTo: user@bench.test\r\nSubject: Benchmark {i} "
            f"{'report' if i % 7 == 0 else 'note'}\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n"
            f"Message-ID: <{i}.{time.time_ns()}@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n").encode() + body


def rss_kib(pids: list[int]) -> int:
    """Proportional set size (shared pages split between the processes sharing them)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


# --- servers --------------------------------------------------------------------------------

def prepare_our_accounts(users: list[str]) -> None:
    from mailcore import store
    from mailcore.models import Account, Domain, Folder

    domain = Domain.objects.filter(name="bench.test").first()
    if domain is None:
        tenant = store.tenant_create(name="IMAP bench")
        domain = store.domain_create(tenant=tenant, name="bench.test")
    for address in users:
        account = Account.objects.filter(address=address).first()
        if account is None:
            account = store.account_create(address=address, password=PASSWORD)
        Account.objects.filter(pk=account.pk).update(quota_bytes=0)
        inbox = Folder.objects.get(account=account, name="INBOX")
        missing = MESSAGES - inbox.entries.count()
        for i in range(max(0, missing)):
            store.message_append(account=account, folder=inbox, raw=message(i))


@contextlib.contextmanager
def dovecot_server(users: list[str]) -> Iterator[tuple[int, int]]:
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="bench-dovecot-"))
    os.chmod(base, 0o755)
    homes = base / "home"
    homes.mkdir()
    shutil.chown(homes, "nobody", "nogroup")
    passwd = base / "passwd"
    passwd.write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}:65534:65534::{homes}/{u}::\n" for u in users))
    config = base / "dovecot.conf"
    config.write_text(f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
default_client_limit = 4000
default_process_limit = 2000
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service imap {{
  process_limit = 2000
}}
protocol imap {{
  mail_max_userip_connections = 2000
}}
""")
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        for user in users:
            conn = imaplib.IMAP4("127.0.0.1", port)
            conn.login(user, PASSWORD)
            typ, data = conn.status("INBOX", "(MESSAGES)")
            have = int(data[0].split(b"MESSAGES ")[1].rstrip(b")")) if typ == "OK" else 0
            for i in range(have, MESSAGES):
                conn.append("INBOX", "", None, message(i))
            conn.logout()
        yield port, proc.pid
    finally:
        process_stop(proc, 20)
        shutil.rmtree(base, ignore_errors=True)


# --- load -----------------------------------------------------------------------------------

def client_loop(port: int, user: str, until: float, counts: dict[str, int], lock: threading.Lock,
                errors: list[str], latencies: dict[str, list[float]]) -> None:
    rng = random.Random(user)
    local: dict[str, int] = defaultdict(int)
    local_latency: dict[str, list[float]] = defaultdict(list)

    def op(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        began = time.perf_counter()
        result = fn(*args)
        local_latency[name].append(time.perf_counter() - began)
        local[name] += 1
        return result

    while time.monotonic() < until:
        try:
            conn = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            op("LOGIN", conn.login, user, PASSWORD)
            _, data = op("SELECT", conn.select, "INBOX")
            total = int(data[0])
            start = rng.randint(1, max(1, total - 20))
            op("FETCH", conn.fetch, f"{start}:{start + 19}", "(FLAGS ENVELOPE RFC822.SIZE)")
            op("FETCH BODY", conn.fetch, str(rng.randint(1, total)), "(BODY.PEEK[])")
            op("STORE", conn.store, str(rng.randint(1, total)), "FLAGS", "(\\Seen $Bench)")
            op("SEARCH", conn.search, None, "SUBJECT", "report", "UNSEEN")
            op("APPEND", conn.append, "INBOX", "", None, message(rng.randint(0, 99)))
            conn.noop()
            conn.store(str(total + 1), "+FLAGS.SILENT", "(\\Deleted)")
            op("EXPUNGE", conn.expunge)
            op("LOGOUT", conn.logout)
        except (imaplib.IMAP4.error, OSError, ValueError, IndexError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.05)
    with lock:
        for name, value in local.items():
            counts[name] += value
            latencies[name].extend(local_latency[name])


def run_load(port: int, users: list[str], clients: int,
             seconds: float) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Per command: (operations per second, median latency in ms)."""
    counts: dict[str, int] = defaultdict(int)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=client_loop, args=(port, users[i % len(users)], until, counts, lock, errors,
                                                      latencies))
               for i in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    elapsed = time.monotonic() - began
    return {name: (counts[name] / elapsed, statistics.median(latencies[name]) * 1000 if latencies[name] else 0.0)
            for name in OPS}, errors


def idle_memory(port: int, pid: int, users: list[str], connections: int) -> tuple[int, int]:
    """(KiB before, KiB after) ``connections`` logged-in clients sit idle with INBOX selected."""
    time.sleep(1)
    before = rss_kib(process_tree(pid))
    socks = []
    try:
        for i in range(connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            f = s.makefile("rb")
            f.readline()
            s.sendall(f"a LOGIN {users[i % len(users)]} {PASSWORD}\r\nb SELECT INBOX\r\n".encode())
            while True:
                line = f.readline()
                if not line or line.startswith(b"b "):
                    break
            if not line.startswith(b"b OK"):
                raise RuntimeError(f"idle connection {i} was refused: {line!r}")
            socks.append((s, f))
        time.sleep(2)
        after = rss_kib(process_tree(pid))
    finally:
        for s, f in socks:
            f.close()
            s.close()
    return before, after


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.imap")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=1, help="runmail worker processes for our server")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.idle = 5.0, 100
    use_bench_database("_bench")
    users = [f"imapbench{i}@bench.test" for i in range(USERS)]
    prepare_our_accounts(users)
    results: dict[str, dict[str, tuple[float, float]]] = {}
    memory: dict[str, tuple[int, int]] = {}
    print("measuring our server", flush=True)
    env = {"ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK": "1", "AUTH_FAILURE_LIMIT": "1000000", "LOG_LEVEL": "WARNING"}
    with runmail("imap", "IMAP_PORT", processes=args.processes, env=env) as (port, pid):
        run_load(port, users, args.clients, WARM_UP_SECONDS)  # imports, database connections, caches
        results["ours"], errors = run_load(port, users, args.clients, args.seconds)
        memory["ours"] = idle_memory(port, pid, users, args.idle)
        if errors:
            print(f"ours: {len(errors)} errors, first: {errors[0]}")
    if shutil.which("dovecot"):
        print("measuring dovecot", flush=True)
        with dovecot_server(users) as (port, pid):
            run_load(port, users, args.clients, WARM_UP_SECONDS)
            results["dovecot"], errors = run_load(port, users, args.clients, args.seconds)
            memory["dovecot"] = idle_memory(port, pid, users, args.idle)
            if errors:
                print(f"dovecot: {len(errors)} errors, first: {errors[0]}")
    else:
        print("dovecot is not installed; only our server was measured")
    names = list(results)
    print(f"\nmachine: {machine()}; ours with {args.processes} process{'es' if args.processes > 1 else ''}")
    print(f"IMAP load: {args.clients} clients, {args.seconds:.0f} s; operations per second (median latency)")
    print("| command | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for op_name in OPS:
        print(f"| {op_name} | " + " | ".join(
            f"{results[n][op_name][0]:.1f} ({results[n][op_name][1]:.1f} ms)" for n in names) + " |")
    print(f"\nMemory of {args.idle} idle connections (logged in, INBOX selected), proportional set size (PSS) "
          "of all server processes")
    for n in names:
        before, after = memory[n]
        print(f"| {n} | {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB | "
              f"{(after - before) / max(1, args.idle):.1f} KiB per connection |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
