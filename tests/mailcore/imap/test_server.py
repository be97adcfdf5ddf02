"""``serve()`` for runmail: IMAP ports from the settings, 0 meaning closed (as for SMTP and POP3)."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import socket

from mailcore.imap.server import listen_ports, serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_opens_the_configured_imap_listener_and_skips_port_zero(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_BIND, settings.IMAP_PORT, settings.IMAPS_PORT = "127.0.0.1", free_port(), 0
    assert listen_ports() == [("imap", settings.IMAP_PORT)]

    async def run() -> list[str]:
        async with contextlib.AsyncExitStack() as stack:
            lines = await serve(stack)

            def greeting() -> bytes:
                client = imaplib.IMAP4("127.0.0.1", settings.IMAP_PORT, timeout=5)
                try:
                    return client.welcome
                finally:
                    client.logout()

            assert (await asyncio.to_thread(greeting)).startswith(b"* OK")
            return lines

    assert asyncio.run(run()) == [f"IMAP listening on 127.0.0.1:{settings.IMAP_PORT} (STARTTLS)"]


def test_both_imap_ports_zero_open_nothing(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_BIND, settings.IMAP_PORT, settings.IMAPS_PORT = "127.0.0.1", 0, 0

    async def run() -> list[str]:
        async with contextlib.AsyncExitStack() as stack:
            return await serve(stack)

    assert listen_ports() == [] and asyncio.run(run()) == []
