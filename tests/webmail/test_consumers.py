from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import connections

from mailcore import store
from mailcore.models import Account
from tests.conftest import make_message
from webmail.consumers import CLOSE_UNAUTHENTICATED, MailEventsConsumer


def _run(coro: Any) -> Any:
    """asyncio.run in a thread of its own: Playwright's sync API may own this thread's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=30)


def _deliver(to: str) -> None:
    try:
        store.message_deliver(raw=make_message(to=to), recipients=[to])
    finally:
        connections.close_all()


async def _session(user: Any, deliver_to: str | None, *, expect: bool = True) -> tuple[list[dict[str, Any]], Any]:
    communicator = WebsocketCommunicator(MailEventsConsumer.as_asgi(), "/ws/events/")
    communicator.scope["user"] = user
    connected, code = await communicator.connect(timeout=5)
    frames: list[dict[str, Any]] = []
    if connected:
        frames.append(await communicator.receive_json_from(timeout=5))
        if deliver_to:
            await sync_to_async(_deliver, thread_sensitive=False)(deliver_to)
            if expect:
                frames.append(await communicator.receive_json_from(timeout=3))
            else:
                if not await communicator.receive_nothing(timeout=1.5):
                    frames.append(await communicator.receive_json_from(timeout=1))
        await communicator.disconnect()
    layer = get_channel_layer()
    if layer is not None:
        await layer.flush()
    return frames, (connected, code)


@pytest.mark.django_db(transaction=True)
def test_new_mail_is_pushed_to_the_accounts_socket(alice: Account) -> None:
    frames, (connected, _) = _run(_session(alice, "alice@a.test"))
    assert connected
    assert frames[0] == {"type": "hello"}
    assert any(f["type"] == "mail.changed" and f["kind"] == "exists" for f in frames[1:])


@pytest.mark.django_db(transaction=True)
def test_other_accounts_events_are_not_pushed(alice: Account, bob: Account) -> None:
    frames, _ = _run(_session(alice, "bob@b.test", expect=False))
    assert frames == [{"type": "hello"}]


def test_anonymous_socket_is_closed() -> None:
    frames, (connected, code) = _run(_session(AnonymousUser(), None))
    assert not connected and code == CLOSE_UNAUTHENTICATED
