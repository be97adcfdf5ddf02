"""The client's forward-confirmed reverse DNS name, for the ``Received:`` field (RFC 5321 §4.4).

A PTR name counts only when one of its A/AAAA records is the client's address (FCrDNS);
otherwise the client is ``unknown``. The lookup starts when the connection opens (after any
PROXY header), runs on the event loop's own resolver and has a total time budget, so a silent
DNS server costs at most that budget once per connection and never holds a thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from .resolver import make_async_resolver

log = logging.getLogger(__name__)

MAX_PTR_NAMES = 5  # a client may publish many PTRs; checking each costs a lookup
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*$")


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def _records(name: str | dns.name.Name, rdtype: str, lifetime: float) -> list[str]:
    try:
        answer = await make_async_resolver().resolve(
            name, rdtype, search=False, raise_on_no_answer=False, lifetime=lifetime
        )
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers, dns.exception.Timeout,
            dns.name.EmptyLabel, dns.name.LabelTooLong):
        return []
    return [r.to_text() for r in answer]


async def _confirmed(ip: str, timeout: float) -> str | None:
    address = _address(ip)
    if address is None:
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    names = await _records(dns.reversename.from_address(str(address)), "PTR", timeout)
    rdtype = "A" if address.version == 4 else "AAAA"
    for name in names[:MAX_PTR_NAMES]:
        host = name.rstrip(".")
        if not _HOSTNAME.match(host):
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        for text in await _records(host + ".", rdtype, remaining):
            if _address(text) == address:
                return host.lower()
    return None


async def reverse_name(ip: str, *, timeout: float) -> str | None:
    """The forward-confirmed PTR name of ``ip``, or None (no PTR, no match, or no answer in time)."""
    try:
        return await asyncio.wait_for(_confirmed(ip, timeout), timeout)
    except TimeoutError:
        return None
    except Exception:  # noqa: BLE001 - a DNS oddity must never cost a message
        log.warning("reverse DNS of %s failed", ip, exc_info=True)
        return None
