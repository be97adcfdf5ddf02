"""``listener_stop``: a message being stored when the grace period ends still gets its 250 (its
commit cannot be stopped; a 421 instead would make the client send it again: a duplicate)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.db import connection, transaction

from mailcore.models import Folder, Message
from mailcore.smtp.server import listener_stop
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import RawClient, ServerThread, StartServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_message_still_being_stored_after_the_grace_gets_its_250_then_421(
    smtp_servers: ServerThread, start_server: StartServer, alice
) -> None:
    mx = start_server()
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    locked, release = threading.Event(), threading.Event()

    def hold_the_inbox() -> None:
        # Delivery allocates a UID with an UPDATE of the folder row: it waits on this lock.
        try:
            with transaction.atomic():
                Folder.objects.select_for_update().get(pk=inbox.pk)
                locked.set()
                release.wait(20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_inbox)
    holder.start()
    try:
        assert locked.wait(10)
        client = RawClient(mx)
        assert client.command(b"EHLO client.example")[:3] == b"250"
        assert client.command(b"MAIL FROM:<dave@example.org>")[:3] == b"250"
        assert client.command(b"RCPT TO:<alice@a.test>")[:3] == b"250"
        assert client.command(b"DATA")[:3] == b"354"
        client.send(make_message(sender="dave@example.org") + b".\r\n")

        async def storing() -> bool:
            return any(p.storing for p in mx.connections)

        deadline = time.monotonic() + 10
        while not asyncio.run_coroutine_threadsafe(storing(), smtp_servers.loop).result(5):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        stopping = asyncio.run_coroutine_threadsafe(listener_stop(mx, grace=0.2), smtp_servers.loop)
        time.sleep(0.8)  # well past the grace
        assert not stopping.done()
    finally:
        release.set()
        holder.join(20)
    assert client.reply()[:3] == b"250"
    assert client.reply()[:3] == b"421"
    stopping.result(10)
    assert Message.objects.filter(account=alice).count() == 1
