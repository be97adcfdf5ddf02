"""Faults: a worker killed mid-delivery, Redis flushed with mail queued, two claimers at once.

The rows in PostgreSQL are the truth; the receiving server counts what arrives.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from mailcore.models import Account, OutboundRecipient
from mailcore.relay import worker
from mailcore.relay.queue import recipients_claim
from mailcore.relay.submit import message_submit
from tests.conftest import make_message

from .conftest import REMOTE, relay_run
from .servers import SmtpSink

Status = OutboundRecipient.Status
CAROL = f"carol@{REMOTE}"
DAVE = f"dave@{REMOTE}"
ROOT = Path(__file__).resolve().parents[3]
WAIT_LIMIT = 20.0


def subjects(sink: SmtpSink) -> Counter[str]:
    out: Counter[str] = Counter()
    for r in sink.received:
        for line in r.data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                out[line[9:].decode()] += 1
    return out


def after_lease() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=django_settings.RELAY_LEASE_SECONDS + 1)


def child_env(**extra: str) -> dict[str, str]:
    name = connection.settings_dict["NAME"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    env.update(extra)
    return env


@pytest.mark.django_db(transaction=True)
def test_abandoned_claim_is_delivered_exactly_once_after_the_lease_expires(alice: Account, sink: SmtpSink) -> None:
    message_submit(raw=make_message(subject="once", sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
    [abandoned] = recipients_claim()  # this worker dies before doing anything
    assert recipients_claim() == []  # the lease protects the rows meanwhile
    [again] = recipients_claim(now=after_lease())
    assert again.recipient_ids == abandoned.recipient_ids and again.claim != abandoned.claim
    worker.batch_deliver(recipient_ids=again.recipient_ids, claim=again.claim)
    # The first worker comes back to life late: its claim is no longer valid, it sends nothing.
    stats = worker.batch_deliver(recipient_ids=abandoned.recipient_ids, claim=abandoned.claim)
    assert stats.messages == 0
    assert subjects(sink) == Counter({"once": 1})
    assert OutboundRecipient.objects.get().status == Status.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_worker_process_killed_mid_batch_loses_nothing_and_doubles_nothing(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.hold_rcpt.add(DAVE)
    sink.behaviour.hold_seconds = WAIT_LIMIT
    message_submit(raw=make_message(subject="first", sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
    message_submit(raw=make_message(subject="second", sender="alice@a.test", to=DAVE), mail_from="alice@a.test", recipients=[DAVE])
    [batch] = recipients_claim()
    code = (
        "from mailcore.relay import worker; "
        f"worker.batch_deliver(recipient_ids={batch.recipient_ids!r}, claim={batch.claim!r})"
    )
    env = child_env(RELAY_TRANSPORTS=f"{REMOTE}=127.0.0.1:{sink.port}")
    child = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while sink.holding == 0 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert sink.holding == 1, "the worker never reached the second message"
    finally:
        child.kill()  # SIGKILL, by PID: no cleanup runs in the worker
        child.wait(10)
    statuses = dict(OutboundRecipient.objects.values_list("address", "status"))
    assert statuses == {CAROL: Status.DELIVERED, DAVE: Status.SENDING}
    sink.behaviour.hold_rcpt.clear()
    assert recipients_claim() == []  # still leased to the dead worker
    for again in recipients_claim(now=after_lease()):
        assert again.recipient_ids == [OutboundRecipient.objects.get(address=DAVE).pk]
        worker.batch_deliver(recipient_ids=again.recipient_ids, claim=again.claim)
    assert subjects(sink) == Counter({"first": 1, "second": 1})
    assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {Status.DELIVERED}


@pytest.mark.django_db(transaction=True)
def test_flushing_redis_while_mail_is_queued_loses_nothing(alice: Account, sink: SmtpSink) -> None:
    for n in range(3):
        message_submit(raw=make_message(subject=f"q{n}", sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        assert client.llen("celery") >= 1  # the kicks the submissions sent after commit
        client.flushdb()
        assert client.llen("celery") == 0
    finally:
        client.close()
    relay_run()  # the next beat finds the rows in PostgreSQL
    assert subjects(sink) == Counter({"q0": 1, "q1": 1, "q2": 1})


@pytest.mark.django_db(transaction=True)
def test_two_claimers_at_once_deliver_nothing_twice(alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    other = "other.test"
    with SmtpSink() as second_sink:
        settings.RELAY_TRANSPORTS = {REMOTE: ("127.0.0.1", sink.port), other: ("127.0.0.1", second_sink.port)}  # type: ignore[attr-defined]
        settings.RELAY_CONCURRENCY_PER_DESTINATION = 4  # type: ignore[attr-defined]
        expected: Counter[str] = Counter()
        for n in range(30):
            to = [CAROL] if n % 3 else [CAROL, f"fred@{other}"]
            message_submit(raw=make_message(subject=f"c{n}", sender="alice@a.test", to=", ".join(to)),
                           mail_from="alice@a.test", recipients=to)
            expected[f"c{n}"] += len(to)
        claimed: list[list[int]] = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def claimer() -> None:
            try:
                start.wait(5)
                for _ in range(50):
                    batches = recipients_claim(limit=7)
                    if not batches and not OutboundRecipient.objects.filter(status=Status.QUEUED).exists():
                        break
                    for b in batches:
                        claimed.append(b.recipient_ids)
                        worker.batch_deliver(recipient_ids=b.recipient_ids, claim=b.claim)
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=claimer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        all_ids = [i for ids in claimed for i in ids]
        assert len(all_ids) == len(set(all_ids)) == sum(expected.values())
        received = subjects(sink) + subjects(second_sink)
        assert received == expected
        assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {Status.DELIVERED}


CLAIM_LOOP = """
import os, pathlib, time
from mailcore.models import OutboundRecipient
from mailcore.relay import worker
from mailcore.relay.queue import recipients_claim
pathlib.Path(os.environ["READY_FILE"]).touch()
go = pathlib.Path(os.environ["GO_FILE"])
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
for _ in range(200):
    batches = recipients_claim(limit=3)
    for b in batches:
        print("claimed", ",".join(map(str, b.recipient_ids)), flush=True)
        worker.batch_deliver(recipient_ids=b.recipient_ids, claim=b.claim)
    if not batches:
        if not OutboundRecipient.objects.filter(status__in=["queued", "sending"]).exists():
            break
        time.sleep(0.01)
"""


@pytest.mark.django_db(transaction=True)
def test_two_dispatcher_processes_deliver_nothing_twice(
    alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings.RELAY_CONCURRENCY_PER_DESTINATION = 4  # type: ignore[attr-defined]
    for n in range(24):
        message_submit(raw=make_message(subject=f"p{n}", sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
    env = child_env(RELAY_TRANSPORTS=f"{REMOTE}=127.0.0.1:{sink.port}", RELAY_CONCURRENCY_PER_DESTINATION="4",
                    GO_FILE=str(tmp_path / "go"))
    children = [
        subprocess.Popen([sys.executable, "manage.py", "shell", "-c", CLAIM_LOOP], cwd=ROOT,
                         env={**env, "READY_FILE": str(tmp_path / f"ready{n}")}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(2)
    ]
    deadline = time.monotonic() + WAIT_LIMIT
    while not all((tmp_path / f"ready{n}").exists() for n in range(2)) and time.monotonic() < deadline:
        time.sleep(0.02)
    (tmp_path / "go").touch()  # both start claiming at the same moment
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()[-2000:]
        outputs.append(out.decode())
    claimed = [int(i) for text in outputs for line in text.splitlines() if line.startswith("claimed ") for i in line[8:].split(",")]
    assert sorted(claimed) == sorted(OutboundRecipient.objects.values_list("id", flat=True))
    assert all("claimed" in text for text in outputs), "one process did all the work; the race was not exercised"
    assert subjects(sink) == Counter({f"p{n}": 1 for n in range(24)})


@pytest.mark.django_db(transaction=True)
def test_a_live_worker_keeps_its_lease_while_a_slow_server_makes_it_wait(
    alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest
) -> None:
    settings.RELAY_LEASE_SECONDS = 1  # type: ignore[attr-defined]
    sink.behaviour.hold_rcpt.add(DAVE)
    sink.behaviour.hold_seconds = 3.0
    message_submit(raw=make_message(subject="slow", sender="alice@a.test", to=DAVE), mail_from="alice@a.test", recipients=[DAVE])
    [batch] = recipients_claim()
    done = threading.Event()

    def work() -> None:
        try:
            worker.batch_deliver(recipient_ids=batch.recipient_ids, claim=batch.claim)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=work)
    thread.start()
    stolen = []
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline and not done.is_set():
        stolen += recipients_claim()  # a second dispatcher, well past the first 1 s lease
        time.sleep(0.2)
    thread.join(WAIT_LIMIT)
    assert stolen == []
    row = OutboundRecipient.objects.get()
    assert row.status == Status.QUEUED and "held too long" in row.last_reply
