"""Routing against a DNS server on 127.0.0.1 that answers from a dict."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailcore.relay.routing import Hop, RouteError, mx_hosts, parse_hostport, resolver_make, route_resolve

from .servers import DnsServer

ZONE: dict[tuple[str, str], list[str] | str] = {
    ("multi.test", "MX"): ["20 backup.multi.test.", "10 mx1.multi.test.", "10 mx2.multi.test."],
    ("mx1.multi.test", "A"): ["127.0.0.11"],
    ("mx2.multi.test", "A"): ["127.0.0.12"],
    ("backup.multi.test", "A"): ["127.0.0.20"],
    ("backup.multi.test", "AAAA"): ["::1"],
    ("plain.test", "A"): ["127.0.0.30"],
    ("nullmx.test", "MX"): ["0 ."],
    ("broken.test", "MX"): "SERVFAIL",
    ("dangling.test", "MX"): ["10 nowhere.dangling.test."],
    # mail.here.test is this host (MAIL_HOSTNAME in the fixture)
    ("backup-here.test", "MX"): ["30 after.backup-here.test.", "20 Mail.Here.Test.", "20 peer.backup-here.test.",
                                 "10 best.backup-here.test."],
    ("best.backup-here.test", "A"): ["127.0.0.41"],
    ("peer.backup-here.test", "A"): ["127.0.0.42"],
    ("after.backup-here.test", "A"): ["127.0.0.43"],
    ("loop.test", "MX"): ["10 mail.here.test.", "20 other.loop.test."],
    # Nine better MXs, then this host and a peer of equal preference: twelve records, cut to ten.
    ("many.test", "MX"): [f"{i} mx{i}.many.test." for i in range(9)] + ["50 mail.here.test.", "50 peer.many.test."],
    **{(f"mx{i}.many.test", "A"): [f"127.0.1.{i + 1}"] for i in range(9)},
    ("peer.many.test", "A"): ["127.0.1.50"],
    ("other.loop.test", "A"): ["127.0.0.44"],
    ("mail.here.test", "A"): ["127.0.0.1"],
}


@pytest.fixture
def dns_server(settings: pytest.FixtureRequest) -> Iterator[DnsServer]:
    with DnsServer(ZONE) as server:
        settings.DNS_NAMESERVERS = ["127.0.0.1"]  # type: ignore[attr-defined]
        settings.DNS_PORT = server.port  # type: ignore[attr-defined]
        settings.RELAY_TRANSPORTS = {}  # type: ignore[attr-defined]
        settings.RELAY_SMARTHOST = ""  # type: ignore[attr-defined]
        settings.RELAY_MX_PORT = 25  # type: ignore[attr-defined]
        settings.MAIL_HOSTNAME = "mail.here.test"  # type: ignore[attr-defined]
        yield server


def test_mx_hosts_come_in_preference_order(dns_server: DnsServer) -> None:
    hosts = mx_hosts(resolver_make(), "multi.test")
    assert hosts is not None
    assert [p for p, _ in hosts] == [10, 10, 20]
    assert {h for _, h in hosts[:2]} == {"mx1.multi.test", "mx2.multi.test"}
    assert hosts[2] == (20, "backup.multi.test")


def test_equal_preferences_are_shuffled(dns_server: DnsServer) -> None:
    resolver = resolver_make()
    firsts = set()
    for _ in range(40):
        hosts = mx_hosts(resolver, "multi.test")
        assert hosts is not None
        firsts.add(hosts[0][1])
        if len(firsts) == 2:
            break
    assert firsts == {"mx1.multi.test", "mx2.multi.test"}


def test_route_resolves_every_mx_to_addresses_in_order(dns_server: DnsServer) -> None:
    route = route_resolve("multi.test")
    assert {h.address for h in route.hops[:2]} == {"127.0.0.11", "127.0.0.12"}
    assert [(h.host, h.address) for h in route.hops[2:]] == [("backup.multi.test", "127.0.0.20"), ("backup.multi.test", "::1")]
    assert all(h.port == 25 for h in route.hops)


def test_domain_without_mx_falls_back_to_its_own_address(dns_server: DnsServer) -> None:
    route = route_resolve("plain.test")
    assert route.hops == [Hop(host="plain.test", address="127.0.0.30", port=25, preference=0)]


def test_null_mx_is_a_permanent_failure(dns_server: DnsServer) -> None:
    with pytest.raises(RouteError) as info:
        route_resolve("nullmx.test")
    assert info.value.permanent
    assert "7505" in str(info.value)


def test_nonexistent_domain_is_a_permanent_failure(dns_server: DnsServer) -> None:
    with pytest.raises(RouteError) as info:
        route_resolve("nosuch.test")
    assert info.value.permanent


def test_servfail_is_a_temporary_failure(dns_server: DnsServer) -> None:
    with pytest.raises(RouteError) as info:
        route_resolve("broken.test")
    assert not info.value.permanent


def test_mx_without_any_address_is_a_permanent_failure(dns_server: DnsServer) -> None:
    with pytest.raises(RouteError) as info:
        route_resolve("dangling.test")
    assert info.value.permanent


def test_mx_records_from_this_host_on_are_dropped(dns_server: DnsServer) -> None:
    # RFC 5321 §5.1: this host (any case, with or without the final dot) and every MX of an equal
    # or greater preference value go; a backup MX hands mail only to better ones.
    route = route_resolve("backup-here.test")
    assert [(h.host, h.address) for h in route.hops] == [("best.backup-here.test", "127.0.0.41")]


def test_a_domain_whose_best_mx_is_this_host_is_a_permanent_loop(dns_server: DnsServer) -> None:
    with pytest.raises(RouteError) as info:
        route_resolve("loop.test")
    assert info.value.permanent
    assert info.value.reply == "550 5.4.6 mail for loop.test loops back to myself (mail.here.test is its best MX)"


def test_this_host_is_found_beyond_the_mx_hosts_cut(dns_server: DnsServer) -> None:
    # The peer sorts before this host among equals, so a cut made first would keep the peer as
    # the tenth MX and lose the sight of this host that drops it.
    def peer_first(records: list[tuple[int, str]]) -> None:
        records.sort(key=lambda r: r[1] == "mail.here.test")

    hosts = mx_hosts(resolver_make(), "many.test", shuffle=peer_first)
    assert hosts == [(i, f"mx{i}.many.test") for i in range(9)]


def test_mx_port_setting_applies_to_mx_hosts(dns_server: DnsServer, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_MX_PORT = 2525  # type: ignore[attr-defined]
    assert {h.port for h in route_resolve("multi.test").hops} == {2525}


def test_transport_map_wins_over_dns(dns_server: DnsServer, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_TRANSPORTS = {"multi.test": ("127.0.0.99", 2600)}  # type: ignore[attr-defined]
    route = route_resolve("Multi.Test.")
    assert route.hops == [Hop(host="127.0.0.99", address="127.0.0.99", port=2600)]
    assert dns_server.queries == []


def test_smarthost_takes_everything_not_in_the_transport_map(dns_server: DnsServer, settings: pytest.FixtureRequest) -> None:
    settings.RELAY_SMARTHOST = "relay.example:2587"  # type: ignore[attr-defined]
    settings.RELAY_SMARTHOST_USER = "me"  # type: ignore[attr-defined]
    settings.RELAY_SMARTHOST_PASSWORD = "pw"  # type: ignore[attr-defined]
    route = route_resolve("plain.test")
    assert route.smarthost and route.username == "me" and route.password == "pw"
    assert route.hops == [Hop(host="relay.example", address="relay.example", port=2587)]


def test_parse_hostport_accepts_ipv6_in_brackets() -> None:
    assert parse_hostport("[::1]:2525") == ("::1", 2525)
    assert parse_hostport("mx.test") == ("mx.test", 25)
    assert parse_hostport("mx.test:26") == ("mx.test", 26)
