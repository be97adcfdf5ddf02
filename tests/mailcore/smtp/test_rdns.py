"""Reverse DNS in Received: (RFC 5321 §4.4): the client's PTR name, only when forward-confirmed,
else "unknown"; a silent or failing DNS costs a bounded wait and never a message."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailcore.models import Message
from mailcore.net.proxy import build_v1, build_v2
from mailcore.smtp.protocol import Role
from mailcore.smtp.rdns import reverse_name
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import DnsZone, RawClient, StartServer, connect

pytestmark = pytest.mark.django_db(transaction=True)


def received_from(mx) -> str:
    client = connect(mx)
    try:
        assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}
    finally:
        client.close()
    raw = bytes(Message.objects.order_by("-id").first().blob.data).decode()
    return next(line for line in raw.split("\r\n") if line.startswith("Received: from "))


def test_forward_confirmed_ptr_name_is_in_received(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add_ptr("127.0.0.1", "Mail.Client.Example")
    dns_zone.add("mail.client.example", "A", "127.0.0.1")
    assert received_from(mx) == "Received: from client.example (mail.client.example [127.0.0.1])"


def test_ptr_whose_name_points_elsewhere_is_unknown(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add_ptr("127.0.0.1", "paypal.example")
    dns_zone.add("paypal.example", "A", "192.0.2.1")
    assert received_from(mx) == "Received: from client.example (unknown [127.0.0.1])"


def test_ptr_whose_name_does_not_resolve_is_unknown(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add_ptr("127.0.0.1", "ghost.example")
    assert received_from(mx) == "Received: from client.example (unknown [127.0.0.1])"


def test_any_of_several_ptr_names_may_confirm(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.add_ptr("127.0.0.1", "a.example")
    dns_zone.add_ptr("127.0.0.1", "b.example")
    dns_zone.add("a.example", "A", "192.0.2.1")
    dns_zone.add("b.example", "A", "192.0.2.2")
    dns_zone.add("b.example", "A", "127.0.0.1")
    assert received_from(mx) == "Received: from client.example (b.example [127.0.0.1])"


def test_ptr_name_that_is_no_host_name_is_not_written(mx, alice, dns_zone: DnsZone) -> None:
    # A PTR can hold any bytes; one that would break out of the header comment is ignored.
    dns_zone.add_ptr("127.0.0.1", "evil\\)\\013\\010X-Injected:\\032yes.example")
    assert received_from(mx) == "Received: from client.example (unknown [127.0.0.1])"


def test_servfail_on_the_reverse_zone_is_unknown(mx, alice, dns_zone: DnsZone) -> None:
    dns_zone.servfail.add("1.0.0.127.in-addr.arpa")
    assert received_from(mx) == "Received: from client.example (unknown [127.0.0.1])"


def test_silent_reverse_dns_is_unknown_within_the_budget(start_server: StartServer, alice, dns_zone) -> None:
    dns_zone.silent.add("1.0.0.127.in-addr.arpa")
    mx = start_server(Role.MX, rdns_timeout=0.3)
    assert received_from(mx) == "Received: from client.example (unknown [127.0.0.1])"
    assert ("1.0.0.127.in-addr.arpa", "PTR") in dns_zone.queries


def test_silent_forward_lookup_is_unknown_too(start_server: StartServer, alice, dns_zone) -> None:
    dns_zone.add_ptr("127.0.0.1", "slow.example")
    dns_zone.silent.add("slow.example")
    mx = start_server(Role.MX, rdns_timeout=0.3)
    assert received_from(mx) == "Received: from client.example (unknown [127.0.0.1])"


@pytest.mark.parametrize(
    ("header", "rdtype", "address", "literal"),
    [
        (build_v1(("192.0.2.44", 5555), ("127.0.0.1", 25)), "A", "192.0.2.44", "192.0.2.44"),
        (build_v2(("2001:db8::44", 5555)), "AAAA", "2001:db8::44", "IPv6:2001:db8::44"),
    ],
)
def test_the_proxied_client_address_is_the_one_looked_up(
    start_server: StartServer, alice, dns_zone: DnsZone, header, rdtype, address, literal
) -> None:
    dns_zone.add_ptr(address, "relay.client.example")
    dns_zone.add("relay.client.example", rdtype, address)
    mx = start_server(Role.MX, proxy_protocol=True)
    with RawClient(mx, greet=False) as raw:
        raw.send(header)
        assert raw.reply().startswith(b"220 ")
        assert raw.command(b"EHLO client.example").startswith(b"250")
        raw.command(b"MAIL FROM:<carol@example.org>")
        raw.command(b"RCPT TO:<alice@a.test>")
        raw.command(b"DATA")
        raw.send(make_message() + b".\r\n")
        assert raw.reply().startswith(b"250 2.0.0")
    stored = bytes(Message.objects.get().blob.data)
    assert f"Received: from client.example (relay.client.example [{literal}])".encode() in stored


def test_ipv4_mapped_ipv6_peer_is_looked_up_as_ipv4(dns_zone: DnsZone, settings) -> None:
    dns_zone.add_ptr("192.0.2.9", "mapped.example")
    dns_zone.add("mapped.example", "A", "192.0.2.9")
    assert asyncio.run(reverse_name("::ffff:192.0.2.9", timeout=2)) == "mapped.example"
    assert asyncio.run(reverse_name("not an address", timeout=2)) is None


def test_lookups_of_closed_connections_are_cancelled(smtp_servers, start_server: StartServer, alice, dns_zone) -> None:
    # A connection flood against a silent reverse zone: each lookup would otherwise outlive its
    # connection for its whole budget (and be destroyed pending if the loop stops meanwhile).
    dns_zone.silent.add("1.0.0.127.in-addr.arpa")
    mx = start_server(Role.MX, rdns_timeout=60)
    for _ in range(20):
        client = RawClient(mx)
        client.command(b"QUIT")
        client.sock.close()

    async def lookups() -> int:
        return sum(1 for t in asyncio.all_tasks() if getattr(t.get_coro(), "__name__", "") == "reverse_name")

    deadline = time.monotonic() + 5
    while (pending := asyncio.run_coroutine_threadsafe(lookups(), smtp_servers.loop).result(5)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending == 0
