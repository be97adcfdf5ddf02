"""The outbound queue's state: claiming due recipients, recording outcomes, retry and cancel.

Rows live in PostgreSQL (``OutboundRecipient``), so Redis and workers can vanish without losing
or doubling mail. A claim moves due rows QUEUED → SENDING under a random token and a lease; the
worker records each outcome under that token, so a worker whose lease ran out and whose rows
were claimed again cannot overwrite the newer claim. Transitions (``TRANSITIONS``):

    queued  → sending (claim) | cancelled (admin)
    sending → delivered | failed | queued (deferred, with next_attempt_at) | sending (lease expired, claimed again)
"""

from __future__ import annotations

import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from mailcore.models import OutboundMessage, OutboundRecipient

from .schedule import RetryPolicy, delay_warning_due, next_attempt

Status = OutboundRecipient.Status

TRANSITIONS: dict[str, set[str]] = {
    Status.QUEUED: {Status.SENDING, Status.CANCELLED},
    Status.SENDING: {Status.DELIVERED, Status.FAILED, Status.QUEUED, Status.SENDING},
    Status.DELIVERED: set(),
    Status.FAILED: set(),
    Status.CANCELLED: set(),
}

MAX_RECIPIENTS_PER_BATCH = 500  # one connection carries at most this many recipients per claim
MAX_ROWS_PER_CLAIM = 5000
# pg_advisory_xact_lock key ("relay"): claimers take turns, so per-destination counts are exact.
CLAIM_LOCK_KEY = 0x72656C6179


@dataclass(frozen=True)
class Batch:
    """Recipients of one destination domain for one connection, claimed under ``claim``."""

    domain: str
    claim: str
    recipient_ids: list[int]


class OutcomeKind(enum.Enum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"  # 4xx or no connection: try again on the schedule
    FAILED = "failed"  # 5xx or a permanent routing failure: bounce now


@dataclass(frozen=True)
class Outcome:
    recipient_id: int
    kind: OutcomeKind
    reply: str
    remote_host: str = ""
    # The server that took the message offers DSN (RFC 3461): NOTIFY went on with it, so the
    # "relayed" report for NOTIFY=SUCCESS is that server's business, not ours.
    next_hop_dsn: bool = False


@dataclass
class Recorded:
    delivered: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # no longer ours: the lease ran out and it was claimed again
    dsn_sent: int = 0


def transition_check(old: str, new: str) -> None:
    if new not in TRANSITIONS[old]:
        raise ValueError(f"outbound recipient cannot go from {old} to {new}")


@transaction.atomic
def recipients_claim(*, now: datetime | None = None, limit: int = MAX_ROWS_PER_CLAIM) -> list[Batch]:
    """Claim due recipients (queued and due, or sending with an expired lease), one batch per connection."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=settings.RELAY_LEASE_SECONDS)
    concurrency = int(settings.RELAY_CONCURRENCY_PER_DESTINATION)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK_KEY])
    due = list(
        OutboundRecipient.objects.select_for_update(skip_locked=True)
        .filter(Q(status=Status.QUEUED, next_attempt_at__lte=now) | Q(status=Status.SENDING, lease_until__lt=now))
        .order_by("next_attempt_at", "id")
        .values_list("id", "domain")[:limit]
    )
    if not due:
        return []
    by_domain: dict[str, list[int]] = defaultdict(list)
    for recipient_id, domain in due:
        by_domain[domain].append(recipient_id)
    busy = dict(
        OutboundRecipient.objects.filter(status=Status.SENDING, lease_until__gte=now, domain__in=list(by_domain))
        .values("domain")
        .annotate(connections=Count("claim", distinct=True))
        .values_list("domain", "connections")
    )
    batches: list[Batch] = []
    for domain, ids in by_domain.items():
        slots = concurrency - busy.get(domain, 0)
        for start in range(0, len(ids), MAX_RECIPIENTS_PER_BATCH):
            if slots <= 0:
                break
            chunk = ids[start : start + MAX_RECIPIENTS_PER_BATCH]
            token = uuid.uuid4().hex
            OutboundRecipient.objects.filter(id__in=chunk).update(
                status=Status.SENDING, claim=token, lease_until=lease_until
            )
            batches.append(Batch(domain=domain, claim=token, recipient_ids=chunk))
            slots -= 1
    return batches


def lease_renew(*, claim: str, now: datetime | None = None) -> int:
    """Push the lease of a batch still being worked on; returns how many rows are still ours."""
    now = now or timezone.now()
    return OutboundRecipient.objects.filter(claim=claim, status=Status.SENDING).update(
        lease_until=now + timedelta(seconds=settings.RELAY_LEASE_SECONDS)
    )


@transaction.atomic
def outcomes_record(*, claim: str, outcomes: Sequence[Outcome], now: datetime | None = None) -> Recorded:
    """Apply delivery outcomes under ``claim``; failures, the first long delay and (on request)
    hand-overs to servers without DSN produce DSNs."""
    from .dsn import dsn_send  # dsn submits through mailcore.relay.submit, which imports this module's peers

    now = now or timezone.now()
    policy = RetryPolicy.from_settings()
    by_id = {o.recipient_id: o for o in outcomes}
    rows = list(
        OutboundRecipient.objects.select_for_update()
        .select_related("message")
        .filter(id__in=list(by_id), claim=claim, status=Status.SENDING)
        .order_by("id")
    )
    recorded = Recorded(stale=sorted(set(by_id) - {r.pk for r in rows}))
    failed: dict[int, list[OutboundRecipient]] = defaultdict(list)
    delayed: dict[int, list[OutboundRecipient]] = defaultdict(list)
    relayed: dict[int, list[OutboundRecipient]] = defaultdict(list)
    messages: dict[int, OutboundMessage] = {}
    for row in rows:
        outcome = by_id[row.pk]
        messages[row.message_id] = row.message
        row.attempts += 1
        row.last_attempt_at = now
        row.last_reply = outcome.reply[:2000]
        row.claim = ""
        row.lease_until = None
        if outcome.kind is OutcomeKind.DELIVERED:
            new_status = Status.DELIVERED
            recorded.delivered.append(row.pk)
            if not outcome.next_hop_dsn:
                relayed[row.message_id].append(row)
        elif outcome.kind is OutcomeKind.FAILED:
            new_status = Status.FAILED
            failed[row.message_id].append(row)
            recorded.failed.append(row.pk)
        else:
            retry_at = next_attempt(policy, attempts=row.attempts, created=row.created_at, now=now)
            if retry_at is None:
                new_status = Status.FAILED
                row.last_reply = f"gave up after {row.attempts} attempts; last: {row.last_reply}"[:2000]
                failed[row.message_id].append(row)
                recorded.failed.append(row.pk)
            else:
                new_status = Status.QUEUED
                row.next_attempt_at = retry_at
                recorded.deferred.append(row.pk)
                if delay_warning_due(policy, created=row.created_at, now=now, already_warned=row.delay_warned):
                    row.delay_warned = True
                    delayed[row.message_id].append(row)
        transition_check(row.status, new_status)
        row.status = new_status
    OutboundRecipient.objects.bulk_update(
        rows, ["status", "attempts", "last_attempt_at", "last_reply", "claim", "lease_until", "next_attempt_at", "delay_warned"]
    )
    for message_id, group in failed.items():
        recorded.dsn_sent += dsn_send(message=messages[message_id], recipients=group, action="failed", now=now)
    for message_id, group in delayed.items():
        recorded.dsn_sent += dsn_send(message=messages[message_id], recipients=group, action="delayed", now=now)
    for message_id, group in relayed.items():
        # NOTIFY=SUCCESS only (dsn_send checks): RFC 3461 §5.2.2, the last DSN-capable MTA reports "relayed".
        recorded.dsn_sent += dsn_send(message=messages[message_id], recipients=group, action="relayed", now=now)
    return recorded


@transaction.atomic
def recipients_retry_now(*, recipient_ids: Sequence[int], now: datetime | None = None) -> int:
    """Make queued recipients due at once (admin action); returns how many were."""
    now = now or timezone.now()
    count = OutboundRecipient.objects.filter(id__in=list(recipient_ids), status=Status.QUEUED).update(next_attempt_at=now)
    if count:
        from .submit import _wake_relay

        transaction.on_commit(_wake_relay)
    return count


@transaction.atomic
def recipients_cancel(*, recipient_ids: Sequence[int]) -> int:
    """Cancel queued recipients (admin action). A recipient being sent right now is left alone."""
    return OutboundRecipient.objects.filter(id__in=list(recipient_ids), status=Status.QUEUED).update(
        status=Status.CANCELLED, claim="", lease_until=None
    )


FINISHED_KEEP = timedelta(days=7)  # finished queue rows stay visible in the admin this long
MAX_PURGE_PER_RUN = 1000


@transaction.atomic
def outbound_purge(*, now: datetime | None = None, keep: timedelta = FINISHED_KEEP, limit: int = MAX_PURGE_PER_RUN) -> int:
    """Delete messages whose every recipient is finished and older than ``keep``; release their blobs."""
    from mailcore.store.blobs import blobs_release

    cutoff = (now or timezone.now()) - keep
    unfinished = OutboundRecipient.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).values("message_id")
    rows = list(
        OutboundMessage.objects.select_for_update(skip_locked=True)
        .filter(created_at__lt=cutoff)
        .exclude(recipients__last_attempt_at__gte=cutoff)
        .exclude(pk__in=unfinished)
        .values_list("id", "blob_id")[:limit]
    )
    if not rows:
        return 0
    refs: dict[int, int] = defaultdict(int)
    for _message_id, blob_id in rows:
        refs[blob_id] += 1
    OutboundMessage.objects.filter(id__in=[r[0] for r in rows]).delete()
    blobs_release(blob_refs=dict(refs))
    return len(rows)
