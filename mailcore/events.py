"""Events published after commit to the Channels group of an account.

Payload (DESIGN.md): ``{"type": "mail.changed", "account": id, "folder": id,
"kind": "exists|flags|expunge|folders", "modseq": n}``. Browser websockets and IMAP IDLE
sessions in any process subscribe to :func:`account_group`. Redis is never the only copy of
anything: an event that cannot be published is logged and dropped; readers resync from the
database (modseq) when they next look.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from channels_redis.serializers import registry
from django.db import transaction

from mailcore.redis_client import redis_available, redis_failed, shared_redis

log = logging.getLogger(__name__)

_GROUP_PREFIX = "asgi"  # channels_redis' default prefix
_serializer = registry.get_serializer("msgpack")


def account_group(account_id: int) -> str:
    return f"mail-account-{account_id}"


def publish_now(account_id: int, payload: dict[str, Any]) -> None:
    """Publish ``payload`` to the account's group in the wire format of RedisPubSubChannelLayer."""
    channel = f"{_GROUP_PREFIX}__group__{account_group(account_id)}"
    if not redis_available():
        log.debug("event for account %s dropped: Redis failed a moment ago", account_id)
        return
    try:
        shared_redis().publish(channel, _serializer.serialize(payload))
    except redis.RedisError as exc:
        redis_failed()
        log.warning("event for account %s not published (Redis skipped for a few seconds): %s", account_id, exc)


def mail_changed(account_id: int, folder_id: int | None, kind: str, modseq: int = 0) -> dict[str, Any]:
    return {"type": "mail.changed", "account": account_id, "folder": folder_id, "kind": kind, "modseq": modseq}


def publish_on_commit(account_id: int, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: publish_now(account_id, payload))
