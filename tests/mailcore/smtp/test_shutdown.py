"""Stopping a listener (runmail's SIGTERM): a message being stored gets its 250 first, then every
open session gets 421 4.3.2; nothing is lost and nothing half-stored."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest
from django.db import connection

from mailcore.models import Folder, Message
from mailcore.smtp.server import listener_stop
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import RawClient

from .test_hostile import open_transaction

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_message_being_stored_at_shutdown_gets_its_250_then_421(mx, smtp_servers, alice) -> None:
    config = connection.settings_dict
    inbox = Folder.objects.get(account=alice, name="INBOX")
    idle = RawClient(mx)
    # Another session holds alice's INBOX row: the delivery's UID allocation waits on it.
    with psycopg.connect(host=config["HOST"] or "127.0.0.1", port=config["PORT"] or 5432, user=config["USER"],
                         dbname=config["NAME"]) as blocker:
        blocker.execute("SELECT 1 FROM mailcore_folder WHERE id = %s FOR UPDATE", [inbox.pk])
        with RawClient(mx) as raw:
            open_transaction(raw)
            raw.send(make_message(subject="in flight") + b".\r\n")
            deadline = time.monotonic() + 10
            while not any(p.storing for p in mx.connections) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert any(p.storing for p in mx.connections)
            stopped = threading.Event()
            future = asyncio.run_coroutine_threadsafe(listener_stop(mx, grace=20), smtp_servers.loop)
            future.add_done_callback(lambda _: stopped.set())
            time.sleep(0.5)
            assert not stopped.is_set()  # waiting for the message being stored
            blocker.rollback()  # let the delivery go on
            assert raw.reply().startswith(b"250 2.0.0")
            assert raw.reply().startswith(b"421 4.3.2")
            future.result(20)
    assert idle.reply().startswith(b"421 4.3.2")
    idle.close()
    assert list(Message.objects.filter(account=alice).values_list("subject", flat=True)) == ["in flight"]
