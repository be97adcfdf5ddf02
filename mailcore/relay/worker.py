"""The worker's one service: deliver a claimed batch (one destination, one connection)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection

from mailcore.models import Blob, Domain, OutboundRecipient

from .client import DeliveryStats, Envelope, RecipientItem, destination_deliver
from .dkim import header_from_domain, message_dkim_sign, signing_domain
from .encoding import body_to_7bit, crlf_normalize, has_8bit
from .queue import Outcome, OutcomeKind, claim_take, lease_renew, outcomes_record
from .routing import RouteError, route_resolve

log = logging.getLogger("mailcore.relay.worker")

# A live worker pushes its lease out every third of it, so the lease never lapses while the
# worker is alive (however slow the remote server), and a dead worker's rows come back within one lease.
LEASE_RENEW_FRACTION = 3


class LeaseKeeper(threading.Thread):
    """Renews a batch's lease in the background until stopped; dies with the worker process."""

    def __init__(self, claim: str, interval: float) -> None:
        super().__init__(name=f"lease-{claim[:8]}", daemon=True)
        self.claim = claim
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    lease_renew(claim=self.claim)
                except DatabaseError:
                    log.exception("renewing the lease of %s failed; retrying", self.claim)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(LEASE_KEEPER_JOIN_TIMEOUT)


LEASE_KEEPER_JOIN_TIMEOUT = 10.0


def batch_envelopes(*, recipient_ids: Sequence[int], claim: str) -> list[Envelope]:
    """The claimed rows that are still ours, grouped into one envelope per message.

    The bytes are not loaded here: a batch may hold hundreds of large messages, so ``Preparer``
    reads each blob just before it is sent.
    """
    rows = (
        OutboundRecipient.objects.filter(id__in=list(recipient_ids), claim=claim, status=OutboundRecipient.Status.SENDING)
        .select_related("message")
        .order_by("message_id", "id")
    )
    envelopes: dict[int, Envelope] = {}
    for row in rows:
        envelope = envelopes.get(row.message_id)
        if envelope is None:
            m = row.message
            envelope = envelopes[row.message_id] = Envelope(
                message_id=m.pk, mail_from=m.mail_from, raw=b"", blob_id=m.blob_id, recipients=[],
                smtputf8=m.smtputf8, dsn_ret=m.dsn_ret, dsn_envid=m.dsn_envid,
            )
        envelope.recipients.append(RecipientItem(row.pk, row.address, row.notify, row.orcpt))
    return list(envelopes.values())


@dataclass
class Preparer:
    """Load the blob, convert 8-bit bodies when the server needs it, then DKIM-sign."""

    domains: dict[tuple[str, str], Domain | None]

    def __call__(self, envelope: Envelope, eight_bit_ok: bool) -> bytes:
        data = envelope.raw or bytes(Blob.objects.values_list("data", flat=True).get(pk=envelope.blob_id))
        raw = crlf_normalize(data)
        if not eight_bit_ok and has_8bit(raw):
            raw = body_to_7bit(raw)
        signed = raw
        domain_key = (header_from_domain(raw), envelope.mail_from.rpartition("@")[2].lower())
        if domain_key not in self.domains:
            self.domains[domain_key] = signing_domain(raw, envelope.mail_from)
        domain = self.domains[domain_key]
        if domain is not None:
            try:
                signed = message_dkim_sign(raw, domain)
            except Exception:  # a broken key must not stop the mail; it goes out unsigned
                log.exception("DKIM signing for %s failed", domain.name)
        return signed


def batch_deliver(*, recipient_ids: Sequence[int], claim: str, reuse: bool = True) -> DeliveryStats:
    """Deliver a claimed batch and record every outcome under its claim."""
    stats = DeliveryStats()
    token = claim_take(recipient_ids=recipient_ids, claim=claim)
    if token is None:
        return stats  # delivered, or taken over after the lease ran out, or this task ran already
    claim = token
    envelopes = batch_envelopes(recipient_ids=recipient_ids, claim=claim)
    if not envelopes:
        return stats
    domain = envelopes[0].recipients[0].address.rpartition("@")[2].lower()

    def record(outcomes: list[Outcome]) -> None:
        outcomes_record(claim=claim, outcomes=outcomes)

    try:
        route = route_resolve(domain)
    except RouteError as exc:
        kind = OutcomeKind.FAILED if exc.permanent else OutcomeKind.DEFERRED
        outcomes = [Outcome(r.recipient_id, kind, exc.reply) for e in envelopes for r in e.recipients]
        record(outcomes)
        stats.outcomes = outcomes
        return stats
    keeper = LeaseKeeper(claim, settings.RELAY_LEASE_SECONDS / LEASE_RENEW_FRACTION)
    keeper.start()
    try:
        stats = destination_deliver(route, envelopes, prepare=Preparer({}), record=record, reuse=reuse)
    finally:
        keeper.stop()
    log.info("relay %s: %d messages over %d connections", domain, stats.messages, stats.connections)
    return stats
