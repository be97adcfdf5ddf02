"""Fixtures for the relay: remote destinations are servers on 127.0.0.1 that the tests start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailcore.relay import worker
from mailcore.relay.client import DeliveryStats
from mailcore.relay.queue import recipients_claim

from .servers import SinkBehaviour, SmtpSink

REMOTE = "remote.test"


@pytest.fixture
def sink(settings: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    with SmtpSink(SinkBehaviour()) as server:
        settings.RELAY_TRANSPORTS = {REMOTE: ("127.0.0.1", server.port)}  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST = ""  # type: ignore[attr-defined]
        yield server


def relay_run() -> DeliveryStats:
    """One beat's worth of work, with the task bodies called directly (no broker)."""
    total = DeliveryStats()
    for batch in recipients_claim():
        stats = worker.batch_deliver(recipient_ids=batch.recipient_ids, claim=batch.claim)
        total.connections += stats.connections
        total.messages += stats.messages
        total.outcomes += stats.outcomes
    return total
