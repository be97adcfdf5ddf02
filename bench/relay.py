"""Outbound relay throughput to a local sink, with and without connection reuse.

Two measurements per mode:
- ``client``: the SMTP client alone (mailcore.relay.client.destination_deliver, DKIM off) sending
  prepared messages, no database;
- ``queue``: the whole worker path on a scratch database: submit, claim, deliver, record outcomes
  in PostgreSQL (one transaction per message), as a Celery worker does it (without the broker).

The sink is Postfix's ``smtp-sink`` when installed, else a bare aiosmtpd server in a thread.
Usage: python -m bench relay [--messages N] [--size BYTES] [--sink smtp-sink|aiosmtpd] [--tls] [--skip-queue]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webmail.settings")

SINK_START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, limit: float = SINK_START_TIMEOUT) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sink on port {port} did not start")


@contextmanager
def postfix_sink() -> Iterator[int]:
    port = _free_port()
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    args = [binary]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    proc = subprocess.Popen([*args, f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def aiosmtpd_sink(tls: bool = False) -> Iterator[int]:
    from aiosmtpd.smtp import SMTP

    from mailcore.net.tls import server_context

    context = server_context() if tls else None

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 2.0.0 Ok"

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncio.base_events.Server:
        return await loop.create_server(lambda: SMTP(Handler(), loop=loop, tls_context=context), "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(SINK_START_TIMEOUT)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(SINK_START_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(SINK_START_TIMEOUT)
        loop.close()


def make_raw(n: int, size: int) -> bytes:
    body = ("The quick brown fox jumps over the lazy dog. " * (size // 45 + 1))[:size]
    lines = "\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    return (
        f"From: Alice <alice@a.test>\r\nTo: carol@remote.test\r\nSubject: bench {n}\r\n"
        f"Message-ID: <bench-{n}@a.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{lines}\r\n"
    ).encode()


def bench_client(port: int, messages: int, size: int, reuse: bool) -> float:
    from mailcore.relay.client import Envelope, RecipientItem, destination_deliver
    from mailcore.relay.queue import OutcomeKind
    from mailcore.relay.routing import Hop, Route

    route = Route(domain="remote.test", hops=[Hop(host="sink", address="127.0.0.1", port=port)])
    envelopes = [
        Envelope(message_id=i, mail_from="alice@a.test", raw=make_raw(i, size), recipients=[RecipientItem(i, "carol@remote.test")])
        for i in range(messages)
    ]
    start = time.perf_counter()
    stats = destination_deliver(route, envelopes, prepare=lambda e, _8bit: e.raw, record=lambda _o: None, reuse=reuse)
    elapsed = time.perf_counter() - start
    ok = sum(1 for o in stats.outcomes if o.kind is OutcomeKind.DELIVERED)
    if ok != messages:
        raise RuntimeError(f"only {ok} of {messages} delivered: {stats.outcomes[:1]}")
    return messages / elapsed


def bench_queue(port: int, messages: int, size: int, reuse: bool) -> float:
    from django.conf import settings

    from mailcore.models import OutboundRecipient
    from mailcore.relay import worker
    from mailcore.relay.queue import recipients_claim
    from mailcore.relay.submit import outbound_enqueue

    settings.RELAY_TRANSPORTS = {"remote.test": ("127.0.0.1", port)}
    OutboundRecipient.objects.all().delete()
    for i in range(messages):
        outbound_enqueue(raw=make_raw(i, size), mail_from="alice@a.test", recipients=["carol@remote.test"])
    start = time.perf_counter()
    delivered = 0
    for _ in range(messages + 10):
        batches = recipients_claim()
        if not batches:
            break
        for batch in batches:
            delivered += worker.batch_deliver(recipient_ids=batch.recipient_ids, claim=batch.claim, reuse=reuse).messages
    elapsed = time.perf_counter() - start
    if delivered != messages:
        raise RuntimeError(f"only {delivered} of {messages} delivered")
    return messages / elapsed


@contextmanager
def scratch_database() -> Iterator[None]:
    from django.test.utils import setup_databases, teardown_databases

    config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(config, verbosity=0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench relay")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--size", type=int, default=4096, help="body size in bytes")
    parser.add_argument("--sink", choices=["smtp-sink", "aiosmtpd"], default=None)
    parser.add_argument("--tls", action="store_true", help="aiosmtpd sink offering STARTTLS (the client uses it)")
    parser.add_argument("--skip-queue", action="store_true", help="only the client measurement (no database)")
    args = parser.parse_args(argv)

    import django

    django.setup()
    if args.tls:
        args.sink = "aiosmtpd"
    kind = args.sink or ("smtp-sink" if (shutil.which("smtp-sink") or os.path.exists("/usr/sbin/smtp-sink")) else "aiosmtpd")
    sink = postfix_sink if kind == "smtp-sink" else (lambda: aiosmtpd_sink(tls=args.tls))
    print(f"relay benchmark: {args.messages} messages of ~{args.size} bytes to {kind}{' with STARTTLS' if args.tls else ''}; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    with sink() as port:
        for reuse in (True, False):
            rate = bench_client(port, args.messages, args.size, reuse)
            print(f"  client  reuse={'yes' if reuse else 'no ':3}  {rate:8.1f} messages/s")
        if not args.skip_queue:
            with scratch_database():
                for reuse in (True, False):
                    rate = bench_queue(port, args.messages, args.size, reuse)
                    print(f"  queue   reuse={'yes' if reuse else 'no ':3}  {rate:8.1f} messages/s")
    return 0
