"""Account events for the IMAP sessions of a listener: one Redis pub/sub connection for all.

Every session used to open a channel-layer subscription of its own at LOGIN (a SUBSCRIBE for a
channel of its own and one for the account's group, a reader task, and the same undone at
LOGOUT): Redis round trips and task switches on every login of a client that logs in for each
check. Here a listener holds one pub/sub connection; an account's channel is subscribed when
its first session registers and stays subscribed for ``UNSUBSCRIBE_AFTER`` seconds after its
last one leaves (clients log in again and again). Events come in the format of
:mod:`mailcore.events` (the channels_redis pub/sub layer's, so the web's websockets get the
same ones).

Redis is never the only copy: while the connection is down :attr:`Notifier.healthy` is false
and sessions look at the database before every answer, as they do without Redis; after a
reconnection every session is told to look once (events may have been missed in between).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aredis
from django.conf import settings

from mailcore.events import account_channel, event_serializer
from mailcore.redis_client import redis_available, redis_failed

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]
UNSUBSCRIBE_AFTER = 60.0
RECONNECT_SECONDS = 1.0
CLIENT_NAME = "imap-notify"  # in CLIENT LIST
# Told to every session after a reconnection: look at the database once.
RESYNC: dict[str, Any] = {"type": "mail.resync"}


class Notifier:
    def __init__(self) -> None:
        self.listeners: dict[int, set[Callback]] = {}
        self.subscribed: set[int] = set()
        self.healthy = False
        self._client: Any = None  # redis.asyncio.Redis (the stubs lack aclose)
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._idle: dict[int, asyncio.TimerHandle] = {}
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def listening(self, account_id: int) -> bool:
        """Whether events of the account arrive now (else its sessions look for themselves)."""
        return self.healthy and account_id in self.subscribed

    async def register(self, account_id: int, callback: Callback) -> bool:
        """Deliver the account's events to ``callback``; False when Redis is unavailable (the
        session then looks at the database itself)."""
        self.listeners.setdefault(account_id, set()).add(callback)
        timer = self._idle.pop(account_id, None)
        if timer is not None:
            timer.cancel()
        if account_id in self.subscribed and self.healthy:
            return True
        if self._reader is not None and not self.healthy:
            return False  # reconnecting: it subscribes every registered account when back
        if not redis_available():
            return False
        try:
            if self._pubsub is None:
                self._client = aredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, client_name=CLIENT_NAME)
                self._pubsub = self._client.pubsub()
            await self._pubsub.subscribe(account_channel(account_id))
        except (redis.RedisError, OSError) as exc:
            log.warning("IMAP notifications unavailable: %s", exc)
            redis_failed()
            await self._drop()
            return False
        self.subscribed.add(account_id)
        self.healthy = True
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        return True

    def unregister(self, account_id: int, callback: Callback) -> None:
        callbacks = self.listeners.get(account_id)
        if callbacks is None:
            return
        callbacks.discard(callback)
        if callbacks:
            return
        del self.listeners[account_id]
        if account_id in self.subscribed and not self._closed:
            self._idle[account_id] = asyncio.get_running_loop().call_later(
                UNSUBSCRIBE_AFTER, self._unsubscribe_idle, account_id)

    def _unsubscribe_idle(self, account_id: int) -> None:
        self._idle.pop(account_id, None)
        if account_id in self.listeners or account_id not in self.subscribed or self._pubsub is None:
            return
        self.subscribed.discard(account_id)
        pubsub = self._pubsub

        async def unsubscribe() -> None:
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.unsubscribe(account_channel(account_id))

        task = asyncio.create_task(unsubscribe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dispatch(self, account_id: int | None, event: dict[str, Any]) -> None:
        targets = self.listeners.get(account_id, ()) if account_id is not None else [
            cb for callbacks in self.listeners.values() for cb in callbacks]
        for callback in list(targets):
            try:
                callback(event)
            except Exception:  # a session's bug must not stop the others' events
                log.exception("IMAP event handler failed")

    async def _read(self) -> None:
        while not self._closed:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the connection is gone: reconnect
                log.warning("IMAP notifications lost their Redis connection: %s", exc)
                self.healthy = False
                await self._drop()
                if not await self._reconnect():
                    self._reader = None  # nobody listens any more: the next register() connects
                    return
                continue
            if not message or message.get("type") != "message":
                continue
            try:
                event = event_serializer.deserialize(message["data"])
                account_id = int(event.get("account") or 0)
            except Exception:  # noqa: BLE001
                log.warning("IMAP notifications: an undecodable event", exc_info=True)
                continue
            self._dispatch(account_id, event)

    async def _reconnect(self) -> bool:
        """Until Redis answers again, or nobody listens any more (then a later LOGIN starts over)."""
        while not self._closed and self.listeners:
            await asyncio.sleep(RECONNECT_SECONDS)
            if not redis_available():
                continue
            try:
                self._client = aredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, client_name=CLIENT_NAME)
                self._pubsub = self._client.pubsub()
                accounts = list(self.listeners)
                await self._pubsub.subscribe(*[account_channel(a) for a in accounts])
            except (redis.RedisError, OSError) as exc:
                log.debug("IMAP notifications: Redis still unavailable: %s", exc)
                redis_failed()
                await self._drop()
                continue
            self.subscribed = set(accounts)
            self.healthy = True
            self._dispatch(None, RESYNC)  # whatever happened while disconnected
            return True
        return False

    async def _drop(self) -> None:
        self.healthy = False
        self.subscribed.clear()
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()

    async def close(self) -> None:
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._drop()
        self.listeners.clear()
