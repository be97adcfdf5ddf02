"""SPF, DKIM and DMARC on the MX port, against a DNS server the test runs on 127.0.0.1."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailcore.models import Message
from mailcore.smtp.dmarc import organizational_domain
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import DnsZone, connect

pytestmark = pytest.mark.django_db(transaction=True)


def dkim_key(zone: DnsZone, domain: str, selector: str = "sel") -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    zone.add(f"{selector}._domainkey.{domain}", "TXT", "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def deliver(mx, message: bytes, mail_from: str = "carol@example.org") -> str:
    client = connect(mx)
    assert client.sendmail(mail_from, ["alice@a.test"], message) == {}
    client.quit()
    raw = bytes(Message.objects.order_by("-id").first().blob.data)
    head = raw.split(b"\r\n\r\n")[0].decode()
    start = head.index("Authentication-Results:")
    end = head.index("\r\nReceived:")
    return head[start:end].replace("\r\n\t", " ")


def test_spf_pass_dkim_pass_and_dmarc_pass(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    private = dkim_key(dns_zone, "example.org")
    message = make_message()
    signature = dkim.sign(message, b"sel", b"example.org", private, include_headers=[b"from", b"to", b"subject"])
    header = deliver(mx, signature + message)
    assert header == (
        "Authentication-Results: mx.test; spf=pass smtp.mailfrom=carol@example.org; "
        "dkim=pass header.d=example.org header.s=sel; dmarc=pass (p=reject) header.from=example.org"
    )


def test_spf_fail_and_no_signature_fail_dmarc_with_the_policy(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine")
    header = deliver(mx, make_message())
    assert "spf=fail smtp.mailfrom=carol@example.org" in header
    assert "dkim=none" in header
    assert "dmarc=fail (p=quarantine dis=quarantine) header.from=example.org" in header


def test_tampered_body_fails_dkim(mx, alice, dns_zone: DnsZone) -> None:
    private = dkim_key(dns_zone, "example.org")
    message = make_message()
    signature = dkim.sign(message, b"sel", b"example.org", private, include_headers=[b"from", b"subject"])
    header = deliver(mx, signature + message.replace(b"Hi there.", b"Pay me now."))
    assert "dkim=fail header.d=example.org header.s=sel" in header


def test_relaxed_alignment_uses_the_organisational_domain_and_strict_does_not(mx, alice, dns_zone, settings) -> None:
    settings.SMTP_DMARC_ENFORCE = False  # recorded only: the refusal itself is tested in test_dmarc.py
    dns_zone.add("bounces.example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=none")
    header = deliver(mx, make_message(), mail_from="list@bounces.example.org")
    assert "spf=pass" in header and "dmarc=pass (p=none)" in header
    dns_zone.records[("_dmarc.example.org", "TXT")] = ["v=DMARC1; p=reject; aspf=s"]
    header = deliver(mx, make_message(), mail_from="list@bounces.example.org")
    assert "dmarc=fail (p=reject dis=reject)" in header


def test_subdomain_without_a_record_inherits_sp_from_the_organisational_domain(mx, alice, dns_zone, settings) -> None:
    settings.SMTP_DMARC_ENFORCE = False
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=none; sp=reject")
    header = deliver(mx, make_message(sender="x@news.example.org"))
    assert "dmarc=fail (p=reject dis=reject) header.from=news.example.org" in header


def test_organizational_domain_comes_from_the_public_suffix_list() -> None:
    assert organizational_domain("a.b.example.org") == "example.org"
    assert organizational_domain("mail.example.co.uk") == "example.co.uk"
    assert organizational_domain("example.org") == "example.org"
    assert organizational_domain("a.b.example.com.au") == "example.com.au"
    assert organizational_domain("www.city.kawasaki.jp") == "city.kawasaki.jp"
    assert organizational_domain("alice.github.io") == "alice.github.io"  # private section
    assert organizational_domain("co.uk") == "co.uk"  # a public suffix is its own


def test_forged_results_claiming_our_name_are_removed_and_others_kept(mx, alice) -> None:
    forged = (
        b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=ceo@a.test;\r\n dkim=pass header.d=a.test\r\n"
        b"Authentication-Results: other.example; spf=pass smtp.mailfrom=x@y.test\r\n"
        b"authentication-results: MX.TEST (forged); dmarc=pass\r\n"
    )
    header = deliver(mx, forged + make_message())
    raw = bytes(Message.objects.get().blob.data)
    head = raw.split(b"\r\n\r\n")[0]
    assert head.count(b"mx.test;") == 1 and header.startswith("Authentication-Results: mx.test; spf=none")
    assert b"ceo@a.test" not in head and b"forged" not in head
    assert b"Authentication-Results: other.example; spf=pass smtp.mailfrom=x@y.test\r\n" in head
