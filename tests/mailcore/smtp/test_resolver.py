"""The SMTP server's DNS lookups: answers are reused for their TTL, and no longer."""

from __future__ import annotations

import time

import pytest

from mailcore.smtp import resolver
from mailcore.smtp.resolver import DnsTempError, lookup, txt_records


def _asked(zone, name: str, rdtype: str = "TXT") -> int:
    return zone.queries.count((name, rdtype))


def test_an_answer_is_reused_for_its_ttl_then_asked_again(dns_zone) -> None:
    dns_zone.ttl = 1
    dns_zone.add("ttl.example.org", "TXT", "v=spf1 -all")
    assert txt_records("ttl.example.org") == [b"v=spf1 -all"]
    dns_zone.records[("ttl.example.org", "TXT")] = ["v=spf1 +all"]
    assert txt_records("ttl.example.org") == [b"v=spf1 -all"]  # within the TTL: as it was
    assert txt_records("TTL.Example.ORG") == [b"v=spf1 -all"]  # names are case-insensitive
    assert _asked(dns_zone, "ttl.example.org") == 1
    time.sleep(1.1)
    assert txt_records("ttl.example.org") == [b"v=spf1 +all"]
    assert _asked(dns_zone, "ttl.example.org") == 2


def test_a_zero_ttl_answer_is_asked_every_time(dns_zone) -> None:
    dns_zone.add("zero.example.org", "A", "192.0.2.1")
    assert [r.address for r in lookup("zero.example.org", "A")] == ["192.0.2.1"]
    dns_zone.records[("zero.example.org", "A")] = ["192.0.2.2"]
    assert [r.address for r in lookup("zero.example.org", "A")] == ["192.0.2.2"]
    assert _asked(dns_zone, "zero.example.org", "A") == 2


def test_nxdomain_is_reused_for_its_negative_ttl_only(dns_zone) -> None:
    dns_zone.negative_ttl = 1
    assert lookup("_dmarc.nx.example.org", "TXT") == []
    dns_zone.add("_dmarc.nx.example.org", "TXT", "v=DMARC1; p=reject")
    assert lookup("_dmarc.nx.example.org", "TXT") == []  # the negative answer, still fresh
    assert _asked(dns_zone, "_dmarc.nx.example.org") == 1
    time.sleep(1.1)
    assert txt_records("_dmarc.nx.example.org") == [b"v=DMARC1; p=reject"]


def test_nxdomain_with_a_zero_negative_ttl_is_not_kept(dns_zone) -> None:
    dns_zone.negative_ttl = 0
    assert lookup("gone.example.org", "TXT") == []
    dns_zone.add("gone.example.org", "TXT", "back")
    assert txt_records("gone.example.org") == [b"back"]


def test_a_failure_is_never_kept(dns_zone) -> None:
    dns_zone.ttl = 60
    dns_zone.servfail.add("flaky.example.org")
    with pytest.raises(DnsTempError):
        lookup("flaky.example.org", "TXT")
    dns_zone.servfail.clear()
    dns_zone.add("flaky.example.org", "TXT", "ok")
    assert txt_records("flaky.example.org") == [b"ok"]


def test_answers_are_kept_per_name_server(dns_zone, settings) -> None:
    dns_zone.ttl = 60
    dns_zone.add("where.example.org", "TXT", "first server")
    assert txt_records("where.example.org") == [b"first server"]
    settings.DNS_PORT = 9  # discard: nothing answers there
    with pytest.raises(DnsTempError):
        resolver.LOOKUP_LIFETIME = 0.3
        try:
            resolver._RESOLVERS.clear()
            lookup("where.example.org", "TXT")
        finally:
            resolver.LOOKUP_LIFETIME = 5.0
            resolver._RESOLVERS.clear()


def test_a_caller_cannot_change_what_is_kept(dns_zone) -> None:
    dns_zone.ttl = 60
    dns_zone.add("list.example.org", "TXT", "one")
    lookup("list.example.org", "TXT").clear()
    assert txt_records("list.example.org") == [b"one"]
