"""DKIM (RFC 6376): a key per domain, its DNS record, and signing outbound mail with it.

The signing domain is the domain of the From header when it is ours and has a key (what DMARC
aligns on), else the envelope sender's. Signing happens in the worker after any 8-bit to 7-bit
conversion, on exactly the bytes that go on the wire.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import re

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import transaction

from mailcore.models import Domain

log = logging.getLogger("mailcore.relay.dkim")

DKIM_KEY_BITS = 2048
DEFAULT_SELECTOR = "mail"
TXT_CHUNK = 255  # one character-string in a TXT record holds at most 255 bytes (RFC 1035 §3.3)
SIGNED_HEADERS = [
    b"from", b"sender", b"reply-to", b"subject", b"date", b"message-id", b"to", b"cc",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"in-reply-to", b"references",
]
_FROM = re.compile(rb"(?im)^from[ \t]*:(.*(?:\r\n[ \t].*)*)")


def dkim_private_key_make(bits: int = DKIM_KEY_BITS) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode("ascii")


def dkim_public_key_b64(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def dkim_txt_value(private_pem: str) -> str:
    """The TXT record's text, e.g. ``v=DKIM1; k=rsa; p=MIIB...``."""
    return f"v=DKIM1; k=rsa; p={dkim_public_key_b64(private_pem)}"


def dkim_dns_record(domain: Domain) -> str:
    """The zone-file line to publish for ``domain``'s key, or "" when it has none."""
    if not domain.dkim_private_key:
        return ""
    value = dkim_txt_value(domain.dkim_private_key)
    chunks = " ".join(f'"{value[i : i + TXT_CHUNK]}"' for i in range(0, len(value), TXT_CHUNK))
    return f"{domain.dkim_selector or DEFAULT_SELECTOR}._domainkey.{domain.name}. IN TXT ( {chunks} )"


@transaction.atomic
def domain_dkim_key_create(*, domain: Domain, selector: str | None = None) -> Domain:
    """Give ``domain`` a new RSA key (replacing any old one) under ``selector``."""
    domain.dkim_private_key = dkim_private_key_make()
    domain.dkim_selector = selector or domain.dkim_selector or DEFAULT_SELECTOR
    domain.save(update_fields=["dkim_private_key", "dkim_selector"])
    return domain


def header_from_domain(raw: bytes) -> str:
    index = raw.find(b"\r\n\r\n")
    head = raw if index < 0 else raw[: index + 2]
    match = _FROM.search(head)
    if not match:
        return ""
    addresses = email.utils.getaddresses([match.group(1).decode("utf-8", "replace")])
    for _name, address in addresses:
        if "@" in address:
            return address.rpartition("@")[2].strip().lower()
    return ""


def signing_domain(raw: bytes, mail_from: str) -> Domain | None:
    candidates = [header_from_domain(raw), mail_from.rpartition("@")[2].lower() if "@" in mail_from else ""]
    for name in candidates:
        if not name:
            continue
        domain = Domain.objects.filter(name=name).exclude(dkim_private_key="").first()
        if domain is not None:
            return domain
    return None


def message_dkim_sign(raw: bytes, domain: Domain) -> bytes:
    """``raw`` (CRLF) with a DKIM-Signature header for ``domain`` prepended."""
    present = {h.split(b":", 1)[0].strip().lower() for h in re.findall(rb"(?m)^[^ \t\r\n][^:\r\n]*:", raw.split(b"\r\n\r\n", 1)[0])}
    include = [h for h in SIGNED_HEADERS if h in present] or [b"from"]
    signature = dkimpy.sign(
        raw,
        (domain.dkim_selector or DEFAULT_SELECTOR).encode("ascii"),
        domain.name.encode("ascii"),
        domain.dkim_private_key.encode("ascii"),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=include,
    )
    return signature + raw
