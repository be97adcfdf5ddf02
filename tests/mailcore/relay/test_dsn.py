"""Bounces and delay warnings: RFC 3464 reports, once, never to a null sender or for a bounce."""

from __future__ import annotations

import email
from datetime import timedelta
from email.message import Message as EmailMessage
from email.policy import compat32

import pytest
from django.utils import timezone

from mailcore.models import Account, Message, OutboundMessage, OutboundRecipient
from mailcore.relay.queue import recipients_retry_now
from mailcore.relay.submit import message_submit
from tests.conftest import make_message

from .conftest import REMOTE, relay_run
from .servers import SmtpSink

Status = OutboundRecipient.Status
CAROL = f"carol@{REMOTE}"
DAVE = f"dave@{REMOTE}"


def inbox_reports(account: Account, prefix: str) -> list[EmailMessage]:
    rows = Message.objects.filter(account=account, subject__startswith=prefix).select_related("blob")
    return [email.message_from_bytes(bytes(m.blob.data), policy=compat32) for m in rows]


def age_queue(seconds: float) -> None:
    """Pretend the queued recipients were queued ``seconds`` ago (the schedule counts from then)."""
    OutboundRecipient.objects.update(created_at=timezone.now() - timedelta(seconds=seconds))


def parts_of(report: EmailMessage) -> list[EmailMessage]:
    payload = report.get_payload()
    assert isinstance(payload, list)
    return payload


def test_5xx_produces_one_rfc3464_report_with_the_original_headers(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 <carol@remote.test>: no such user"
    raw = make_message(subject="Quarterly numbers", sender="alice@a.test", to=CAROL, body="secret body\r\n")
    message_submit(raw=raw, mail_from="alice@a.test", recipients=[CAROL], orcpt={CAROL: "rfc822;carol@remote.test"})
    relay_run()
    [report] = inbox_reports(alice, "Undelivered")
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, original = parts_of(report)
    assert human.get_content_type() == "text/plain"
    assert "no such user" in str(human.get_payload())
    assert status.get_content_type() == "message/delivery-status"
    text = status.as_string()
    assert "Final-Recipient: rfc822; carol@remote.test" in text
    assert "Original-Recipient: rfc822;carol@remote.test" in text
    assert "Action: failed" in text and "Status: 5.1.1" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1" in text
    assert "Remote-MTA: dns; 127.0.0.1" in text
    assert original.get_content_type() == "text/rfc822-headers"
    assert "Subject: Quarterly numbers" in original.as_string()
    assert "secret body" not in original.as_string()


def test_ret_full_returns_the_whole_message(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    raw = make_message(subject="Full", sender="alice@a.test", to=CAROL, body="whole body\r\n")
    message_submit(raw=raw, mail_from="alice@a.test", recipients=[CAROL], dsn_ret="FULL")
    relay_run()
    [report] = inbox_reports(alice, "Undelivered")
    original = parts_of(report)[2]
    assert original.get_content_type() == "message/rfc822"
    assert "whole body" in original.as_string()


def test_notify_never_suppresses_the_report(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    message_submit(raw=make_message(sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL], notify={CAROL: "NEVER"})
    relay_run()
    assert OutboundRecipient.objects.get().status == Status.FAILED
    assert inbox_reports(alice, "Undelivered") == []


def test_giving_up_after_the_setting_bounces_with_a_4xx_status(alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_GIVE_UP_AFTER = 60  # type: ignore[attr-defined]
    settings.RELAY_DELAY_WARNING_AFTER = 0  # type: ignore[attr-defined]
    sink.behaviour.rcpt_replies[CAROL] = "451 4.3.0 try again later"
    message_submit(raw=make_message(sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
    relay_run()
    row = OutboundRecipient.objects.get()
    assert row.status == Status.QUEUED
    age_queue(61)
    recipients_retry_now(recipient_ids=[row.pk])
    relay_run()
    row.refresh_from_db()
    assert row.status == Status.FAILED and row.attempts == 2
    assert row.last_reply.startswith("gave up after 2 attempts")
    [report] = inbox_reports(alice, "Undelivered")
    assert "Status: 4.4.7" in parts_of(report)[1].as_string()


def test_delay_warning_is_sent_once(alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_DELAY_WARNING_AFTER = 60  # type: ignore[attr-defined]
    sink.behaviour.rcpt_replies[CAROL] = "451 4.3.0 try again later"
    message_submit(raw=make_message(sender="alice@a.test", to=CAROL), mail_from="alice@a.test", recipients=[CAROL])
    relay_run()
    assert inbox_reports(alice, "Delayed") == []  # too early for a warning
    age_queue(61)
    for _ in range(3):
        recipients_retry_now(recipient_ids=list(OutboundRecipient.objects.values_list("id", flat=True)))
        relay_run()
    [warning] = inbox_reports(alice, "Delayed")
    status = parts_of(warning)[1].as_string()
    assert "Action: delayed" in status and "Status: 4.3.0" in status and "Will-Retry-Until:" in status
    row = OutboundRecipient.objects.get()
    assert row.status == Status.QUEUED and row.delay_warned and row.attempts == 4


def test_no_report_is_sent_to_a_null_sender(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    message_submit(raw=make_message(sender="alice@a.test", to=CAROL), mail_from="", recipients=[CAROL])
    before = Message.objects.count()
    relay_run()
    assert OutboundRecipient.objects.get().status == Status.FAILED
    assert Message.objects.count() == before
    assert OutboundMessage.objects.count() == 1


def test_a_bounce_that_bounces_is_not_bounced_again(alice: Account, sink: SmtpSink) -> None:
    # dave@remote.test sends (say, through an alias forward) to carol, who does not exist;
    # the report to dave goes out with <> and dave's server refuses it too: that is the end.
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    sink.behaviour.rcpt_replies[DAVE] = "550 5.1.1 no such user either"
    message_submit(raw=make_message(sender=DAVE, to=CAROL), mail_from=DAVE, recipients=[CAROL])
    relay_run()
    report = OutboundMessage.objects.get(mail_from="")
    assert list(report.recipients.values_list("address", flat=True)) == [DAVE]
    relay_run()
    assert report.recipients.get().status == Status.FAILED
    assert OutboundMessage.objects.count() == 2
    assert relay_run().messages == 0


def test_a_delivery_report_with_a_sender_is_still_not_bounced(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    raw = make_message(sender="alice@a.test", to=CAROL).replace(
        b"Content-Type: text/plain; charset=utf-8",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"',
    )
    message_submit(raw=raw, mail_from="alice@a.test", recipients=[CAROL])
    relay_run()
    assert inbox_reports(alice, "Undelivered") == []


def test_ret_full_of_an_smtputf8_message_returns_it_as_message_global(alice: Account, sink: SmtpSink) -> None:
    """RFC 6533 §6.3: an internationalised original (UTF-8 header fields) comes back as
    message/global, which may carry them (message/rfc822 may not)."""
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    raw = make_message(subject="Grüße aus Köln", sender="alice@a.test", to=CAROL, body="ganzer Text\r\n")
    message_submit(raw=raw, mail_from="alice@a.test", recipients=[CAROL], dsn_ret="FULL", smtputf8=True)
    relay_run()
    [report] = inbox_reports(alice, "Undelivered")
    human, status, original = parts_of(report)
    assert status.get_content_type() == "message/delivery-status"  # all-ASCII addresses: the usual kind
    assert original.get_content_type() == "message/global"
    assert original["Content-Transfer-Encoding"] == "8bit"
    data = bytes(Message.objects.get(account=alice, subject__startswith="Undelivered").blob.data)
    returned = data[data.index(b"Content-Type: message/global\r\n") :]
    assert "Subject: Grüße aus Köln\r\n".encode() in returned and b"ganzer Text" in returned


def test_ret_hdrs_of_an_smtputf8_message_returns_message_global_headers(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    raw = make_message(subject="Grüße", sender="alice@a.test", to=CAROL, body="geheim\r\n")
    message_submit(raw=raw, mail_from="alice@a.test", recipients=[CAROL], dsn_ret="HDRS", smtputf8=True)
    relay_run()
    [report] = inbox_reports(alice, "Undelivered")
    original = parts_of(report)[2]
    assert original.get_content_type() == "message/global-headers"
    assert "geheim" not in original.as_string()


def test_ret_full_of_an_ascii_message_stays_message_rfc822_even_with_smtputf8(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    raw = make_message(subject="Plain", sender="alice@a.test", to=CAROL, body="Schöne Grüße\r\n")  # 8-bit body only
    message_submit(raw=raw, mail_from="alice@a.test", recipients=[CAROL], dsn_ret="FULL", smtputf8=True)
    relay_run()
    [report] = inbox_reports(alice, "Undelivered")
    assert parts_of(report)[2].get_content_type() == "message/rfc822"


def test_a_report_about_an_internationalised_recipient_is_a_global_delivery_status() -> None:
    from mailcore.relay.dsn import ReportEnvelope, ReportRecipient, dsn_build

    report = dsn_build(
        envelope=ReportEnvelope(mail_from="alice@a.test", arrival=timezone.now(), ret="HDRS"),
        recipients=[ReportRecipient(address="jürgen@bücher.example", reply="550 5.1.1 no such user")],
        action="failed", raw=make_message(to="jürgen@bücher.example"), now=timezone.now(),
    )
    parsed = email.message_from_bytes(report, policy=compat32)
    status = parts_of(parsed)[1]
    assert status.get_content_type() == "message/global-delivery-status"
    assert status["Content-Transfer-Encoding"] == "8bit"
    assert "Final-Recipient: utf-8; jürgen@bücher.example".encode() in report
    assert parts_of(parsed)[2].get_content_type() == "message/global-headers"
