"""DMARC enforcement on the MX port (RFC 7489): reject, quarantine into Junk, none, pct, sp,
temperror and permerror, malformed From fields; never on submission."""

from __future__ import annotations

import imaplib
import smtplib

import dkim
import pytest
from django.test import Client

from mailcore.models import Blob, Folder, FolderEntry, Message, OutboundMessage
from mailcore.smtp import resolver
from mailcore.smtp.dmarc import (
    Disposition,
    DmarcResult,
    FromError,
    RecordError,
    dmarc_disposition,
    header_from_domains,
    parse_dmarc_record,
)
from tests.conftest import PASSWORD, make_message
from tests.mailcore.imap.conftest import ServerThread as ImapServer
from tests.mailcore.smtp.conftest import DnsZone, connect, connect_submission
from tests.mailcore.smtp.test_authresults import dkim_key

pytestmark = pytest.mark.django_db(transaction=True)


def send(mx, message: bytes, mail_from: str = "carol@example.org", to: str = "alice@a.test") -> None:
    client = connect(mx)
    try:
        assert client.sendmail(mail_from, [to], message) == {}
    finally:
        client.close()


def refused(mx, message: bytes, mail_from: str = "carol@example.org") -> smtplib.SMTPDataError:
    client = connect(mx)
    try:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail(mail_from, ["alice@a.test"], message)
        # The connection stays in step: the next transaction works.
        assert client.noop()[0] == 250
    finally:
        client.close()
    return info.value


def folder_of_last_message() -> str:
    entry = FolderEntry.objects.select_related("folder").order_by("-message_id").first()
    assert entry is not None
    return entry.folder.name


def stored_header(name: str) -> str:
    raw = bytes(Message.objects.order_by("-id").first().blob.data)
    head = raw.split(b"\r\n\r\n")[0].decode().replace("\r\n\t", " ")
    return next(line for line in head.split("\r\n") if line.startswith(name + ":"))


def test_p_reject_failing_message_is_refused_with_550_naming_the_domain_and_nothing_is_stored(
    mx, alice, dns_zone: DnsZone
) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    error = refused(mx, make_message(subject="phish"))
    assert error.smtp_code == 550
    text = error.smtp_error.decode()
    assert text.startswith("5.7.1 ") and "DMARC" in text and "example.org" in text
    assert Message.objects.count() == 0
    assert Blob.objects.count() == 0
    assert OutboundMessage.objects.count() == 0


def test_p_reject_with_an_aligned_dkim_signature_is_delivered_to_the_inbox(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:192.0.2.1 -all")  # SPF fails: DKIM alone passes DMARC
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    private = dkim_key(dns_zone, "mail.example.org")
    message = make_message()
    signed = dkim.sign(message, b"sel", b"mail.example.org", private, include_headers=[b"from", b"subject"]) + message
    send(mx, signed)
    assert folder_of_last_message() == "INBOX"
    assert "dmarc=pass (p=reject) header.from=example.org" in stored_header("Authentication-Results")


def test_strict_dkim_alignment_refuses_a_subdomain_signature(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; adkim=s")
    private = dkim_key(dns_zone, "mail.example.org")
    message = make_message()
    signed = dkim.sign(message, b"sel", b"mail.example.org", private, include_headers=[b"from", b"subject"]) + message
    assert refused(mx, signed).smtp_code == 550


def test_p_quarantine_failing_message_is_filed_in_junk(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine")
    send(mx, make_message())
    assert folder_of_last_message() == "Junk"
    assert Folder.objects.get(account=alice, special_use=Folder.SpecialUse.JUNK).entries.count() == 1
    assert not FolderEntry.objects.filter(folder__account=alice, folder__name="INBOX").exists()
    assert "dmarc=fail (p=quarantine dis=quarantine)" in stored_header("Authentication-Results")


def test_p_none_failing_message_is_delivered_to_the_inbox(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=none")
    send(mx, make_message())
    assert folder_of_last_message() == "INBOX"
    assert "dmarc=fail (p=none dis=none)" in stored_header("Authentication-Results")


def test_pct_zero_turns_reject_into_quarantine_and_quarantine_into_delivery(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; pct=0")
    send(mx, make_message())
    assert folder_of_last_message() == "Junk"
    dns_zone.records[("_dmarc.example.org", "TXT")] = ["v=DMARC1; p=quarantine; pct=0"]
    send(mx, make_message())
    assert folder_of_last_message() == "INBOX"


def test_subdomain_policy_sp_applies_through_the_organisational_domain(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.example.co.uk", "TXT", "v=DMARC1; p=none; sp=reject")
    dns_zone.add("_dmarc.shop.example.co.uk", "TXT", "v=DMARC1; p=none")
    assert refused(mx, make_message(sender="x@news.example.co.uk"), "x@news.example.co.uk").smtp_code == 550
    # The organisational domain itself has p=none.
    send(mx, make_message(sender="x@example.co.uk"), "x@example.co.uk")
    # A subdomain's own record wins over the inherited sp=.
    send(mx, make_message(sender="x@shop.example.co.uk"), "x@shop.example.co.uk")
    assert Message.objects.count() == 2


def test_dmarc_servfail_is_temperror_and_the_message_is_accepted(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.servfail.add("_dmarc.example.org")
    send(mx, make_message())
    assert folder_of_last_message() == "INBOX"
    assert "dmarc=temperror header.from=example.org" in stored_header("Authentication-Results")


def test_silent_dmarc_dns_is_temperror_and_the_message_is_accepted(
    mx, alice, dns_zone: DnsZone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolver, "LOOKUP_LIFETIME", 0.5)  # each test has its own resolver (its own DNS port)
    dns_zone.silent.add("_dmarc.example.org")
    send(mx, make_message())
    assert "dmarc=temperror header.from=example.org" in stored_header("Authentication-Results")


@pytest.mark.parametrize(
    "records",
    [["v=DMARC1; p=bogus"], ["v=DMARC1; p=reject", "v=DMARC1; p=none"]],
    ids=["invalid-policy", "two-records"],
)
def test_bad_record_is_permerror_and_treated_as_no_policy(mx, alice, dns_zone: DnsZone, records) -> None:
    for record in records:
        dns_zone.add("_dmarc.example.org", "TXT", record)
    send(mx, make_message())
    assert folder_of_last_message() == "INBOX"
    assert "dmarc=permerror header.from=example.org" in stored_header("Authentication-Results")


def test_unrelated_txt_records_beside_the_dmarc_record_are_ignored(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.example.org", "TXT", "google-site-verification=abc")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    assert refused(mx, make_message()).smtp_code == 550


def test_message_without_from_is_refused(mx, alice) -> None:
    message = make_message().replace(b"From: Carol <carol@example.org>\r\n", b"")
    error = refused(mx, message)
    assert error.smtp_code == 550 and b"no From:" in error.smtp_error
    assert Message.objects.count() == 0


def test_message_with_two_from_fields_is_refused(mx, alice) -> None:
    message = b"From: mallory@evil.test\r\n" + make_message()
    error = refused(mx, message)
    assert error.smtp_code == 550 and b"more than one From:" in error.smtp_error


def test_from_with_an_address_without_domain_is_refused(mx, alice) -> None:
    message = make_message().replace(b"Carol <carol@example.org>", b"undisclosed")
    error = refused(mx, message)
    assert error.smtp_code == 550 and error.smtp_error.startswith(b"5.7.1 ")
    assert b"an address without a domain" in error.smtp_error
    assert b"RFC 7489 section 6.6.1" in error.smtp_error
    assert Message.objects.count() == 0


def test_from_that_is_an_empty_group_is_refused_with_550_saying_so(mx, alice) -> None:
    message = make_message().replace(b"Carol <carol@example.org>", b"undisclosed-recipients:;")
    error = refused(mx, message)
    assert error.smtp_code == 550 and error.smtp_error.startswith(b"5.7.1 ")
    assert b"a group with no address" in error.smtp_error
    assert Message.objects.count() == 0


def test_from_group_with_members_is_evaluated_for_each_member(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    message = make_message().replace(b"Carol <carol@example.org>", b"Team: carol@example.org, ceo@bank.test;")
    error = refused(mx, message)
    assert error.smtp_code == 550 and b"DMARC policy of bank.test" in error.smtp_error


@pytest.mark.parametrize(
    "second",
    [b"From : ceo@bank.test\r\n", b"FROM\t: ceo@bank.test\r\n", b"X-Junk : 1\r\nfrom: ceo@bank.test\r\n"],
)
def test_a_second_from_written_oddly_still_counts_as_a_second_from(mx, alice, second: bytes) -> None:
    # The readers here (IMAP ENVELOPE, the web) and most MUAs accept these as From: fields.
    message = make_message().replace(b"To: ", second + b"To: ", 1)
    error = refused(mx, message)
    assert error.smtp_code == 550 and b"more than one From:" in error.smtp_error


def test_a_from_with_space_before_the_colon_on_the_first_line_is_evaluated(
    mx, alice, dns_zone: DnsZone
) -> None:
    dns_zone.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    message = make_message().replace(b"From: Carol <carol@example.org>\r\n", b"")
    error = refused(mx, b"From : CEO <ceo@bank.test>\r\n" + message)
    assert error.smtp_code == 550 and b"DMARC policy of bank.test" in error.smtp_error


def test_a_from_with_space_before_the_colon_on_the_first_line_is_the_sender_everywhere(mx, alice, settings) -> None:
    # What DMARC evaluated is what the web and IMAP show: not an mbox "From " line to drop.
    settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = True
    message = make_message().replace(b"From: Carol <carol@example.org>\r\n", b"")
    send(mx, b"From : Carol <carol@example.org>\r\n" + message)
    stored = Message.objects.get(account=alice)
    assert (stored.from_name, stored.from_email) == ("Carol", "carol@example.org")
    web = Client()
    web.force_login(alice)
    page = web.get(f"/m/{stored.pk}/").content.decode()
    assert "&lt;carol@example.org&gt;" in page
    imap = ImapServer()
    port = imap.start()
    try:
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        client.login("alice@a.test", PASSWORD)
        client.select("INBOX")
        _typ, data = client.fetch("1", "(ENVELOPE)")
        client.logout()
    finally:
        imap.stop()
    envelope = data[0]
    assert isinstance(envelope, bytes) and b'(("Carol" NIL "carol" "example.org"))' in envelope


def test_a_domain_only_the_envelope_parser_sees_is_evaluated_too(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    dns_zone.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    # Shown as <ceo@bank.test> by the web and the IMAP ENVELOPE.
    message = make_message().replace(b"Carol <carol@example.org>", b"carol@example.org <ceo@bank.test>")
    error = refused(mx, message)
    assert error.smtp_code == 550 and b"DMARC policy of bank.test" in error.smtp_error


def test_a_legitimate_single_from_is_delivered_to_the_inbox(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    send(mx, make_message())
    assert folder_of_last_message() == "INBOX"
    assert "dmarc=pass" in stored_header("Authentication-Results")


def test_every_domain_of_a_multi_address_from_is_evaluated(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    dns_zone.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    message = make_message().replace(b"Carol <carol@example.org>", b"carol@example.org, ceo@bank.test")
    error = refused(mx, message)
    assert b"bank.test" in error.smtp_error and Message.objects.count() == 0
    # Both domains aligned: delivered, one result per domain.
    message = make_message().replace(b"Carol <carol@example.org>", b"carol@example.org, dave@Example.ORG")
    send(mx, message)
    assert stored_header("Authentication-Results").count("dmarc=pass") == 1


def test_utf8_from_domain_is_evaluated_in_its_a_label_form(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.xn--bcher-kva.test", "TXT", "v=DMARC1; p=reject")
    message = make_message().replace(b"Carol <carol@example.org>", "Léa <léa@bücher.test>".encode())
    client = connect(mx)
    try:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail("carol@example.org", ["alice@a.test"], message, ["SMTPUTF8"])
    finally:
        client.close()
    assert b"xn--bcher-kva.test" in info.value.smtp_error


def test_enforcement_off_records_the_failure_and_delivers(mx, alice, dns_zone: DnsZone, settings) -> None:
    settings.SMTP_DMARC_ENFORCE = False
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    send(mx, make_message())
    send(mx, make_message().replace(b"From: Carol <carol@example.org>\r\n", b""))
    assert Message.objects.count() == 2
    assert folder_of_last_message() == "INBOX"


def test_authenticated_submission_is_never_dmarc_checked(submission, alice, bob, dns_zone: DnsZone) -> None:
    dns_zone.add("_dmarc.a.test", "TXT", "v=DMARC1; p=reject")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    try:
        # A From that DMARC would refuse on the MX port: on submission the send-as rule is the envelope's.
        client.sendmail("alice@a.test", ["alice@a.test"], make_message(sender="alice@a.test"))
    finally:
        client.close()
    assert folder_of_last_message() == "INBOX"
    assert not any(name.startswith("_dmarc.") for name, _ in dns_zone.queries)


# --- pure parts ------------------------------------------------------------------------------
def test_record_parsing_defaults_and_errors() -> None:
    record = parse_dmarc_record("v=DMARC1; p=Quarantine; sp=bogus; adkim=x; aspf=s; pct=150; future=1")
    assert (record.policy, record.subdomain_policy, record.adkim, record.aspf, record.pct) == (
        "quarantine", "quarantine", "r", "s", 100,
    )
    assert parse_dmarc_record("v=DMARC1; rua=mailto:d@example.org").policy == "none"
    with pytest.raises(RecordError):
        parse_dmarc_record("v=DMARC1; p=")


def test_pct_sampling_downgrades_outside_the_sample() -> None:
    failing = DmarcResult("fail", "example.org", "reject", pct=30)
    assert dmarc_disposition(failing, sample=29.9) is Disposition.REJECT
    assert dmarc_disposition(failing, sample=30.0) is Disposition.QUARANTINE
    assert dmarc_disposition(DmarcResult("pass", "example.org", "reject"), sample=0) is Disposition.DELIVER
    assert dmarc_disposition(DmarcResult("temperror", "example.org"), sample=0) is Disposition.DELIVER


def test_header_from_domains() -> None:
    assert header_from_domains(make_message(sender="x@Example.ORG")) == ["example.org"]
    assert header_from_domains(b"From: Team: a@x.test, b@Y.test;\r\n\r\nbody") == ["x.test", "y.test"]
    assert header_from_domains(b'From: "a@b"@Example.org (c)\r\n\r\nbody') == ["example.org"]
    mbox = b"From sender@x.test Sat Nov 28 12:00:00 2026\r\nFrom: c@d.test\r\n\r\nbody"
    assert header_from_domains(mbox) == ["d.test"]  # an mbox envelope line is not a field
    for head, reason in [
        (b"From: undisclosed-recipients:;", "a group with no address"),
        (b"From: carol", "an address without a domain"),
        (b"From: carol@", "not an address"),
        (b"From: ", "is empty"),
        (b"From: c@d.test, undisclosed-recipients:;", "not an address"),
        (b"From: ceo@bank.test@evil.test", "not an address"),
        (b"From: a@b.test\r\nFrom : c@d.test", "more than one From:"),
    ]:
        with pytest.raises(FromError, match=reason):
            header_from_domains(head + b"\r\n\r\nbody")
    with pytest.raises(FromError):
        header_from_domains(b"Subject: x\r\n\r\nbody")
    many = ", ".join(f"x@d{i}.example" for i in range(6)).encode()
    with pytest.raises(FromError, match="more than 5 domains"):
        header_from_domains(b"From: " + many + b"\r\n\r\nbody")


def test_header_from_domains_gives_the_same_answer_every_time() -> None:
    """The canonical form of a domain is remembered: each call must still answer as the first
    did, including refusing an invalid domain again and keeping IDN forms apart by case."""
    for _ in range(3):
        assert header_from_domains(b"From: a@B\xc3\xbccher.TEST\r\n\r\nbody") == ["xn--bcher-kva.test"]
        assert header_from_domains(b"From: a@bucher.test\r\n\r\nbody") == ["bucher.test"]
        with pytest.raises(FromError, match="invalid domain"):
            header_from_domains(b"From: a@-bad-.test\r\n\r\nbody")
        with pytest.raises(FromError, match="invalid domain"):
            header_from_domains(b"From: a@bad..test\r\n\r\nbody")
