"""``manage.py runmail``: the mail role — SMTP, IMAP and POP3 listeners.

Each protocol package exposes ``async def serve(stack: AsyncExitStack) -> list[str]`` in its
``server`` module: it opens its listeners, registers their closing on the stack, and returns a
line per listener for the log; and ``listen_ports() -> [(name, port)]`` naming them.

With ``--processes 1`` (``MAIL_PROCESSES``, the default) everything runs in this one asyncio
process. With more, this process becomes the supervisor of :mod:`mailcore.net.supervisor`: it
binds the ports and runs that many ``runmail --worker N`` processes serving them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailcore.net.supervisor import Supervisor, die_with_supervisor, supervisor_alive

log = logging.getLogger("mailcore.runmail")

SERVICES = ["mailcore.smtp.server", "mailcore.imap.server", "mailcore.pop3.server"]


class Command(BaseCommand):
    help = "Run the SMTP, submission, IMAP and POP3 listeners (ports from the environment)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--only", action="append", choices=["smtp", "imap", "pop3"], help="run only these protocols"
        )
        parser.add_argument(
            "--processes", type=int, default=None, metavar="N",
            help="worker processes sharing the ports (default: MAIL_PROCESSES, 1)",
        )
        # Internal: set by the supervisor for the processes it starts.
        parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        wanted = options.get("only") or ["smtp", "imap", "pop3"]
        modules = []
        for name in SERVICES:
            if name.split(".")[1] not in wanted:
                continue
            try:
                modules.append(importlib.import_module(name))
            except ModuleNotFoundError as exc:
                if exc.name and name.startswith(exc.name):
                    log.warning("%s is not available in this build; skipping", name)
                    continue
                raise
        if not modules:
            raise CommandError("no mail protocol is available to run")
        worker = options.get("worker")
        processes = options.get("processes")
        if processes is None:
            processes = int(settings.MAIL_PROCESSES)
        if processes < 1:
            raise CommandError(f"--processes must be 1 or more, not {processes}")
        if worker is None and processes > 1:
            self._supervise(modules, processes, options.get("only") or [])
            return
        if worker is not None:
            die_with_supervisor()
        try:
            asyncio.run(self._main(modules, worker))
        except OSError as exc:
            raise CommandError(f"cannot open a mail listener on {settings.MAIL_BIND}: {exc}") from None

    def _supervise(self, modules: list[Any], processes: int, only: list[str]) -> None:
        listeners = [entry for module in modules for entry in module.listen_ports()]
        supervisor = Supervisor(
            processes=processes,
            listeners=listeners,
            host=settings.MAIL_BIND,
            worker_args=[arg for name in only for arg in ("--only", name)],
        )
        try:
            lines = supervisor.bind()
        except OSError as exc:
            raise CommandError(str(exc)) from None
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"mail role ready as {settings.MAIL_HOSTNAME} ({processes} worker processes)")
        self.stdout.flush()
        status = supervisor.run()
        if status:
            raise CommandError("a mail worker kept crashing; the mail role stopped (see the log above)")
        self.stdout.write("mail role stopped")

    async def _main(self, modules: list[Any], worker: int | None = None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with contextlib.AsyncExitStack() as stack:
            lines = []
            for module in modules:
                lines += await module.serve(stack)
            if worker is None:
                for line in lines:
                    self.stdout.write(line)
                self.stdout.write(f"mail role ready as {settings.MAIL_HOSTNAME}")
            else:
                self.stdout.write(f"mail worker {worker} ready (pid {os.getpid()})")
                stack.enter_context(_watch_supervisor(loop, stop))
            self.stdout.flush()
            await stop.wait()
            self.stdout.write("mail role stopping" if worker is None else f"mail worker {worker} stopping")
            self.stdout.flush()


@contextlib.contextmanager
def _watch_supervisor(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """Where PR_SET_PDEATHSIG is missing: notice an orphaned worker within a second."""

    handles: list[asyncio.TimerHandle] = []

    def check() -> None:
        if not supervisor_alive():
            stop.set()
            return
        handles.append(loop.call_later(1.0, check))

    handles.append(loop.call_later(1.0, check))
    try:
        yield
    finally:
        handles[-1].cancel()
