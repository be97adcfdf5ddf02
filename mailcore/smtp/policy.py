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
from django.utils import timezone

from mailcore.addresses import AddressError, normalize_address
from mailcore.mime import parse_message
from mailcore.models import Account
from mailcore.relay.dsn import ReportEnvelope, ReportRecipient, report_send
from mailcore.relay.submit import outbound_enqueue
from mailcore.store import (
    DeliveryStatus,
    RecipientKind,
    Resolution,
    account_send_as,
    message_deliver,
    recipient_resolve,
)
from mailcore.store.copies import CopyTarget, store_copies
from mailcore.store.errors import QuotaExceeded
from mailcore.store.locks import lock_accounts

from . import replies
from .dsn import RcptDsn, notify_keywords, orcpt_for
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


def mx_recipient_check(
    address: str, *, declared_size: int = 0, known: Resolution | None = None
) -> RecipientDecision:
    """Decide RCPT TO on the MX port. ``known``: the address's resolution, found a moment ago
    (then no lookup is made)."""
    if is_relay_spelling(address):
        return RecipientDecision(Verdict.RELAY_DENIED, replies.RELAY_DENIED.format(address=address))
    resolution = known or recipient_resolve(address)
    if resolution.kind is RecipientKind.REMOTE:
        return RecipientDecision(Verdict.RELAY_DENIED, replies.RELAY_DENIED.format(address=address))
    if resolution.kind is RecipientKind.INVALID:
        return RecipientDecision(Verdict.BAD_ADDRESS, replies.BAD_ADDRESS.format(reason=resolution.reason))
    if resolution.kind is RecipientKind.UNKNOWN:
        return RecipientDecision(Verdict.UNKNOWN_USER, replies.UNKNOWN_USER.format(address=resolution.address))
    if resolution.account_ids and not resolution.forwards and resolution.all_full(declared_size):
        return RecipientDecision(Verdict.MAILBOX_FULL, replies.MAILBOX_FULL.format(address=resolution.address))
    return RecipientDecision(Verdict.ACCEPT, replies.RECIPIENT_OK, resolution)


def submission_recipient_check(address: str, *, known: Resolution | None = None) -> RecipientDecision:
    """Decide RCPT TO for an authenticated client: anyone, except unknown users of ours."""
    if is_relay_spelling(address):
        return RecipientDecision(Verdict.BAD_ADDRESS, replies.BAD_ADDRESS.format(reason="not a plain address"))
    resolution = known or recipient_resolve(address)
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
    reports: int = 0  # "delivered" DSNs sent (NOTIFY=SUCCESS)


@dataclass
class EnvelopeDsn:
    """The RFC 3461 parameters of one SMTP transaction."""

    ret: str = ""
    envid: str = ""
    recipients: dict[str, RcptDsn] = field(default_factory=dict)  # by canonical recipient address

    def of(self, address: str) -> RcptDsn:
        return self.recipients.get(address, RcptDsn())

    def without_success(self) -> EnvelopeDsn:
        """The same parameters with SUCCESS taken out of every NOTIFY (NOTIFY=SUCCESS alone
        becomes NEVER: the sender asked for no failure reports)."""
        recipients = {}
        for address, params in self.recipients.items():
            keywords = [k for k in params.notify.split(",") if k and k != "SUCCESS"]
            notify = ",".join(keywords) or ("NEVER" if params.notify else "")
            recipients[address] = RcptDsn(notify=notify, orcpt=params.orcpt)
        return EnvelopeDsn(ret=self.ret, envid=self.envid, recipients=recipients)


# The store services are each ``@transaction.atomic``; nested in the transaction below, each would
# open a SAVEPOINT and RELEASE it: two more round trips to PostgreSQL per message (a fifth of the
# time of an MX delivery in the SMTP benchmark's profile) for nothing, since any error inside them
# rolls this whole transaction back anyway. So their bodies run directly, in this transaction.
_deliver = message_deliver.__wrapped__  # type: ignore[attr-defined]
_enqueue = outbound_enqueue.__wrapped__  # type: ignore[attr-defined]


def _lock_accounts_for_reports(*, local: Sequence[Resolution], mail_from: str, dsn: EnvelopeDsn) -> None:
    """Lock every local account this transaction will write, in id order, before any of them.

    Delivery locks the recipients' accounts (quota), and a "delivered" report then locks the
    sender's when the sender is local: alice → bob and bob → alice at once, both asking for
    NOTIFY=SUCCESS, would each hold one row and wait for the other (a deadlock: one of them
    refused with 451). Taking them all in id order first, as the store does for several
    recipients, makes the second transaction wait at its first lock instead.
    """
    if not mail_from or not any(
        "SUCCESS" in notify_keywords(dsn.of(r.address).notify) for r in local if r.account_ids
    ):
        return
    sender = recipient_resolve(mail_from)
    if sender.kind is not RecipientKind.LOCAL or not sender.account_ids:
        return
    lock_accounts({a for r in local for a in r.account_ids} | set(sender.account_ids))


def _deliver_alone(
    *, local_raw: bytes, local: Sequence[Resolution], remote: Sequence[str], junk: bool, dsn: EnvelopeDsn
) -> Stored | None:
    """The commonest MX case, one local mailbox and nothing else to write, as ONE statement that
    is its own transaction: no BEGIN and no COMMIT round trips (a third of the delivery's time on
    a busy machine). It commits everything or nothing, as the transaction below does: a full
    mailbox takes nothing, a vanished folder fails the statement. None: not this case."""
    target = alone_target(local=local, remote=remote, junk=junk, dsn=dsn)
    if target is None or transaction.get_connection().in_atomic_block:
        return None
    outcome = store_copies(raw=local_raw, targets=[target], parsed=parse_message(local_raw), alone=True)
    if outcome.over_quota:
        raise MailboxFullAtDelivery(local[0].address)
    return Stored(local_message_ids=[c.message_id for c in outcome.stored])


def alone_target(
    *, local: Sequence[Resolution], remote: Sequence[str], junk: bool, dsn: EnvelopeDsn
) -> CopyTarget | None:
    """The one INBOX copy of a delivery that is one statement of its own, or None when the
    delivery writes more than that (several copies, a queued forward or remote recipient, a
    "delivered" report, a Junk folder to find)."""
    if remote or junk or len(local) != 1:
        return None
    resolution = local[0]
    if resolution.forwards or len(resolution.account_ids) != 1:
        return None
    if "SUCCESS" in notify_keywords(dsn.of(resolution.address).notify):
        return None  # the "delivered" report is written in the same transaction
    account_id = resolution.account_ids[0]
    folder_id = resolution.inboxes.get(account_id)
    if folder_id is None:
        return None
    return CopyTarget(account_id=account_id, folder_id=folder_id)


def message_accept(
    *,
    local_raw: bytes,
    relay_raw: bytes,
    mail_from: str,
    local: Sequence[Resolution],
    remote: Sequence[str],
    account: Account | None = None,
    smtputf8: bool = False,
    junk: bool = False,
    dsn: EnvelopeDsn | None = None,
) -> Stored:
    """Deliver ``local_raw`` to local recipients and queue ``relay_raw`` for remote ones and for
    alias forwards, in ONE transaction: either everything is committed or nothing is.

    ``local_raw`` carries Return-Path (final delivery); ``relay_raw`` does not (RFC 5321 §4.4).
    ``junk`` files the local copies in each recipient's Junk folder (DMARC ``p=quarantine``).
    ``dsn``: RET/ENVID go on the queued message, NOTIFY/ORCPT on each queued recipient (an
    alias's forwards inherit its NOTIFY, and its address as ORCPT when none was given, RFC 3461
    §5.2.7); local recipients that asked for NOTIFY=SUCCESS get a "delivered" report sent.
    """
    dsn = dsn or EnvelopeDsn()
    alone = _deliver_alone(local_raw=local_raw, local=local, remote=remote, junk=junk, dsn=dsn)
    if alone is not None:
        return alone
    stored = Stored()
    with transaction.atomic():
        _lock_accounts_for_reports(local=local, mail_from=mail_from, dsn=dsn)
        forward_of: dict[str, str] = {}
        delivered: list[str] = []
        if local:
            delivery = _deliver(
                raw=local_raw, recipients=list(local), parsed=parse_message(local_raw), junk=junk
            )
            for result in delivery.recipients:
                if result.status is DeliveryStatus.OVER_QUOTA:
                    raise MailboxFullAtDelivery(result.address)
                stored.local_message_ids.extend(result.message_ids)
                if result.message_ids:
                    delivered.append(result.address)
            for resolution in local:
                for forward in resolution.forwards:
                    forward_of.setdefault(forward, resolution.address)
        outbound = list(dict.fromkeys([*remote, *forward_of]))
        if outbound:
            notify: dict[str, str] = {}
            orcpt: dict[str, str] = {}
            for address in outbound:
                original = forward_of.get(address, address) if address not in remote else address
                params = dsn.of(original)
                notify[address] = params.notify
                orcpt[address] = params.orcpt or (orcpt_for(original) if original != address else "")
            stored.outbound_id, queued = _enqueue(
                raw=relay_raw, mail_from=mail_from, recipients=outbound, account=account, smtputf8=smtputf8,
                dsn_ret=dsn.ret, dsn_envid=dsn.envid, notify=notify, orcpt=orcpt,
            )
            stored.queued = len(queued)
        success = [a for a in delivered if "SUCCESS" in notify_keywords(dsn.of(a).notify)]
        if success and mail_from:
            stored.reports = report_send(
                envelope=ReportEnvelope(mail_from=mail_from, arrival=timezone.now(), ret=dsn.ret, envid=dsn.envid),
                recipients=[
                    ReportRecipient(address=a, orcpt=dsn.of(a).orcpt, reply="250 2.0.0 delivered to the mailbox")
                    for a in success
                ],
                action="delivered", raw=local_raw, about="local delivery",
            )
    return stored


__all__ = [
    "EnvelopeDsn",
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
