"""Queue services: claims per destination, concurrency limit, transitions, retry now, cancel."""

from __future__ import annotations

import pytest

from mailcore.models import Account, OutboundRecipient
from mailcore.relay.queue import (
    MAX_RECIPIENTS_PER_BATCH,
    Outcome,
    OutcomeKind,
    outcomes_record,
    recipients_cancel,
    recipients_claim,
    recipients_retry_now,
    transition_check,
)
from mailcore.relay.submit import message_submit
from tests.conftest import make_message

Status = OutboundRecipient.Status


def queue(recipients: list[str]) -> None:
    message_submit(raw=make_message(sender="alice@a.test"), mail_from="alice@a.test", recipients=recipients)


def test_claim_groups_due_recipients_by_destination_domain(alice: Account) -> None:
    queue(["a@one.test", "b@one.test", "c@two.test"])
    queue(["d@one.test"])
    batches = recipients_claim()
    assert sorted((b.domain, len(b.recipient_ids)) for b in batches) == [("one.test", 3), ("two.test", 1)]
    assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {Status.SENDING}
    assert all(r.lease_until is not None and r.claim for r in OutboundRecipient.objects.all())


def test_concurrency_limit_counts_connections_already_open_to_a_destination(alice: Account, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_CONCURRENCY_PER_DESTINATION = 1  # type: ignore[attr-defined]
    queue(["a@one.test"])
    assert len(recipients_claim()) == 1
    queue(["b@one.test", "c@two.test"])
    assert [b.domain for b in recipients_claim()] == ["two.test"]  # one.test is busy
    assert OutboundRecipient.objects.get(address="b@one.test").status == Status.QUEUED


def test_a_large_backlog_is_split_into_batches_up_to_the_concurrency_limit(alice: Account, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_CONCURRENCY_PER_DESTINATION = 2  # type: ignore[attr-defined]
    queue([f"r{n}@big.test" for n in range(MAX_RECIPIENTS_PER_BATCH * 2 + 5)])
    batches = recipients_claim()
    assert [len(b.recipient_ids) for b in batches] == [MAX_RECIPIENTS_PER_BATCH, MAX_RECIPIENTS_PER_BATCH]
    assert OutboundRecipient.objects.filter(status=Status.QUEUED).count() == 5


def test_outcomes_under_a_stale_claim_are_ignored(alice: Account) -> None:
    queue(["a@one.test"])
    [batch] = recipients_claim()
    recorded = outcomes_record(claim="not-the-claim", outcomes=[Outcome(batch.recipient_ids[0], OutcomeKind.DELIVERED, "250 ok")])
    assert recorded.stale == batch.recipient_ids
    assert OutboundRecipient.objects.get().status == Status.SENDING


def test_retry_now_makes_a_deferred_recipient_due(alice: Account) -> None:
    queue(["a@one.test"])
    [batch] = recipients_claim()
    outcomes_record(claim=batch.claim, outcomes=[Outcome(batch.recipient_ids[0], OutcomeKind.DEFERRED, "451 later")])
    assert recipients_claim() == []
    assert recipients_retry_now(recipient_ids=batch.recipient_ids) == 1
    assert len(recipients_claim()) == 1


def test_cancel_stops_a_queued_recipient_but_not_one_being_sent(alice: Account) -> None:
    queue(["a@one.test"])
    sending = recipients_claim()[0].recipient_ids
    queue(["b@two.test"])
    queued = list(OutboundRecipient.objects.filter(status=Status.QUEUED).values_list("id", flat=True))
    assert len(queued) == 1
    assert recipients_cancel(recipient_ids=sending + queued) == 1
    assert OutboundRecipient.objects.get(pk=queued[0]).status == Status.CANCELLED
    assert OutboundRecipient.objects.get(pk=sending[0]).status == Status.SENDING
    assert recipients_claim() == []


def test_final_states_have_no_way_out() -> None:
    for final in (Status.DELIVERED, Status.FAILED, Status.CANCELLED):
        with pytest.raises(ValueError):
            transition_check(final, Status.QUEUED)
    transition_check(Status.SENDING, Status.QUEUED)


def test_purge_drops_finished_messages_after_the_keep_time_and_releases_their_blobs(alice: Account) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from mailcore.models import Blob, OutboundMessage
    from mailcore.relay.queue import FINISHED_KEEP, outbound_purge

    queue(["a@one.test"])  # will be delivered
    queue(["b@two.test"])  # stays queued
    batches = {b.domain: b for b in recipients_claim()}
    done = batches["one.test"]
    outcomes_record(claim=done.claim, outcomes=[Outcome(done.recipient_ids[0], OutcomeKind.DELIVERED, "250 ok")])
    OutboundRecipient.objects.filter(domain="two.test").update(status=Status.QUEUED, claim="")
    later = timezone.now() + FINISHED_KEEP + timedelta(hours=1)
    assert outbound_purge(now=timezone.now()) == 0  # too recent
    delivered_blob = OutboundMessage.objects.get(recipients__domain="one.test").blob_id
    assert outbound_purge(now=later) == 1
    assert list(OutboundRecipient.objects.values_list("domain", flat=True)) == ["two.test"]
    assert not Blob.objects.filter(pk=delivered_blob).exists()  # its only reference was the queue row
    assert Blob.objects.filter(pk=OutboundMessage.objects.get().blob_id).exists()
