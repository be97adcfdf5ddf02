"""What the SMTP server accepts and where it puts it (blocking: runs in the DB thread pool).

MX: recipients must be ours (accounts, aliases, catch-alls); nothing is relayed for strangers.
Submission: an authenticated account may send as the addresses ``account_send_as`` lists, to
anyone. Both end in one transaction that writes the local copies and any queue rows together,
so "250" is said only after COMMIT (DESIGN.md).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from mailcore.addresses import AddressError, normalize_address
from mailcore.mime import parse_message
from mailcore.models import Account
from mailcore.relay.submit import outbound_enqueue
from mailcore.store import (
    DeliveryStatus,
    RecipientKind,
    Resolution,
    account_send_as,
    message_deliver,
    recipient_resolve,
)
from mailcore.store.errors import QuotaExceeded

from . import replies
from .parser import is_relay_spelling


class Verdict(enum.Enum):
    ACCEPT = "accept"
    RELAY_DENIED = "relay_denied"
    UNKNOWN_USER = "unknown_user"
    MAILBOX_FULL = "mailbox_full"
    BAD_ADDRESS = "bad_address"


@dataclass
class RecipientDecision:
    verdict: Verdict
    reply: str
    resolution: Resolution | None = None


def mx_recipient_check(address: str, *, declared_size: int = 0) -> RecipientDecision:
    """Decide RCPT TO on the MX port."""
    if is_relay_spelling(address):
        return RecipientDecision(Verdict.RELAY_DENIED, replies.RELAY_DENIED.format(address=address))
    resolution = recipient_resolve(address)
    if resolution.kind is RecipientKind.REMOTE:
        return RecipientDecision(Verdict.RELAY_DENIED, replies.RELAY_DENIED.format(address=address))
    if resolution.kind is RecipientKind.INVALID:
        return RecipientDecision(Verdict.BAD_ADDRESS, replies.BAD_ADDRESS.format(reason=resolution.reason))
    if resolution.kind is RecipientKind.UNKNOWN:
        return RecipientDecision(Verdict.UNKNOWN_USER, replies.UNKNOWN_USER.format(address=resolution.address))
    if resolution.account_ids and not resolution.forwards and resolution.all_full(declared_size):
        return RecipientDecision(Verdict.MAILBOX_FULL, replies.MAILBOX_FULL.format(address=resolution.address))
    return RecipientDecision(Verdict.ACCEPT, replies.RECIPIENT_OK, resolution)


def submission_recipient_check(address: str) -> RecipientDecision:
    """Decide RCPT TO for an authenticated client: anyone, except unknown users of ours."""
    if is_relay_spelling(address):
        return RecipientDecision(Verdict.BAD_ADDRESS, replies.BAD_ADDRESS.format(reason="not a plain address"))
    resolution = recipient_resolve(address)
    if resolution.kind is RecipientKind.INVALID:
        return RecipientDecision(Verdict.BAD_ADDRESS, replies.BAD_ADDRESS.format(reason=resolution.reason))
    if resolution.kind is RecipientKind.UNKNOWN:
        return RecipientDecision(Verdict.UNKNOWN_USER, replies.UNKNOWN_USER.format(address=resolution.address))
    return RecipientDecision(Verdict.ACCEPT, replies.RECIPIENT_OK, resolution)


def sender_allowed(account: Account, address: str) -> bool:
    """May ``account`` use ``address`` as its envelope sender?"""
    try:
        canonical = normalize_address(address)
    except AddressError:
        return False
    return canonical in account_send_as(account)


class MailboxFullAtDelivery(Exception):
    """A mailbox filled up between RCPT and end of data: the whole transaction is undone."""


@dataclass
class Stored:
    local_message_ids: list[int] = field(default_factory=list)
    outbound_id: int | None = None
    queued: int = 0


# The store services are each ``@transaction.atomic``; nested in the transaction below, each would
# open a SAVEPOINT and RELEASE it: two more round trips to PostgreSQL per message (a fifth of the
# time of an MX delivery in the SMTP benchmark's profile) for nothing, since any error inside them
# rolls this whole transaction back anyway. So their bodies run directly, in this transaction.
_deliver = message_deliver.__wrapped__  # type: ignore[attr-defined]
_enqueue = outbound_enqueue.__wrapped__  # type: ignore[attr-defined]


def message_accept(
    *,
    local_raw: bytes,
    relay_raw: bytes,
    mail_from: str,
    local: Sequence[Resolution],
    remote: Sequence[str],
    account: Account | None = None,
    smtputf8: bool = False,
) -> Stored:
    """Deliver ``local_raw`` to local recipients and queue ``relay_raw`` for remote ones and for
    alias forwards, in ONE transaction: either everything is committed or nothing is.

    ``local_raw`` carries Return-Path (final delivery); ``relay_raw`` does not (RFC 5321 §4.4).
    """
    stored = Stored()
    with transaction.atomic():
        forwards: list[str] = []
        if local:
            delivery = _deliver(raw=local_raw, recipients=list(local), parsed=parse_message(local_raw))
            for result in delivery.recipients:
                if result.status is DeliveryStatus.OVER_QUOTA:
                    raise MailboxFullAtDelivery(result.address)
                stored.local_message_ids.extend(result.message_ids)
            forwards = delivery.forwards
        outbound = list(dict.fromkeys([*remote, *forwards]))
        if outbound:
            stored.outbound_id, queued = _enqueue(
                raw=relay_raw, mail_from=mail_from, recipients=outbound, account=account, smtputf8=smtputf8
            )
            stored.queued = len(queued)
    return stored


__all__ = [
    "MailboxFullAtDelivery",
    "QuotaExceeded",
    "RecipientDecision",
    "Stored",
    "Verdict",
    "message_accept",
    "mx_recipient_check",
    "sender_allowed",
    "submission_recipient_check",
]
