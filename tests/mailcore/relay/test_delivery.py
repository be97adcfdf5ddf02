"""Relaying to a recording SMTP server on 127.0.0.1: wire format, reuse, TLS, AUTH, replies."""

from __future__ import annotations

import email
from collections.abc import Iterator
from contextlib import contextmanager
from email.policy import compat32
from typing import Any

import pytest

from mailcore.models import Account, Domain, Message, OutboundRecipient
from mailcore.relay import worker
from mailcore.relay.dkim import dkim_txt_value, domain_dkim_key_create
from mailcore.relay.queue import recipients_claim, recipients_retry_now
from mailcore.relay.submit import message_submit
from tests.conftest import make_message

from .conftest import REMOTE, relay_run
from .servers import DnsServer, SinkBehaviour, SmtpSink, free_port

Status = OutboundRecipient.Status
CAROL = f"carol@{REMOTE}"
DAVE = f"dave@{REMOTE}"


def submit(raw: bytes, recipients: list[str], mail_from: str = "alice@a.test", **kwargs: object) -> int:
    result = message_submit(raw=raw, mail_from=mail_from, recipients=recipients, **kwargs)  # type: ignore[arg-type]
    assert result.outbound_id is not None
    return result.outbound_id


def from_alice(subject: str = "Hello", body: str = "Hi there.\r\n", to: str = CAROL, extra: str = "") -> bytes:
    return make_message(subject=subject, body=body, sender="alice@a.test", to=to, extra_headers=extra)


@contextmanager
def mx_on_sink(zone: dict[tuple[str, str], list[str] | str], settings: Any, sink: SmtpSink) -> Iterator[None]:
    """DNS answers from ``zone`` (a server on 127.0.0.1), and MX hosts are reached on the sink's port."""
    with DnsServer(zone) as dns_server:
        settings.DNS_NAMESERVERS = ["127.0.0.1"]
        settings.DNS_PORT = dns_server.port
        settings.RELAY_MX_PORT = sink.port
        yield


def test_remote_recipient_is_delivered_and_recorded(alice: Account, sink: SmtpSink) -> None:
    submit(from_alice(), [CAROL])
    relay_run()
    [got] = sink.received
    assert got.mail_from == "alice@a.test" and got.rcpt_tos == [CAROL]
    assert b"Subject: Hello" in got.data
    row = OutboundRecipient.objects.get()
    assert row.status == Status.DELIVERED
    assert row.attempts == 1
    assert "said: 250" in row.last_reply
    assert row.claim == "" and row.lease_until is None


def test_all_due_messages_for_a_destination_share_one_connection(alice: Account, sink: SmtpSink) -> None:
    for n in range(3):
        submit(from_alice(subject=f"m{n}"), [CAROL, DAVE])
    stats = relay_run()
    assert sink.connections == 1
    assert sink.rsets == 2  # between the three mail transactions
    assert stats.connections == 1 and stats.messages == 3
    assert len(sink.received) == 3
    assert all(sorted(r.rcpt_tos) == [CAROL, DAVE] for r in sink.received)


def test_without_reuse_every_message_opens_its_own_connection(alice: Account, sink: SmtpSink) -> None:
    for n in range(3):
        submit(from_alice(subject=f"m{n}"), [CAROL])
    for batch in recipients_claim():
        worker.batch_deliver(recipient_ids=batch.recipient_ids, claim=batch.claim, reuse=False)
    assert sink.connections == 3 and len(sink.received) == 3


def test_lone_dot_and_bare_lf_arrive_intact(alice: Account, sink: SmtpSink) -> None:
    raw = from_alice(body="first\r\n.\r\n.leading dot\r\n").replace(b"first\r\n", b"first\n")
    submit(raw, [CAROL])
    relay_run()
    [got] = sink.received
    assert got.data.endswith(b"first\r\n.\r\n.leading dot\r\n")


def test_8bit_body_goes_as_is_with_body_8bitmime_to_a_server_that_offers_it(alice: Account, sink: SmtpSink) -> None:
    submit(from_alice(body="Grüße\r\n"), [CAROL])
    relay_run()
    [got] = sink.received
    assert "BODY=8BITMIME" in got.mail_options
    assert "Grüße".encode() in got.data


def test_8bit_body_is_converted_to_quoted_printable_for_a_server_without_8bitmime(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.eight_bit = False
    submit(from_alice(body="Grüße\r\n"), [CAROL])
    relay_run()
    [got] = sink.received
    assert got.data.isascii()
    assert "BODY=8BITMIME" not in got.mail_options
    msg = email.message_from_bytes(got.data, policy=compat32)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.get_payload(decode=True) == "Grüße\r\n".encode()


def test_smtputf8_address_to_a_server_without_smtputf8_fails_permanently(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.smtputf8 = False
    submit(from_alice(to=f"jörg@{REMOTE}"), [f"jörg@{REMOTE}"], smtputf8=True)
    relay_run()
    row = OutboundRecipient.objects.get()
    assert row.status == Status.FAILED
    assert "5.6.7" in row.last_reply
    assert sink.received == []


def test_starttls_is_used_when_offered(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.starttls = True
    submit(from_alice(), [CAROL])
    relay_run()
    [got] = sink.received
    assert got.tls


def test_smarthost_gets_starttls_and_auth(alice: Account, settings: pytest.FixtureRequest) -> None:
    with SmtpSink(SinkBehaviour(starttls=True, auth=("relayuser", "s3cret"))) as smarthost:
        settings.RELAY_TRANSPORTS = {}  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST = f"127.0.0.1:{smarthost.port}"  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST_USER = "relayuser"  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST_PASSWORD = "s3cret"  # type: ignore[attr-defined]
        submit(from_alice(to="zed@elsewhere.test"), ["zed@elsewhere.test"])
        relay_run()
        [got] = smarthost.received
        assert got.tls and got.rcpt_tos == ["zed@elsewhere.test"]


def test_smarthost_refusing_our_password_keeps_the_mail_queued(alice: Account, settings: pytest.FixtureRequest) -> None:
    with SmtpSink(SinkBehaviour(starttls=True, auth=("relayuser", "s3cret"))) as smarthost:
        settings.RELAY_TRANSPORTS = {}  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST = f"127.0.0.1:{smarthost.port}"  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST_USER = "relayuser"  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST_PASSWORD = "wrong"  # type: ignore[attr-defined]
        submit(from_alice(to="zed@elsewhere.test"), ["zed@elsewhere.test"])
        relay_run()
        row = OutboundRecipient.objects.get()
        assert row.status == Status.QUEUED
        assert "AUTH failed" in row.last_reply
        assert smarthost.received == []


def test_unreachable_destination_is_retried_later(alice: Account, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_TRANSPORTS = {REMOTE: ("127.0.0.1", free_port())}  # type: ignore[attr-defined]
    submit(from_alice(), [CAROL])
    relay_run()
    row = OutboundRecipient.objects.get()
    assert row.status == Status.QUEUED and row.attempts == 1
    assert "connection failed" in row.last_reply
    assert row.next_attempt_at > row.last_attempt_at  # type: ignore[operator]
    assert relay_run().messages == 0  # not due yet


def test_4xx_is_retried_on_the_schedule_and_delivered_when_the_server_recovers(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[CAROL] = "450 4.2.1 mailbox busy"
    submit(from_alice(), [CAROL])
    relay_run()
    row = OutboundRecipient.objects.get()
    assert row.status == Status.QUEUED and "450 4.2.1" in row.last_reply
    sink.behaviour.rcpt_replies.clear()
    assert recipients_retry_now(recipient_ids=[row.pk]) == 1
    relay_run()
    row.refresh_from_db()
    assert row.status == Status.DELIVERED and row.attempts == 2
    assert len(sink.received) == 1


def test_5xx_for_one_recipient_fails_it_while_the_other_is_delivered(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.rcpt_replies[DAVE] = "550 5.1.1 no such user"
    submit(from_alice(), [CAROL, DAVE])
    relay_run()
    statuses = dict(OutboundRecipient.objects.values_list("address", "status"))
    assert statuses == {CAROL: Status.DELIVERED, DAVE: Status.FAILED}
    assert sink.received[0].rcpt_tos == [CAROL]


def test_mail_is_routed_by_mx_records(alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    zone: dict[tuple[str, str], list[str] | str] = {
        ("mx-routed.test", "MX"): ["10 mx.mx-routed.test."],
        ("mx.mx-routed.test", "A"): ["127.0.0.1"],
    }
    with mx_on_sink(zone, settings, sink):
        submit(from_alice(to="erin@mx-routed.test"), ["erin@mx-routed.test"])
        relay_run()
    [got] = sink.received
    assert got.rcpt_tos == ["erin@mx-routed.test"]
    assert "mx.mx-routed.test[127.0.0.1]" in OutboundRecipient.objects.get().last_reply


def test_null_mx_fails_at_once(alice: Account, settings: pytest.FixtureRequest) -> None:
    with DnsServer({("nomail.test", "MX"): ["0 ."]}) as dns_server:
        settings.DNS_NAMESERVERS = ["127.0.0.1"]  # type: ignore[attr-defined]
        settings.DNS_PORT = dns_server.port  # type: ignore[attr-defined]
        settings.RELAY_TRANSPORTS = {}  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST = ""  # type: ignore[attr-defined]
        submit(from_alice(to="x@nomail.test"), ["x@nomail.test"])
        relay_run()
    row = OutboundRecipient.objects.get()
    assert row.status == Status.FAILED and "null MX" in row.last_reply
    [report] = Message.objects.filter(account=alice, subject__startswith="Undelivered").select_related("blob")
    assert b"Status: 5.1.10" in bytes(report.blob.data)


def test_a_domain_whose_best_mx_is_this_host_bounces_as_a_loop(
    alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest
) -> None:
    # RFC 5321 §5.1: sending it to the MX would hand it back to ourselves, again and again.
    zone: dict[tuple[str, str], list[str] | str] = {
        ("looped.test", "MX"): ["10 mail.a.test.", "20 backup.looped.test."],
        ("mail.a.test", "A"): ["127.0.0.1"],
        ("backup.looped.test", "A"): ["127.0.0.1"],
    }
    with mx_on_sink(zone, settings, sink):
        settings.MAIL_HOSTNAME = "mail.a.test"  # type: ignore[attr-defined]
        submit(from_alice(to="x@looped.test"), ["x@looped.test"])
        relay_run()
    assert sink.received == []
    row = OutboundRecipient.objects.get()
    assert row.status == Status.FAILED and "loops back to myself" in row.last_reply
    [report] = Message.objects.filter(account=alice, subject__startswith="Undelivered").select_related("blob")
    assert b"Status: 5.4.6" in bytes(report.blob.data)


def test_dkim_signature_made_for_the_sender_domain_verifies(alice: Account, sink: SmtpSink) -> None:
    import dkim

    domain = domain_dkim_key_create(domain=Domain.objects.get(name="a.test"))
    txt = dkim_txt_value(domain.dkim_private_key).encode()
    sink.behaviour.eight_bit = False  # signed after the 8-bit conversion, so it must still verify
    submit(from_alice(body="Grüße, signed\r\n"), [CAROL])
    relay_run()
    [got] = sink.received
    assert got.data.startswith(b"DKIM-Signature:")
    assert b"d=a.test" in got.data and b"s=mail" in got.data

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return txt if name == b"mail._domainkey.a.test." else None

    assert dkim.verify(got.data, dnsfunc=dnsfunc)
    tampered = got.data.replace(b"signed", b"forged")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_mail_without_a_domain_key_goes_unsigned(alice: Account, sink: SmtpSink) -> None:
    submit(from_alice(), [CAROL])
    relay_run()
    assert not sink.received[0].data.startswith(b"DKIM-Signature:")


def test_next_mx_is_tried_when_the_preferred_one_refuses(alice: Account, sink: SmtpSink, settings: pytest.FixtureRequest) -> None:
    zone: dict[tuple[str, str], list[str] | str] = {
        ("two-mx.test", "MX"): ["10 down.two-mx.test.", "20 up.two-mx.test."],
        ("down.two-mx.test", "A"): ["127.0.0.2"],  # loopback, but the sink listens on 127.0.0.1 only
        ("up.two-mx.test", "A"): ["127.0.0.1"],
    }
    with mx_on_sink(zone, settings, sink):
        submit(from_alice(to="gil@two-mx.test"), ["gil@two-mx.test"])
        stats = relay_run()
    assert stats.connections == 1
    assert len(sink.received) == 1
    assert "up.two-mx.test[127.0.0.1]" in OutboundRecipient.objects.get().last_reply


def test_failed_tls_handshake_falls_back_to_clear_text_on_the_same_host(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.tls_broken = True
    submit(from_alice(), [CAROL])
    relay_run()
    [got] = sink.received
    assert not got.tls
    assert sink.connections == 2
    assert OutboundRecipient.objects.get().status == Status.DELIVERED


def test_tls_failure_to_a_smarthost_does_not_fall_back(alice: Account, settings: pytest.FixtureRequest) -> None:
    with SmtpSink(SinkBehaviour(starttls=True, tls_broken=True, auth=("u", "p"))) as smarthost:
        settings.RELAY_TRANSPORTS = {}  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST = f"127.0.0.1:{smarthost.port}"  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST_USER = "u"  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST_PASSWORD = "p"  # type: ignore[attr-defined]
        submit(from_alice(to="zed@elsewhere.test"), ["zed@elsewhere.test"])
        relay_run()
        row = OutboundRecipient.objects.get()
        assert row.status == Status.QUEUED and "TLS failed" in row.last_reply
        assert smarthost.received == [] and smarthost.connections == 1


def test_421_mid_batch_defers_that_message_and_the_rest_go_over_a_new_connection(alice: Account, sink: SmtpSink) -> None:
    sink.behaviour.mail_replies.append("421 4.3.2 shutting down")
    for n in range(3):
        submit(from_alice(subject=f"m{n}"), [CAROL])
    stats = relay_run()
    assert stats.connections == 2 and sink.connections == 2
    statuses = list(OutboundRecipient.objects.order_by("id").values_list("status", flat=True))
    assert statuses == [Status.QUEUED, Status.DELIVERED, Status.DELIVERED]
    assert "421 4.3.2" in OutboundRecipient.objects.order_by("id").first().last_reply  # type: ignore[union-attr]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_per_recipient_replies_are_recorded_with_and_without_pipelining(alice: Account, sink: SmtpSink, pipelining: bool) -> None:
    sink.behaviour.pipelining = pipelining
    sink.behaviour.rcpt_replies[DAVE] = "550 5.1.1 no such user"
    erin = f"erin@{REMOTE}"
    sink.behaviour.rcpt_replies[erin] = "452 4.2.2 over quota"
    submit(from_alice(), [CAROL, DAVE, erin])
    submit(from_alice(subject="second"), [CAROL])
    relay_run()
    rows = {r.address: r for r in OutboundRecipient.objects.all()}
    assert rows[DAVE].status == Status.FAILED and "550 5.1.1" in rows[DAVE].last_reply
    assert rows[erin].status == Status.QUEUED and "452 4.2.2" in rows[erin].last_reply
    assert [r.rcpt_tos for r in sink.received] == [[CAROL], [CAROL]]
    assert sink.connections == 1
