"""Events published after commit to the Channels group of an account.

Payload (DESIGN.md): ``{"type": "mail.changed", "account": id, "folder": id,
"kind": "exists|flags|expunge|folders", "modseq": n}``. Browser websockets and IMAP IDLE
sessions in any process subscribe to :func:`account_group`. Redis is never the only copy of
anything: an event that cannot be published is logged and dropped; readers resync from the
database (modseq) when they next look.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from channels_redis.serializers import registry
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

_GROUP_PREFIX = "asgi"  # channels_redis' default prefix
_serializer = registry.get_serializer("msgpack")
_local = threading.local()


def account_group(account_id: int) -> str:
    return f"mail-account-{account_id}"


def _client() -> redis.Redis:
    client = getattr(_local, "client", None)
    if client is None or getattr(_local, "url", None) != settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        _local.client, _local.url = client, settings.REDIS_URL
    return client


def publish_now(account_id: int, payload: dict[str, Any]) -> None:
    """Publish ``payload`` to the account's group in the wire format of RedisPubSubChannelLayer."""
    channel = f"{_GROUP_PREFIX}__group__{account_group(account_id)}"
    try:
        _client().publish(channel, _serializer.serialize(payload))
    except redis.RedisError as exc:
        log.warning("event for account %s not published: %s", account_id, exc)


def mail_changed(account_id: int, folder_id: int | None, kind: str, modseq: int = 0) -> dict[str, Any]:
    return {"type": "mail.changed", "account": account_id, "folder": folder_id, "kind": kind, "modseq": modseq}


def publish_on_commit(account_id: int, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: publish_now(account_id, payload))
