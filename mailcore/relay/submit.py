"""Handing a message on: local recipients through the store at once, remote ones to the queue.

Submission (SMTP AUTH), the web UI and MX delivery to aliases that forward elsewhere all come
through here. Everything happens in one transaction, so "250" / "sent" is said only when the
local copies and every queue row are committed together.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from mailcore.mime import ParsedMessage, parse_message
from mailcore.models import Account, OutboundMessage, OutboundRecipient
from mailcore.store import DeliveryResult, RecipientKind, message_deliver, recipient_resolve
from mailcore.store.blobs import blob_acquire


@dataclass
class QueuedRecipient:
    address: str
    recipient_id: int


@dataclass
class SubmitResult:
    delivery: DeliveryResult | None = None
    queued: list[QueuedRecipient] = field(default_factory=list)
    outbound_id: int | None = None
    refused: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)


@transaction.atomic
def outbound_enqueue(
    *,
    raw: bytes,
    mail_from: str,
    recipients: Sequence[str],
    account: Account | None = None,
    dsn_ret: str = "",
    dsn_envid: str = "",
    notify: dict[str, str] | None = None,
    orcpt: dict[str, str] | None = None,
    smtputf8: bool = False,
    now: datetime | None = None,
) -> tuple[int, list[QueuedRecipient]]:
    """Write an OutboundMessage and one OutboundRecipient per remote address, due now."""
    unique = list(dict.fromkeys(recipients))
    if not unique:
        raise ValueError("nothing to queue")
    blob_id = blob_acquire(raw=raw, refs=1)
    message = OutboundMessage.objects.create(
        account=account, blob_id=blob_id, mail_from=mail_from, dsn_ret=dsn_ret, dsn_envid=dsn_envid, smtputf8=smtputf8
    )
    due = now or timezone.now()
    rows = OutboundRecipient.objects.bulk_create(
        OutboundRecipient(
            message=message,
            address=address,
            domain=address.rpartition("@")[2].lower(),
            next_attempt_at=due,
            notify=(notify or {}).get(address, ""),
            orcpt=(orcpt or {}).get(address, ""),
        )
        for address in unique
    )
    queued = [QueuedRecipient(address=r.address, recipient_id=r.pk) for r in rows]
    transaction.on_commit(_wake_relay)
    return message.pk, queued


def _wake_relay() -> None:
    """Ask a worker to look at the queue now rather than at the next beat (best effort)."""
    try:
        tasks = importlib.import_module("mailcore.relay.tasks")
    except ModuleNotFoundError:
        return
    kick = getattr(tasks, "queue_kick", None)
    if kick is not None:
        try:
            kick.delay()
        except Exception:  # noqa: BLE001 - Redis down: beat finds the rows in PostgreSQL anyway
            pass


@transaction.atomic
def message_submit(
    *,
    raw: bytes,
    mail_from: str,
    recipients: Sequence[str],
    account: Account | None = None,
    parsed: ParsedMessage | None = None,
    dsn_ret: str = "",
    dsn_envid: str = "",
    notify: dict[str, str] | None = None,
    orcpt: dict[str, str] | None = None,
    smtputf8: bool = False,
) -> SubmitResult:
    """Deliver to local recipients and queue the remote ones (and alias forwards), atomically."""
    parsed = parsed or parse_message(raw)
    resolutions = [recipient_resolve(r) for r in recipients]
    local = [r for r in resolutions if r.kind in (RecipientKind.LOCAL, RecipientKind.UNKNOWN)]
    remote = [r.address for r in resolutions if r.kind is RecipientKind.REMOTE]
    result = SubmitResult()
    result.refused = [(r.address, r.reason) for r in resolutions if r.kind is RecipientKind.INVALID]
    if local:
        result.delivery = message_deliver(raw=raw, recipients=local, parsed=parsed)
        for r in result.delivery.recipients:
            if not r.ok:
                result.refused.append((r.address, r.reason))
        remote += [f for f in result.delivery.forwards if f not in remote]
    if remote:
        result.outbound_id, result.queued = outbound_enqueue(
            raw=raw, mail_from=mail_from, recipients=remote, account=account, dsn_ret=dsn_ret,
            dsn_envid=dsn_envid, notify=notify, orcpt=orcpt, smtputf8=smtputf8,
        )
    return result
