"""DSN (RFC 3461) end to end: the parameters on MAIL/RCPT, their checks, the queue rows, the
relay passing them on or reporting itself, and the reports (RFC 3464) in the sender's mailbox."""

from __future__ import annotations

import email
import smtplib
from datetime import timedelta
from email.message import Message as EmailMessage
from email.policy import compat32

import pytest
from django.utils import timezone

from mailcore.models import Account, Message, OutboundMessage, OutboundRecipient
from mailcore.relay.queue import recipients_retry_now
from mailcore.smtp.dsn import DsnParamError, mail_dsn_params, rcpt_dsn_params, xtext_decode, xtext_encode
from mailcore.smtp.protocol import Role
from tests.conftest import PASSWORD, make_message
from tests.mailcore.relay.conftest import REMOTE, relay_run, sink  # noqa: F401 - the sink fixture
from tests.mailcore.relay.servers import SmtpSink
from tests.mailcore.smtp.conftest import RawClient, connect, connect_submission, start_server  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

Status = OutboundRecipient.Status
CAROL = f"carol@{REMOTE}"


def reports(account: Account, subject: str) -> list[EmailMessage]:
    rows = Message.objects.filter(account=account, subject__startswith=subject).select_related("blob")
    return [email.message_from_bytes(bytes(m.blob.data), policy=compat32) for m in rows]


def status_part(report: EmailMessage) -> str:
    parts = report.get_payload()
    assert isinstance(parts, list) and parts[1].get_content_type() == "message/delivery-status"
    return parts[1].as_string()


def submit(listener, recipients: list[str], *, mail_options=(), rcpt_options=(), subject="Hello") -> None:
    client = connect_submission(listener, "alice@a.test", PASSWORD)
    try:
        message = make_message(subject=subject, sender="alice@a.test", to=recipients[0], body="the body\r\n")
        refused = client.sendmail("alice@a.test", recipients, message, list(mail_options), list(rcpt_options))
        assert refused == {}
    finally:
        client.close()


# --- EHLO and parameter checks ------------------------------------------------------------------
@pytest.mark.parametrize("role", [Role.MX, Role.SUBMISSION])
def test_dsn_is_advertised_on_mx_and_submission(start_server, role) -> None:  # noqa: F811
    client = connect(start_server(role))
    assert client.has_extn("dsn")


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (b"MAIL FROM:<carol@example.org> RET=BODY", b"RET must be FULL or HDRS"),
        (b"MAIL FROM:<carol@example.org> RET", b"RET must be FULL or HDRS"),
        (b"MAIL FROM:<carol@example.org> RET=FULL RET=HDRS", b"given twice"),
        (b"MAIL FROM:<carol@example.org> ENVID=" + b"x" * 101, b"longer than 100"),
        (b"MAIL FROM:<carol@example.org> ENVID=a+2", b"not valid xtext"),
        (b"MAIL FROM:<carol@example.org> ENVID=a+0D+0AX-Injected:+20yes", b"printable"),
        (b"MAIL FROM:<carol@example.org> ENVID=a=b", b"not valid xtext"),
    ],
)
def test_bad_mail_dsn_parameters_get_501_with_a_reason(mx, command, reason) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        reply = raw.command(command)
        assert reply.startswith(b"501 5.5.4 ") and reason in reply, reply
        assert raw.command(b"MAIL FROM:<carol@example.org> RET=hdrs ENVID=QQ+2B314159").startswith(b"250")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (b"NOTIFY=NEVER,SUCCESS", b"NEVER cannot be combined"),
        (b"NOTIFY=SUCCESS,SUCCESS", b"twice"),
        (b"NOTIFY=SOMETIMES", b"NOTIFY takes NEVER"),
        (b"NOTIFY", b"NOTIFY needs a value"),
        (b"NOTIFY=SUCCESS NOTIFY=FAILURE", b"given twice"),
        (b"ORCPT=alice@a.test", b"addr-type;address"),
        (b"ORCPT=rfc822;", b"addr-type;address"),
        (b"ORCPT=rfc822;alice@a.test+", b"not valid xtext"),
        (b"ORCPT=rfc822;a+00b@a.test", b"printable"),
        (b"ORCPT=rfc822;" + b"a" * 495 + b"@a.test", b"longer than 500"),
    ],
)
def test_bad_rcpt_dsn_parameters_get_501_with_a_reason(mx, alice, params, reason) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        assert raw.command(b"MAIL FROM:<carol@example.org>").startswith(b"250")
        reply = raw.command(b"RCPT TO:<alice@a.test> " + params)
        assert reply.startswith(b"501 5.5.4 ") and reason in reply, reply
        ok = raw.command(b"RCPT TO:<alice@a.test> NOTIFY=success,Failure ORCPT=rfc822;alice+2Bx@a.test")
        assert ok.startswith(b"250"), ok


def test_dsn_parameters_after_helo_are_refused(mx, alice) -> None:
    with RawClient(mx) as raw:
        raw.command(b"HELO client.example")
        assert raw.command(b"MAIL FROM:<carol@example.org> RET=FULL").startswith(b"501 5.5.4")
        assert raw.command(b"MAIL FROM:<carol@example.org>").startswith(b"250")
        assert raw.command(b"RCPT TO:<alice@a.test> NOTIFY=NEVER").startswith(b"501 5.5.4")


def test_xtext_round_trip_and_canonical_form() -> None:
    assert xtext_encode("a+b=c d\u00e9") == "a+2Bb+3Dc+20d+E9"
    assert xtext_decode("a+2Bb+3dc") == "a+b=c"
    assert mail_dsn_params({"ENVID": "a+2bz"}).envid == "a+2Bz"  # hex in upper case
    assert rcpt_dsn_params({"NOTIFY": "delay,failure"}).notify == "DELAY,FAILURE"
    with pytest.raises(DsnParamError):
        rcpt_dsn_params({"ORCPT": "rfc 822;x@y"})


# --- remote recipients: the relay ---------------------------------------------------------------
def test_parameters_are_stored_on_the_queue_and_passed_to_a_next_hop_with_dsn(submission, alice, sink: SmtpSink) -> None:  # noqa: F811
    sink.behaviour.dsn = True
    submit(
        submission, [CAROL], mail_options=["RET=HDRS", "ENVID=QQ+2B314159"],
        rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Carol+2Bx@remote.test"],
    )
    message = OutboundMessage.objects.get()
    assert (message.dsn_ret, message.dsn_envid) == ("HDRS", "QQ+2B314159")
    row = message.recipients.get()
    assert (row.notify, row.orcpt) == ("SUCCESS,FAILURE", "rfc822;Carol+2Bx@remote.test")
    relay_run()
    assert OutboundRecipient.objects.get().status == Status.DELIVERED
    assert sink.dsn_params == [
        ("MAIL", "FROM:<alice@a.test>", ["RET=HDRS", "ENVID=QQ+2B314159"]),
        ("RCPT", f"TO:<{CAROL}>", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Carol+2Bx@remote.test"]),
    ]
    # The next hop took over the duty to report success: nothing from us.
    assert reports(alice, "Relayed") == [] and Message.objects.filter(account=alice).count() == 0


def test_notify_success_to_a_next_hop_without_dsn_gets_a_relayed_report(submission, alice, sink: SmtpSink) -> None:  # noqa: F811
    submit(
        submission, [CAROL], mail_options=["ENVID=QQ+2B314159"],
        rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Carol+2Bx@remote.test"],
    )
    relay_run()
    [received] = sink.received
    assert not any(o.upper().startswith(("RET=", "ENVID=")) for o in received.mail_options)  # no DSN offered
    [report] = reports(alice, "Relayed")
    status = status_part(report)
    assert "Original-Envelope-Id: QQ+314159" in status
    assert "Original-Recipient: rfc822;Carol+x@remote.test" in status
    assert f"Final-Recipient: rfc822; {CAROL}" in status
    assert "Action: relayed" in status and "Status: 2.0.0" in status
    assert report["From"].startswith("Mail Delivery System") and report["To"] == "<alice@a.test>"


def test_default_notify_sends_no_success_report(submission, alice, sink: SmtpSink) -> None:  # noqa: F811
    submit(submission, [CAROL])
    relay_run()
    assert OutboundRecipient.objects.get().status == Status.DELIVERED
    assert Message.objects.filter(account=alice).count() == 0


def test_failure_report_with_ret_hdrs_envid_and_orcpt(submission, alice, sink: SmtpSink) -> None:  # noqa: F811
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    submit(
        submission, [CAROL], mail_options=["RET=HDRS", "ENVID=batch-7"],
        rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;carol@remote.test"], subject="Numbers",
    )
    relay_run()
    [report] = reports(alice, "Undelivered")
    status = status_part(report)
    assert "Original-Envelope-Id: batch-7" in status and "Action: failed" in status
    assert "Original-Recipient: rfc822;carol@remote.test" in status
    original = report.get_payload()[2]
    assert original.get_content_type() == "text/rfc822-headers"
    assert "Subject: Numbers" in original.as_string() and "the body" not in original.as_string()


def test_ret_full_returns_the_whole_message(submission, alice, sink: SmtpSink) -> None:  # noqa: F811
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    submit(submission, [CAROL], mail_options=["RET=FULL"])
    relay_run()
    [report] = reports(alice, "Undelivered")
    original = report.get_payload()[2]
    assert original.get_content_type() == "message/rfc822" and "the body" in original.as_string()


def test_notify_never_sends_no_failure_report(submission, alice, sink: SmtpSink) -> None:  # noqa: F811
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    submit(submission, [CAROL], rcpt_options=["NOTIFY=NEVER"])
    relay_run()
    assert OutboundRecipient.objects.get().status == Status.FAILED
    assert Message.objects.filter(account=alice).count() == 0


@pytest.mark.parametrize(("notify", "warned"), [("FAILURE", False), ("DELAY", True), ("SUCCESS,FAILURE", False)])
def test_delay_warning_only_when_notify_asks_for_delay(submission, alice, sink: SmtpSink, settings, notify, warned) -> None:  # noqa: F811
    settings.RELAY_DELAY_WARNING_AFTER = 60
    sink.behaviour.rcpt_replies[CAROL] = "451 4.3.0 try again later"
    submit(submission, [CAROL], rcpt_options=[f"NOTIFY={notify}"])
    relay_run()
    OutboundRecipient.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    recipients_retry_now(recipient_ids=list(OutboundRecipient.objects.values_list("id", flat=True)))
    relay_run()
    assert OutboundRecipient.objects.get().status == Status.QUEUED
    assert len(reports(alice, "Delayed")) == (1 if warned else 0)


# --- local recipients: "delivered" ---------------------------------------------------------------
def test_notify_success_for_a_local_recipient_sends_a_delivered_report(submission, alice, bob) -> None:
    submit(
        submission, ["bob@b.test", "alice@a.test"], mail_options=["ENVID=e-1", "RET=FULL"],
        rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob@B.test"],
    )
    assert Message.objects.filter(account=bob).count() == 1
    [report] = reports(alice, "Successful Mail Delivery")
    status = status_part(report)
    assert "Original-Envelope-Id: e-1" in status
    assert "Final-Recipient: rfc822; bob@b.test" in status and "Original-Recipient: rfc822;Bob@B.test" in status
    assert "Final-Recipient: rfc822; alice@a.test" in status  # the same options for every RCPT (smtplib)
    assert "Action: delivered" in status and "Status: 2.0.0" in status
    assert report.get_payload()[2].get_content_type() == "message/rfc822"
    assert OutboundMessage.objects.count() == 0


def test_mx_delivery_with_notify_success_queues_a_report_to_the_remote_sender(mx, alice, dns_zone) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    client = connect(mx)
    client.sendmail(
        "carol@example.org", ["alice@a.test"], make_message(), ["ENVID=remote-1"], ["NOTIFY=SUCCESS,FAILURE"]
    )
    client.close()
    assert Message.objects.filter(account=alice).count() == 1
    report = OutboundMessage.objects.get()
    assert report.mail_from == "" and list(report.recipients.values_list("address", flat=True)) == ["carol@example.org"]
    raw = bytes(report.blob.data)
    assert b"Action: delivered" in raw and b"Original-Envelope-Id: remote-1" in raw


def test_no_success_report_on_mx_unless_spf_passes_for_the_sender(mx, alice, sink: SmtpSink, dns_zone) -> None:  # noqa: F811
    # mallory forges victim@example.org with NOTIFY=SUCCESS RET=FULL: no report may reflect
    # the message to the victim (SPF: this client is not example.org's).
    from mailcore.store import alias_create

    dns_zone.add("example.org", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    alias_create(address="team@a.test", destinations=["alice@a.test", CAROL])
    client = connect(mx)
    client.sendmail(
        "victim@example.org", ["alice@a.test", "team@a.test"], make_message(), ["RET=FULL"],
        ["NOTIFY=SUCCESS"],
    )
    client.close()
    assert Message.objects.filter(account=alice).count() == 1  # one copy for both addresses
    row = OutboundRecipient.objects.get()
    assert (row.address, row.notify) == (CAROL, "NEVER")  # the forward asks for nothing more
    assert not OutboundMessage.objects.filter(mail_from="").exists()
    relay_run()
    assert not OutboundMessage.objects.filter(mail_from="").exists()


def test_no_delivered_report_to_a_null_sender(mx, alice) -> None:
    client = connect(mx)
    client.sendmail("", ["alice@a.test"], make_message(), [], ["NOTIFY=SUCCESS"])
    client.close()
    assert Message.objects.filter(account=alice).count() == 1
    assert OutboundMessage.objects.count() == 0


def test_alias_forward_inherits_notify_and_gets_the_alias_as_orcpt(mx, alice, sink: SmtpSink) -> None:  # noqa: F811
    from mailcore.store import alias_create

    alias_create(address="team@a.test", destinations=["alice@a.test", CAROL])
    sink.behaviour.dsn = True
    client = connect(mx)
    client.sendmail("dave@example.org", ["team@a.test"], make_message(to="team@a.test"), [], ["NOTIFY=FAILURE"])
    client.close()
    row = OutboundRecipient.objects.get(message__mail_from="dave@example.org")
    assert (row.address, row.notify, row.orcpt) == (CAROL, "FAILURE", "rfc822;team@a.test")


def test_unknown_parameters_are_still_refused(mx, alice) -> None:
    client = connect(mx)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("carol@example.org", ["alice@a.test"], make_message(), [], ["XFOO=1"])
    client.close()


def _team_alias() -> None:
    from mailcore.store import alias_create

    alias_create(address="team@a.test", destinations=[CAROL])


def test_rset_forgets_the_dsn_parameters(mx, alice) -> None:
    _team_alias()
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        assert raw.command(b"MAIL FROM:<dave@example.org> RET=FULL ENVID=first").startswith(b"250")
        assert raw.command(b"RSET").startswith(b"250")
        assert raw.command(b"MAIL FROM:<dave@example.org>").startswith(b"250")
        assert raw.command(b"RCPT TO:<team@a.test>").startswith(b"250")
        assert raw.command(b"DATA").startswith(b"354")
        assert raw.command(make_message(to="team@a.test") + b".").startswith(b"250")
    message = OutboundMessage.objects.get()
    assert (message.dsn_ret, message.dsn_envid) == ("", "")
    assert message.recipients.get().notify == ""


def test_dsn_parameters_travel_with_a_bdat_message(mx, alice) -> None:
    _team_alias()
    body = make_message(to="team@a.test")
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        assert raw.command(b"MAIL FROM:<dave@example.org> RET=HDRS ENVID=bdat+2B1").startswith(b"250")
        assert raw.command(b"RCPT TO:<team@a.test> NOTIFY=DELAY ORCPT=rfc822;Team@A.test").startswith(b"250")
        assert raw.command(b"BDAT %d LAST\r\n" % len(body) + body).startswith(b"250")
    message = OutboundMessage.objects.get()
    assert (message.dsn_ret, message.dsn_envid) == ("HDRS", "bdat+2B1")
    row = message.recipients.get()
    assert (row.address, row.notify, row.orcpt) == (CAROL, "DELAY", "rfc822;Team@A.test")


def test_crossing_submissions_with_success_reports_do_not_deadlock(alice, bob) -> None:
    # alice → bob and bob → alice at the same time, both NOTIFY=SUCCESS: each transaction
    # locks its recipient's account (delivery) and then its sender's (the "delivered" report).
    # A third session holds alice's row so that both are queued on it, bob → alice first;
    # when it lets go, the two must not wait for each other.
    import threading

    from django.db import connection, transaction

    from mailcore.smtp import policy
    from mailcore.smtp.dsn import RcptDsn
    from mailcore.store import recipient_resolve

    errors: list[BaseException] = []

    def send(sender: str, recipient: str) -> None:
        raw = make_message(subject=f"from {sender}", sender=sender, to=recipient)
        try:
            policy.message_accept(
                local_raw=raw, relay_raw=raw, mail_from=sender, local=[recipient_resolve(recipient)], remote=[],
                account=Account.objects.get(address=sender),
                dsn=policy.EnvelopeDsn(recipients={recipient: RcptDsn(notify="SUCCESS")}),
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def waiting() -> int:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")  # a transaction keeps its first view otherwise
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'")
            return int(cur.fetchone()[0])

    threads = [threading.Thread(target=send, args=("bob@b.test", "alice@a.test")),
               threading.Thread(target=send, args=("alice@a.test", "bob@b.test"))]
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM mailcore_account WHERE id = %s FOR UPDATE", [alice.pk])
        for number, thread in enumerate(threads, start=1):
            thread.start()
            deadline = timezone.now() + timedelta(seconds=20)
            while waiting() < number and timezone.now() < deadline:
                pass
            assert waiting() == number, errors
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(reports(alice, "Successful Mail Delivery")) == len(reports(bob, "Successful Mail Delivery")) == 1


def test_alias_forward_from_a_utf8_alias_gets_no_orcpt_rather_than_invalid_xtext(mx, alice, sink: SmtpSink) -> None:  # noqa: F811
    from mailcore.store import alias_create

    alias_create(address="jürgen@a.test", destinations=[CAROL])
    sink.behaviour.dsn = True
    client = connect(mx)
    refused = client.sendmail("dave@example.org", ["jürgen@a.test"], make_message(to="alice@a.test"),
                              ["SMTPUTF8"], ["NOTIFY=FAILURE"])
    client.close()
    assert refused == {}
    row = OutboundRecipient.objects.get(message__mail_from="dave@example.org")
    assert (row.address, row.notify, row.orcpt) == (CAROL, "FAILURE", "")
    # What would have been sent is refused by a strict next hop (ours among them).
    with pytest.raises(DsnParamError):
        rcpt_dsn_params({"ORCPT": "rfc822;j" + xtext_encode("ü") + "rgen@a.test"})


def test_synthesised_orcpt_is_bounded_to_500_characters() -> None:
    from mailcore.smtp.dsn import MAX_ORCPT, orcpt_for

    longest = "=" * 64 + "@" + ".".join(["a" * 63] * 3 + ["b" * 61])  # 64-octet local part, 253-octet domain
    assert orcpt_for(longest).startswith("rfc822;+3D") and len(orcpt_for(longest)) <= MAX_ORCPT
    assert orcpt_for("=" * 200 + "@a.test") == ""
    assert orcpt_for("jürgen@a.test") == ""
    assert rcpt_dsn_params({"ORCPT": orcpt_for(longest)}).orcpt == orcpt_for(longest)


def _submit_8bit(listener, recipients: list[str]) -> None:
    client = connect_submission(listener, "alice@a.test", PASSWORD)
    try:
        message = make_message(subject="Greetings", sender="alice@a.test", to=recipients[0], body="Schöne Grüße\r\n")
        assert client.sendmail("alice@a.test", recipients, message, ["RET=FULL", "BODY=8BITMIME"], ["NOTIFY=FAILURE"]) == {}
    finally:
        client.close()


def test_ret_full_report_of_an_8bit_original_declares_8bit(submission, alice, sink: SmtpSink) -> None:  # noqa: F811
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    _submit_8bit(submission, [CAROL])
    relay_run()
    [report] = reports(alice, "Undelivered")
    original = report.get_payload()[2]
    assert original.get_content_type() == "message/rfc822"
    assert original["Content-Transfer-Encoding"] == "8bit"
    assert "Schöne Grüße".encode() in bytes(Message.objects.get(account=alice).blob.data)


def test_ret_full_report_to_a_remote_sender_is_downgraded_for_a_hop_without_8bitmime(mx, alice, sink: SmtpSink) -> None:  # noqa: F811
    from mailcore.store import alias_create

    # dave@remote.test's message to an alias forwarding to carol fails there; the report goes back
    # to dave through the sink, which does not offer 8BITMIME.
    alias_create(address="team@a.test", destinations=[CAROL])
    sink.behaviour.rcpt_replies[CAROL] = "550 5.1.1 no such user"
    dave = f"dave@{REMOTE}"
    client = connect(mx)
    message = make_message(subject="Greetings", sender=dave, to="team@a.test", body="Schöne Grüße\r\n")
    assert client.sendmail(dave, ["team@a.test"], message, ["RET=FULL", "BODY=8BITMIME"], ["NOTIFY=FAILURE"]) == {}
    client.close()
    sink.behaviour.eight_bit = False
    relay_run()  # carol refused: the report is queued
    relay_run()  # the report goes
    [received] = sink.messages_to(dave)
    assert received.data.isascii() and "BODY=8BITMIME" not in received.mail_options
    report = email.message_from_bytes(received.data, policy=compat32)
    original = report.get_payload()[2]
    assert original.get_content_type() == "message/rfc822" and original["Content-Transfer-Encoding"] == "7bit"
    inner = original.get_payload()[0]
    assert inner.get_payload(decode=True).decode("utf-8") == "Schöne Grüße\r\n"
