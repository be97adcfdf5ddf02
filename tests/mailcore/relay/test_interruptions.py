"""A message that makes its worker vanish every time: counted, isolated, and failed with 554 5.3.0.

Real worker processes are killed by PID with SIGKILL; elsewhere a claimed batch whose worker
"died" is simply never delivered and the clock is moved past its lease.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from mailcore.models import Account, OutboundRecipient
from mailcore.relay import worker
from mailcore.relay.queue import Batch, claim_take, recipients_claim
from mailcore.relay.submit import message_submit
from tests.conftest import make_message

from .conftest import REMOTE
from .servers import SmtpSink
from .test_dsn import inbox_reports, parts_of
from .test_faults import ROOT, WAIT_LIMIT, child_env, subjects

Status = OutboundRecipient.Status
CAROL = f"carol@{REMOTE}"
DAVE = f"dave@{REMOTE}"
ERIN = f"erin@{REMOTE}"

pytestmark = pytest.mark.django_db(transaction=True)


def lease_later(now: datetime) -> datetime:
    return now + timedelta(seconds=django_settings.RELAY_LEASE_SECONDS + 1)


def submit(subject: str, to: str) -> None:
    message_submit(raw=make_message(subject=subject, sender="alice@a.test", to=to), mail_from="alice@a.test",
                   recipients=[to])


def started(batch: Batch) -> None:
    """A worker took the batch (as batch_deliver does first) and then died."""
    assert claim_take(recipient_ids=batch.recipient_ids, claim=batch.claim) is not None


def kill_worker_inside(batch_ids: list[int], claim: str, sink: SmtpSink) -> None:
    """Run the batch in a real worker process and SIGKILL it while the sink holds a RCPT."""
    code = f"from mailcore.relay import worker; worker.batch_deliver(recipient_ids={batch_ids!r}, claim={claim!r})"
    env = child_env(RELAY_TRANSPORTS=f"{REMOTE}=127.0.0.1:{sink.port}")
    held = sink.holding
    child = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT_LIMIT * 3
        while sink.holding == held and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert sink.holding == held + 1, "the worker never reached the held recipient"
    finally:
        child.kill()
        child.wait(10)


def test_a_killed_worker_counts_one_interruption_and_its_batch_comes_back_split_per_message(
        alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.hold_rcpt.add(DAVE)
    sink.behaviour.hold_seconds = WAIT_LIMIT * 3
    submit("first", CAROL)
    submit("poison", DAVE)
    submit("third", ERIN)
    [batch] = recipients_claim()
    kill_worker_inside(batch.recipient_ids, batch.claim, sink)
    rows = {r.address: r for r in OutboundRecipient.objects.all()}
    assert rows[CAROL].status == Status.DELIVERED
    assert rows[DAVE].status == rows[ERIN].status == Status.SENDING
    assert all(r.interruptions == 0 for r in rows.values())
    # The broker hands the same task to another worker: the claim was used, nothing is sent twice.
    assert worker.batch_deliver(recipient_ids=batch.recipient_ids, claim=batch.claim).messages == 0
    sink.behaviour.hold_rcpt.clear()
    assert recipients_claim() == []  # still within the dead worker's lease
    again = recipients_claim(now=lease_later(timezone.now()))
    assert sorted(b.recipient_ids for b in again) == sorted([[rows[DAVE].pk], [rows[ERIN].pk]])
    assert dict(OutboundRecipient.objects.filter(status=Status.SENDING).values_list("address", "interruptions")) == {
        DAVE: 1, ERIN: 1}
    for b in again:
        worker.batch_deliver(recipient_ids=b.recipient_ids, claim=b.claim)
    assert subjects(sink) == Counter({"first": 1, "poison": 1, "third": 1})
    assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_a_recipient_interrupted_too_often_fails_with_554_and_a_dsn(
        alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_MAX_INTERRUPTIONS = 3  # type: ignore[attr-defined]
    submit("crashes the worker", CAROL)
    submit("fine", DAVE)
    now = timezone.now()
    poison, fine = OutboundRecipient.objects.get(address=CAROL), OutboundRecipient.objects.get(address=DAVE)
    [batch] = recipients_claim(now=now)
    started(batch)  # its worker dies before recording anything
    assert batch.recipient_ids == [poison.pk, fine.pk]
    now = lease_later(now)
    first, second = recipients_claim(now=now)  # interruption 1 for both: one batch per message
    assert (first.recipient_ids, second.recipient_ids) == ([poison.pk], [fine.pk])
    worker.batch_deliver(recipient_ids=second.recipient_ids, claim=second.claim)
    started(first)  # first's worker dies again
    now = lease_later(now)
    [third] = recipients_claim(now=now)  # interruption 2
    assert third.recipient_ids == [poison.pk]
    started(third)
    poison.refresh_from_db()
    assert (poison.status, poison.interruptions) == (Status.SENDING, 2)
    assert recipients_claim(now=lease_later(now)) == []  # the third interruption is the last
    poison.refresh_from_db()
    assert poison.status == Status.FAILED and poison.interruptions == 3
    assert poison.last_reply.startswith("554 5.3.0 delivery was interrupted 3 times")
    assert poison.claim == "" and poison.lease_until is None
    [report] = inbox_reports(alice, "Undelivered")
    status = parts_of(report)[1].as_string()
    assert "Final-Recipient: rfc822; carol@remote.test" in status
    assert "Status: 5.3.0" in status
    assert "Action: failed" in status
    assert subjects(sink) == Counter({"fine": 1})
    assert OutboundRecipient.objects.get(address=DAVE).status == Status.DELIVERED
    assert recipients_claim(now=lease_later(lease_later(now))) == []  # and nothing loops any more


def test_a_null_sender_message_interrupted_too_often_fails_without_a_report(
        alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_MAX_INTERRUPTIONS = 1  # type: ignore[attr-defined]
    message_submit(raw=make_message(subject="a bounce", to=CAROL), mail_from="", recipients=[CAROL])
    now = timezone.now()
    [batch] = recipients_claim(now=now)
    started(batch)
    assert recipients_claim(now=lease_later(now)) == []
    assert OutboundRecipient.objects.get().status == Status.FAILED
    assert inbox_reports(alice, "Undelivered") == []


def test_deferrals_do_not_count_as_interruptions(alice: Account, sink: SmtpSink,
                                                 settings: pytest.FixtureRequest) -> None:
    settings.RELAY_MAX_INTERRUPTIONS = 1  # type: ignore[attr-defined]
    sink.behaviour.rcpt_replies[CAROL] = "451 4.3.0 try later"
    submit("deferred", CAROL)
    for b in recipients_claim():
        worker.batch_deliver(recipient_ids=b.recipient_ids, claim=b.claim)
    row = OutboundRecipient.objects.get()
    assert (row.status, row.interruptions, row.attempts) == (Status.QUEUED, 0, 1)


def test_an_interrupted_recipient_waiting_for_a_busy_destination_is_not_counted_again_each_claim(
        alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    # One lease expiry is one interruption. A dispatch tick that finds the destination at its
    # connection limit leaves the row for later; it must not count it again, or a busy
    # destination turns one crash into a permanent 554 failure without a single retry.
    settings.RELAY_MAX_INTERRUPTIONS = 3  # type: ignore[attr-defined]
    settings.RELAY_CONCURRENCY_PER_DESTINATION = 1  # type: ignore[attr-defined]
    submit("interrupted once", CAROL)
    now = timezone.now()
    [dead] = recipients_claim(now=now)
    started(dead)  # its worker dies before recording anything
    now = lease_later(now)
    submit("keeps the destination busy", DAVE)
    OutboundRecipient.objects.filter(address=DAVE).update(next_attempt_at=now - timedelta(seconds=1))
    batches = recipients_claim(now=now)  # one connection allowed: one of the two gets it
    assert len(batches) == 1
    for tick in range(1, 6):
        assert recipients_claim(now=now + timedelta(seconds=tick)) == []  # the live batch holds the slot
    carol = OutboundRecipient.objects.get(address=CAROL)
    assert carol.status != Status.FAILED
    assert carol.interruptions == 1
    assert dead.recipient_ids == [carol.pk]


def test_a_batch_started_after_its_lease_ran_out_is_not_claimed_again_while_it_sends(
        alice: Account, sink: SmtpSink) -> None:
    # The task waited in the broker (a backlog, a worker restart) longer than the lease. The
    # worker that finally runs it takes the claim and sends; until it records the outcome, no
    # other claim may hand the same recipients to a second worker: that would send twice.
    sink.behaviour.hold_rcpt.add(CAROL)
    sink.behaviour.hold_seconds = 3
    submit("late start", CAROL)
    [batch] = recipients_claim()
    OutboundRecipient.objects.update(lease_until=timezone.now() - timedelta(seconds=1))

    def late_worker() -> None:
        try:
            worker.batch_deliver(recipient_ids=batch.recipient_ids, claim=batch.claim)
        finally:
            connection.close()

    thread = threading.Thread(target=late_worker)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while sink.holding == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.holding == 1, "the late worker never reached the remote server"
        assert recipients_claim() == []  # it is being sent right now
    finally:
        thread.join(WAIT_LIMIT)


def test_claims_whose_task_never_started_are_not_interruptions(
        alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    # The broker is backlogged (or the workers are down) for several leases: each dispatch
    # claims the rows again and queues another task. No worker ever started on them, so no
    # worker died on them: the message must not fail as "interrupted".
    settings.RELAY_MAX_INTERRUPTIONS = 2  # type: ignore[attr-defined]
    submit("waits in a backlog", CAROL)
    now = timezone.now()
    stale = [recipients_claim(now=now)]
    for _ in range(4):
        now = lease_later(now)
        stale.append(recipients_claim(now=now))
    row = OutboundRecipient.objects.get()
    assert (row.status, row.interruptions) == (Status.SENDING, 0)
    [latest] = stale.pop()
    assert worker.batch_deliver(recipient_ids=latest.recipient_ids, claim=latest.claim).messages == 1
    for [old] in stale:  # the backlog drains: the old tasks find nothing to send
        assert worker.batch_deliver(recipient_ids=old.recipient_ids, claim=old.claim).messages == 0
    assert subjects(sink) == Counter({"waits in a backlog": 1})
    assert OutboundRecipient.objects.get().status == Status.DELIVERED
