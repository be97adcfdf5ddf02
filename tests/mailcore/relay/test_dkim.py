"""``manage.py dkimkey`` and the published record."""

from __future__ import annotations

import io
import re

import dkim
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mailcore.models import Domain
from mailcore.relay.dkim import dkim_dns_record, message_dkim_sign
from tests.conftest import make_message


def txt_from_record(record: str) -> bytes:
    return "".join(re.findall(r'"([^"]*)"', record)).encode()


def test_dkimkey_makes_a_2048_bit_key_and_prints_the_record_to_publish(domain_a: Domain) -> None:
    out = io.StringIO()
    call_command("dkimkey", "a.test", stdout=out)
    domain_a.refresh_from_db()
    assert "BEGIN RSA PRIVATE KEY" in domain_a.dkim_private_key
    record = out.getvalue().strip()
    assert record == dkim_dns_record(domain_a)
    assert record.startswith("mail._domainkey.a.test. IN TXT (")
    assert all(len(chunk) <= 255 for chunk in re.findall(r'"([^"]*)"', record))
    txt = txt_from_record(record)
    assert txt.startswith(b"v=DKIM1; k=rsa; p=")
    signed = message_dkim_sign(make_message(sender="alice@a.test"), domain_a)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: txt)
    assert dkim.DKIM(signed).verify(dnsfunc=lambda name, timeout=5: txt)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(domain_a.dkim_private_key.encode(), password=None)
    assert key.key_size == 2048  # type: ignore[union-attr]


def test_dkimkey_with_a_selector_and_show(domain_a: Domain) -> None:
    call_command("dkimkey", "a.test", "--selector", "s2026", stdout=io.StringIO())
    out = io.StringIO()
    call_command("dkimkey", "A.TEST", "--show", stdout=out)
    assert out.getvalue().startswith("s2026._domainkey.a.test. IN TXT")


def test_dkimkey_refuses_a_domain_that_is_not_ours(domain_a: Domain) -> None:
    with pytest.raises(CommandError, match="no such domain"):
        call_command("dkimkey", "elsewhere.test", stdout=io.StringIO())


def test_dns_record_is_empty_without_a_key(domain_a: Domain) -> None:
    assert dkim_dns_record(domain_a) == ""
