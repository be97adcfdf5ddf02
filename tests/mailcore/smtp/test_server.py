"""``serve()`` for runmail: ports from the settings, 0 meaning closed."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket

import pytest

from mailcore.smtp.server import serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_opens_the_configured_listeners_and_skips_port_zero(settings) -> None:
    settings.MAIL_BIND = "127.0.0.1"
    settings.SMTP_PORT = free_port()
    settings.SUBMISSION_PORT = 0
    settings.SMTPS_PORT = free_port()

    async def run() -> list[str]:
        async with contextlib.AsyncExitStack() as stack:
            lines = await serve(stack)

            def talk() -> int:
                with smtplib.SMTP("127.0.0.1", settings.SMTP_PORT, timeout=5) as client:
                    return client.noop()[0]

            assert await asyncio.to_thread(talk) == 250
            return lines

    lines = asyncio.run(run())
    assert lines == [
        f"smtp smtp listening on 127.0.0.1:{settings.SMTP_PORT}",
        f"smtp smtps listening on 127.0.0.1:{settings.SMTPS_PORT}",
    ]


@pytest.mark.parametrize("role", ["smtp"])
def test_proxy_listeners_come_from_the_settings(settings, role: str) -> None:
    settings.PROXY_PROTOCOL_LISTENERS = [role]
    settings.SMTP_PORT = free_port()
    settings.SUBMISSION_PORT = settings.SMTPS_PORT = 0

    async def run() -> list[str]:
        async with contextlib.AsyncExitStack() as stack:
            return await serve(stack)

    assert asyncio.run(run())[0].endswith("(PROXY protocol)")
