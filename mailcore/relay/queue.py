"""The outbound queue's state: claiming due recipients, recording outcomes, retry and cancel.

Rows live in PostgreSQL (``OutboundRecipient``), so Redis and workers can vanish without losing
or doubling mail. A claim moves due rows QUEUED → SENDING under a random token and a lease; the
worker records each outcome under that token, so a worker whose lease ran out and whose rows
were claimed again cannot overwrite the newer claim. Transitions (``TRANSITIONS``):

    queued  → sending (claim) | cancelled (admin)
    sending → delivered | failed | queued (deferred, with next_attempt_at; or lease expired, still due)

A worker starts a batch by exchanging the claim token for a fresh one that marks it taken
(:func:`claim_take`), which also starts the lease again: a task delivered twice (Celery
redelivers the task of a worker that died) finds nothing under the old token and sends nothing.
A taken claim whose lease expired means the worker vanished mid-batch (killed, crashed, lost its
database): the next claim counts an interruption on each such row (once per lease expiry); a
row already interrupted is then sent in a batch of its own message only, so one message that
crashes the worker every time cannot take the rest of its batch down with it, and after
``RELAY_MAX_INTERRUPTIONS`` it fails with ``554 5.3.0`` and a DSN instead of looping forever.
A claim whose task never started (a broker backlog) is not an interruption. Every expired
claim goes back to queued, still due.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from mailcore.models import OutboundMessage, OutboundRecipient

from .schedule import RetryPolicy, delay_warning_due, next_attempt

log = logging.getLogger("mailcore.relay.queue")

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
        .values_list("id", "domain", "message_id", "status", "interruptions", "claim")[:limit]
    )
    if not due:
        return []
    # Only a claim a worker took (claim_take) and then never answered for is an interruption.
    # A claim whose task never started (it waited in the broker past the lease: a backlog, the
    # workers down) says nothing about the message; counting it would fail good mail after a
    # few leases of backlog.
    expired = [row[0] for row in due if row[3] == Status.SENDING]
    interrupted = {row[0]: row[4] + 1 for row in due if row[3] == Status.SENDING and is_taken(row[5])}
    limit_reached: set[int] = set()
    if interrupted:
        OutboundRecipient.objects.filter(id__in=list(interrupted)).update(interruptions=F("interruptions") + 1)
        limit_reached = {pk for pk, count in interrupted.items() if count >= settings.RELAY_MAX_INTERRUPTIONS}
        if limit_reached:
            interrupted_fail(recipient_ids=sorted(limit_reached), now=now)
            due = [row for row in due if row[0] not in limit_reached]
    # The expired claims are over: back to queued (still due), so that a row this claim leaves
    # for later (its destination at its connection limit) is not counted again by the next one
    # (one lease expiry, one interruption), and a late task of the old claim finds nothing.
    OutboundRecipient.objects.filter(id__in=[pk for pk in expired if pk not in limit_reached]).update(
        status=Status.QUEUED, claim="", lease_until=None
    )
    # Per domain: the untroubled rows in shared batches, then one batch per message already interrupted.
    shared: dict[str, list[int]] = defaultdict(list)
    isolated: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for recipient_id, domain, message_id, _status, interruptions, _claim in due:
        if interruptions or recipient_id in interrupted:
            isolated[domain][message_id].append(recipient_id)
        else:
            shared[domain].append(recipient_id)
    domains = list(dict.fromkeys([*shared, *isolated]))
    busy = dict(
        OutboundRecipient.objects.filter(status=Status.SENDING, lease_until__gte=now, domain__in=domains)
        .values("domain")
        .annotate(connections=Count("claim", distinct=True))
        .values_list("domain", "connections")
    )
    batches: list[Batch] = []
    for domain in domains:
        ids = shared.get(domain, [])
        chunks = [ids[start : start + MAX_RECIPIENTS_PER_BATCH] for start in range(0, len(ids), MAX_RECIPIENTS_PER_BATCH)]
        chunks += list(isolated.get(domain, {}).values())
        slots = concurrency - busy.get(domain, 0)
        for chunk in chunks[: max(0, slots)]:
            token = uuid.uuid4().hex
            OutboundRecipient.objects.filter(id__in=chunk).update(
                status=Status.SENDING, claim=token, lease_until=lease_until
            )
            batches.append(Batch(domain=domain, claim=token, recipient_ids=chunk))
    return batches


def interrupted_fail(*, recipient_ids: Sequence[int], now: datetime) -> int:
    """Fail rows whose delivery was interrupted too often (554 5.3.0) and tell their senders.

    Runs inside the claim's transaction, on rows it holds locked.
    """
    from .dsn import dsn_send

    rows = list(OutboundRecipient.objects.select_related("message").filter(id__in=list(recipient_ids)).order_by("id"))
    by_message: dict[int, list[OutboundRecipient]] = defaultdict(list)
    for row in rows:
        transition_check(row.status, Status.FAILED)
        row.status = Status.FAILED
        row.claim = ""
        row.lease_until = None
        row.last_attempt_at = now
        row.last_reply = (
            f"554 5.3.0 delivery was interrupted {row.interruptions} times (the relay worker stopped while "
            f"sending this message each time); giving up. Last reply before that: {row.last_reply or 'none'}"
        )[:2000]
        by_message[row.message_id].append(row)
    OutboundRecipient.objects.bulk_update(rows, ["status", "claim", "lease_until", "last_attempt_at", "last_reply"])
    for message_id, group in by_message.items():
        log.error("outbound message %s: delivery to %s interrupted %d times; failed permanently (554 5.3.0)",
                  message_id, ", ".join(r.address for r in group), max(r.interruptions for r in group))
        dsn_send(message=group[0].message, recipients=group, action="failed", now=now)
    return len(rows)


TAKEN_PREFIX = "w"  # never a hex digit: a claim that starts with it was taken by a worker


def is_taken(claim: str) -> bool:
    """Whether a worker started on this claim (:func:`claim_take`), rather than only the dispatch."""
    return claim.startswith(TAKEN_PREFIX)


def claim_take(*, recipient_ids: Sequence[int], claim: str) -> str | None:
    """Start working on a batch: exchange its token for a fresh one; None if it is no longer ours.

    Makes every claim good for one execution: a second run of the same task (redelivered by the
    broker after its worker died, or after a visibility timeout) finds nothing to send.

    The lease starts again here: a task that waited in the broker longer than the lease would
    otherwise send under an expired one, and the next claim would hand the same recipients to
    a second worker before the first renewal (a third of a lease later): sent twice.
    """
    token = TAKEN_PREFIX + uuid.uuid4().hex[len(TAKEN_PREFIX):]
    lease_until = timezone.now() + timedelta(seconds=settings.RELAY_LEASE_SECONDS)
    taken = OutboundRecipient.objects.filter(id__in=list(recipient_ids), claim=claim, status=Status.SENDING).update(
        claim=token, lease_until=lease_until
    )
    return token if taken else None


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
