"""``manage.py runmail``: the mail role — SMTP, IMAP and POP3 listeners in one asyncio process.

Each protocol package exposes ``async def serve(stack: AsyncExitStack) -> list[str]`` in its
``server`` module: it opens its listeners, registers their closing on the stack, and returns a
line per listener for the log. Several such processes may run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

log = logging.getLogger("mailcore.runmail")

SERVICES = ["mailcore.smtp.server", "mailcore.imap.server", "mailcore.pop3.server"]


class Command(BaseCommand):
    help = "Run the SMTP, submission, IMAP and POP3 listeners (ports from the environment)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--only", action="append", choices=["smtp", "imap", "pop3"], help="run only these protocols"
        )

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
        try:
            asyncio.run(self._main(modules))
        except OSError as exc:
            raise CommandError(f"cannot open a mail listener on {settings.MAIL_BIND}: {exc}") from None

    async def _main(self, modules: list[Any]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with contextlib.AsyncExitStack() as stack:
            for module in modules:
                for line in await module.serve(stack):
                    self.stdout.write(line)
            self.stdout.write(f"mail role ready as {settings.MAIL_HOSTNAME}")
            self.stdout.flush()
            await stop.wait()
            self.stdout.write("mail role stopping")
