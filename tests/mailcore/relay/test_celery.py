"""The relay on a real Celery worker process against Redis (this suite's Redis db)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings

from mailcore.models import Account, OutboundRecipient
from mailcore.relay.submit import message_submit
from mailcore.relay.tasks import queue_dispatch
from tests.conftest import make_message

from .conftest import REMOTE
from .servers import SmtpSink
from .test_faults import child_env, subjects

ROOT = Path(__file__).resolve().parents[3]
WAIT_LIMIT = 30.0
CAROL = f"carol@{REMOTE}"


def wait_for(predicate: object, limit: float = WAIT_LIMIT) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_beat_schedule_dispatches_the_queue() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["relay-dispatch"]
    assert entry["task"] == "mailcore.relay.tasks.queue_dispatch"
    assert float(entry["schedule"]) <= 60  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_celery_worker_relays_after_redis_was_flushed_and_on_a_kick(alice: Account, sink: SmtpSink, tmp_path: Path) -> None:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    message_submit(raw=make_message(subject="before", sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
    client.flushdb()  # Redis loses the kick (and anything else) while no worker runs
    client.close()
    assert OutboundRecipient.objects.get().status == OutboundRecipient.Status.QUEUED
    env = child_env(RELAY_TRANSPORTS=f"{REMOTE}=127.0.0.1:{sink.port}", VAR_DIR=str(tmp_path))
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webmail", "worker", "-P", "solo", "--without-heartbeat",
         "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        queue_dispatch.delay()  # what beat sends every 15 s
        assert wait_for(lambda: len(sink.received) == 1), (tmp_path / "worker.log").read_text()[-3000:]
        message_submit(raw=make_message(subject="after", sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
        assert wait_for(lambda: len(sink.received) == 2), (tmp_path / "worker.log").read_text()[-3000:]
        assert wait_for(lambda: not OutboundRecipient.objects.exclude(status=OutboundRecipient.Status.DELIVERED).exists())
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
        log.close()
    assert subjects(sink) == {"before": 1, "after": 1}
