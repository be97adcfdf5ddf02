"""SMTP throughput: N messages of mixed sizes over M concurrent connections to our MX port,
stored durably, beside the same load on a bare aiosmtpd server whose handler only says 250.

``python -m bench smtp [--quick] [--messages=N] [--connections=M] [--processes=N[,N...]]``: ours is
``manage.py runmail --only smtp --processes N`` in a subprocess, once per N given (default 1),
in the same run as the bare server, which is measured before and after ours (the ceiling is the
mean of the two). The load comes from
Postfix's ``smtp-source`` when installed (one process, ``-d``: many messages per connection),
else from an asyncio client in a separate process. DNS for SPF/DKIM/DMARC goes to a stub on
127.0.0.1 answering NXDOMAIN (a local caching resolver, as production should have).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from bench.common import machine, process_tree, runmail, use_bench_database

SIZES = [(1024, 0.6), (10 * 1024, 0.3), (100 * 1024, 0.1)]  # (bytes, share of messages)
RECIPIENTS = 10


def nxdomain_dns() -> tuple[int, threading.Event]:
    import dns.message
    import dns.rcode

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            response = dns.message.make_response(dns.message.from_wire(data))
            response.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(response.to_wire(), addr)
        sock.close()

    threading.Thread(target=run, daemon=True).start()
    return sock.getsockname()[1], stop


def accounts() -> list[str]:
    from mailcore import store
    from mailcore.models import Domain, Tenant

    tenant = Tenant.objects.filter(name="Bench").first() or store.tenant_create(name="Bench")
    if not Domain.objects.filter(name="bench.test").exists():
        store.domain_create(tenant=tenant, name="bench.test")
    addresses = [f"user{i}@bench.test" for i in range(RECIPIENTS)]
    from mailcore.models import Account

    for address in addresses:
        if not Account.objects.filter(address=address).exists():
            store.account_create(address=address, password=None, quota_bytes=0)
    return addresses


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class BareHandler:
    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        return "250 2.0.0 OK"


async def start_bare(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractServer:
    from aiosmtpd.smtp import SMTP

    handler = BareHandler()
    return await loop.create_server(lambda: SMTP(handler, hostname="bare.test", loop=loop), "127.0.0.1", 0)


async def stop_bare(server: asyncio.AbstractServer) -> None:
    server.close()
    await server.wait_closed()


def load_plan(messages: int, connections: int, recipients: list[str]) -> list[tuple[str, int, int, int]]:
    """(recipient, size, messages, sessions) per load process: each mailbox gets its own stream,
    as at a real MX, so per-mailbox row locks do not serialise the whole run."""
    plan = []
    streams = len(recipients)
    for size, share in SIZES:
        share_streams = max(1, round(streams * share))
        for k in range(share_streams):
            count = round(messages * share / share_streams)
            sessions = max(1, round(connections * share / share_streams))
            plan.append((recipients[len(plan) % len(recipients)], size, max(1, count), sessions))
            del k
    return plan


def drive_smtp_source(port: int, messages: int, connections: int, recipients: list[str]) -> tuple[float, int]:
    plan = load_plan(messages, connections, recipients)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["smtp-source", "-d", "-s", str(sessions), "-m", str(count), "-l", str(size), "-f", "carol@example.org",
             "-t", rcpt, f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for rcpt, size, count, sessions in plan
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {err.decode(errors='replace')}")
    return time.perf_counter() - started, sum(p[2] for p in plan)


async def _client(port: int, jobs: list[bytes], rcpt: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                if not line.startswith((b"2", b"3")):
                    raise RuntimeError(line)
                return line

    await reply()
    writer.write(b"EHLO bench.client\r\n")
    await reply()
    for body in jobs:
        writer.write(f"MAIL FROM:<carol@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        for _ in range(3):
            await reply()
        writer.write(body + b".\r\n")
        await reply()
    writer.write(b"QUIT\r\n")
    await reply()
    writer.close()
    await writer.wait_closed()


def _asyncio_load(args: tuple[int, int, int, list[str]]) -> None:
    port, messages, connections, recipients = args
    bodies = []
    for size, share in SIZES:
        line = b"x" * 76 + b"\r\n"
        body = b"Subject: bench\r\nFrom: carol@example.org\r\n\r\n" + line * max(1, size // len(line))
        bodies += [body] * max(1, round(messages * share))
    per = [bodies[i::connections] for i in range(connections)]

    async def run() -> None:
        await asyncio.gather(*(_client(port, jobs, recipients[i % len(recipients)]) for i, jobs in enumerate(per)))

    asyncio.run(run())


def drive_asyncio(port: int, messages: int, connections: int, recipients: list[str]) -> tuple[float, int]:
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    proc = ctx.Process(target=_asyncio_load, args=((port, messages, connections, recipients),))
    proc.start()
    proc.join(600)
    if proc.exitcode != 0:
        raise RuntimeError("load client failed")
    return time.perf_counter() - started, sum(max(1, round(messages * share)) for _, share in SIZES)


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU of ``pids`` so far (from /proc; 0 for a process that is gone)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def server_backends() -> list[int]:
    """The PostgreSQL backends of the server under test (every other session on the bench database;
    the warm-up has opened them): their CPU is the database's share of the cost."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return [int(row[0]) for row in cur.fetchall()]


def settle_database() -> None:
    """VACUUM ANALYZE before each measured run, so that the autovacuum the previous run's inserts
    set off does not share the CPU with the next one (the bare server measured right after a run
    of ours went from ~1,000 to ~500 msg/s). No CHECKPOINT: the run after one pays a full-page
    image in the WAL for every page it touches first, more than a steady server pays."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    options = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    messages = int(options.get("messages", 300 if quick else 2000))
    connections = int(options.get("connections", 10))
    process_counts = [int(n) for n in options.get("processes", "1").split(",")]
    if any(n < 1 for n in process_counts):
        print("--processes takes numbers of 1 or more, e.g. --processes=1,2")
        return 2
    use_bench_database("_bench_smtp")
    import logging

    from mailcore.models import Message

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO

    dns_port, dns_stop = nxdomain_dns()
    recipients = accounts()
    tool = "smtp-source" if shutil.which("smtp-source") else "asyncio client"
    drive = drive_smtp_source if tool == "smtp-source" else drive_asyncio
    server_env = {"DNS_NAMESERVERS": "127.0.0.1", "DNS_PORT": str(dns_port), "SMTP_MAX_MESSAGES_PER_CONNECTION": "100000",
                  "LOG_LEVEL": "WARNING"}

    loop = LoopThread()
    bare = loop.run(start_bare(loop.loop))
    bare_port = bare.sockets[0].getsockname()[1]
    rows: list[tuple[str, float, float, str, str]] = []
    failed = False
    try:
        drive(bare_port, max(10, messages // 20), connections, recipients)  # warm-up
        settle_database()
        bare_seconds, sent = drive(bare_port, messages, connections, recipients)
        rows.append(("bare aiosmtpd (handler answers 250), 1 process, before", sent / bare_seconds, bare_seconds, "-", "-"))
        for n in process_counts:
            with runmail("smtp", "SMTP_PORT", processes=n, env=server_env) as (port, pid):
                drive(port, max(10, messages // 20), connections, recipients)  # warm-up: connections, caches
                settle_database()
                pids = process_tree(pid)
                backends = server_backends()
                before = Message.objects.count()
                cpu_before, pg_before = cpu_seconds(pids), cpu_seconds(backends)
                seconds, _ = drive(port, messages, connections, recipients)
                # Connections opened during the run count whole (the server opens them as the load needs).
                opened = [pid for pid in server_backends() if pid not in backends]
                cpu = cpu_seconds(pids) - cpu_before
                pg_cpu = cpu_seconds(backends) - pg_before + cpu_seconds(opened)
                stored = Message.objects.count() - before
            failed = failed or stored != sent
            rows.append((f"our MX (SPF/DKIM/DMARC, PostgreSQL commit), {n} process{'es' if n > 1 else ''}",
                         sent / seconds, seconds, str(stored), f"{cpu * 1000 / sent:.1f} + {pg_cpu * 1000 / sent:.1f}"))
        # The bare server again: the machine's speed drifts over a run (other VMs, CPU
        # frequency), so the ceiling is the mean of a measure before ours and one after.
        settle_database()
        bare_seconds, _ = drive(bare_port, messages, connections, recipients)
        rows.append(("bare aiosmtpd, after", sent / bare_seconds, bare_seconds, "-", "-"))
    finally:
        loop.run(stop_bare(bare))  # in its loop's thread: asyncio servers are not thread-safe
        loop.stop()
        dns_stop.set()
    print(f"machine: {machine()}; load: {tool}, {sent} messages (60% 1 KiB, 30% 10 KiB, 10% 100 KiB), "
          f"{connections} concurrent connections over {len(recipients)} mailboxes")
    bare_rate = (rows[0][1] + rows[-1][1]) / 2
    print(f"bare ceiling: {bare_rate:.0f} msg/s, the mean of the two bare runs")
    print("| server | messages/s | seconds | stored | CPU ms/message: server + PostgreSQL backends | of the bare ceiling |")
    print("|---|---|---|---|---|---|")
    for name, rate, seconds, stored_text, cpu_text in rows:
        print(f"| {name} | {rate:.0f} | {seconds:.2f} | {stored_text} | {cpu_text} | {rate / bare_rate:.2f} |")
    return 1 if failed else 0
