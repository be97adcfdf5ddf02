"""The seed's scenario with b.test's MX played by a recording SMTP server on 127.0.0.1.

Alice on a.test sends to bob@b.test; a.test's relay connects to b.test's MX (transport map) and
hands it over; with b.test down the message waits in the queue and the next scheduled retry
delivers it once b.test is back. NOTE: the two-instance version (two databases, two `runmail`
processes, submission with STARTTLS and AUTH) needs mailcore.smtp, which is not on this branch.
"""

from __future__ import annotations

import time

import pytest

from mailcore.models import Account, OutboundRecipient
from mailcore.relay.submit import message_submit
from tests.conftest import make_message

from .conftest import relay_run
from .servers import SmtpSink

Status = OutboundRecipient.Status
BOB = "bob@b.test"  # not a domain of this instance: b.test is the other system


@pytest.mark.django_db(transaction=True)
def test_alice_mails_bob_on_the_other_system_and_a_retry_delivers_after_an_outage(
    alice: Account, settings: pytest.FixtureRequest
) -> None:
    settings.RELAY_RETRY_FIRST = 1  # type: ignore[attr-defined]
    with SmtpSink() as b_test_mx:
        port = b_test_mx.port
        settings.RELAY_TRANSPORTS = {"b.test": ("127.0.0.1", port)}  # type: ignore[attr-defined]
        result = message_submit(raw=make_message(subject="first", sender="alice@a.test", to=BOB), mail_from="alice@a.test", recipients=[BOB])
        assert result.delivery is None and len(result.queued) == 1  # remote: the queue, not the store
        relay_run()
        assert [r.rcpt_tos for r in b_test_mx.received] == [[BOB]]

    # b.test is down now.
    message_submit(raw=make_message(subject="second", sender="alice@a.test", to=BOB), mail_from="alice@a.test", recipients=[BOB])
    relay_run()
    waiting = OutboundRecipient.objects.get(status=Status.QUEUED)
    assert waiting.attempts == 1 and "connection failed" in waiting.last_reply
    assert relay_run().messages == 0  # not due before its next attempt

    with SmtpSink() as b_test_back:
        settings.RELAY_TRANSPORTS = {"b.test": ("127.0.0.1", b_test_back.port)}  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not b_test_back.received and time.monotonic() < deadline:
            time.sleep(0.2)  # the schedule (first retry after 1 s here) decides, not the test
            relay_run()
        assert len(b_test_back.received) == 1
        assert b"Subject: second" in b_test_back.received[0].data
    waiting.refresh_from_db()
    assert waiting.status == Status.DELIVERED and waiting.attempts == 2
