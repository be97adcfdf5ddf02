"""Where mail for a domain goes next: transport map, smarthost, or MX records (RFC 5321 §5.1).

Order of precedence: a ``RELAY_TRANSPORTS`` entry for the domain, then ``RELAY_SMARTHOST``, then
DNS. MX hosts are tried in preference order, equal preferences shuffled; a domain without MX
records is its own mail host (its A/AAAA records); this host (``MAIL_HOSTNAME``) and every MX
no better than it are skipped, a loop when none is left; a null MX (RFC 7505: one MX ``0 .``) says
the domain accepts no mail, a permanent failure. No ORM here.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from django.conf import settings

SMTP_PORT = 25
DNS_TIMEOUT = 10.0  # seconds for one whole lookup, all nameservers together
MAX_MX_HOSTS = 10  # tried per destination; more MX records than this are ignored
MAX_ADDRESSES_PER_HOST = 4


class RouteError(Exception):
    """No way to reach the domain; ``permanent`` decides between bounce and retry."""

    def __init__(self, message: str, *, permanent: bool, status: str = "") -> None:
        super().__init__(message)
        self.permanent = permanent
        # RFC 3463 status for the record and the DSN: 5.1.2 bad destination, 4.4.3 DNS trouble.
        self.status = status or ("5.1.2" if permanent else "4.4.3")

    @property
    def reply(self) -> str:
        """In the shape of an SMTP reply, so queue rows and DSNs read alike."""
        return f"{550 if self.permanent else 451} {self.status} {self}"


@dataclass(frozen=True)
class Hop:
    host: str  # name for logs, SNI and diagnostics
    address: str  # what to connect to: an IP literal, or a name for the system resolver
    port: int = SMTP_PORT
    preference: int = 0


@dataclass(frozen=True)
class Route:
    domain: str
    hops: list[Hop] = field(default_factory=list)
    smarthost: bool = False  # STARTTLS required and AUTH with RELAY_SMARTHOST_USER/PASSWORD
    username: str = ""
    password: str = ""


def resolver_make() -> dns.resolver.Resolver:
    """A resolver on ``DNS_NAMESERVERS``/``DNS_PORT`` when set, else the system's."""
    nameservers = list(settings.DNS_NAMESERVERS)
    resolver = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = nameservers
        resolver.port = int(settings.DNS_PORT)
    resolver.lifetime = DNS_TIMEOUT
    resolver.timeout = DNS_TIMEOUT / 2
    return resolver


def parse_hostport(text: str, default_port: int = SMTP_PORT) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or ``[host]`` into (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _query(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> dns.resolver.Answer | None:
    """An answer, None for "no such data", RouteError for NXDOMAIN (permanent) or trouble (temporary)."""
    try:
        return resolver.resolve(name, rdtype, search=False)
    except dns.resolver.NoAnswer:
        return None
    except dns.resolver.NXDOMAIN:
        raise RouteError(f"{name}: no such domain", permanent=True) from None
    except dns.resolver.NoNameservers as exc:
        raise RouteError(f"{name}: DNS servers failed ({exc})", permanent=False) from None
    except dns.exception.Timeout:
        raise RouteError(f"{name}: DNS lookup timed out", permanent=False) from None
    except dns.exception.DNSException as exc:
        raise RouteError(f"{name}: DNS error {exc}", permanent=False) from None


def host_addresses(resolver: dns.resolver.Resolver, host: str) -> list[str]:
    """A and AAAA addresses of ``host`` (IPv4 first: loopback tests and most MX hosts)."""
    if _is_ip(host):
        return [host]
    addresses: list[str] = []
    nxdomain: RouteError | None = None
    for rdtype in ("A", "AAAA"):
        try:
            answer = _query(resolver, host, rdtype)
        except RouteError as exc:
            if not exc.permanent:
                raise
            nxdomain = exc
            break
        if answer is not None:
            addresses.extend(r.to_text() for r in answer)
    if not addresses and nxdomain is not None:
        raise nxdomain
    return addresses[:MAX_ADDRESSES_PER_HOST]


def mx_hosts(
    resolver: dns.resolver.Resolver, domain: str, *, shuffle: Callable[[list[tuple[int, str]]], None] = random.shuffle
) -> list[tuple[int, str]] | None:
    """(preference, host) in the order to try, None when there is no MX record at all."""
    answer = _query(resolver, domain, "MX")
    if answer is None:
        return None
    records = [(int(r.preference), r.exchange.to_text(omit_final_dot=True).lower()) for r in answer]
    if len(records) == 1 and records[0][1] in ("", "."):
        raise RouteError(f"{domain}: null MX, the domain accepts no mail (RFC 7505)", permanent=True, status="5.1.10")
    records = [r for r in records if r[1] not in ("", ".")]
    shuffle(records)  # then a stable sort keeps equal preferences in shuffled order
    records.sort(key=lambda r: r[0])
    # This host is looked for among all the records, before the cut: the cut could drop it.
    return _without_this_host(domain, records)[:MAX_MX_HOSTS]


def _without_this_host(domain: str, records: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """RFC 5321 §5.1: when this host is one of the MX hosts, drop it and every MX of an equal or
    greater preference value (we are their backup, or they are ours); when that leaves none, the
    mail would come back to us: a configuration error, bounced as Postfix does ("mail for X
    loops back to myself", 5.4.6 routing loop, RFC 3463)."""
    local = settings.MAIL_HOSTNAME.lower().rstrip(".")
    ours = [preference for preference, host in records if host.rstrip(".") == local]
    if not ours:
        return records
    kept = [(preference, host) for preference, host in records if preference < min(ours)]
    if not kept:
        raise RouteError(
            f"mail for {domain} loops back to myself ({local} is its best MX)", permanent=True, status="5.4.6"
        )
    return kept


def route_resolve(domain: str, *, resolver: dns.resolver.Resolver | None = None) -> Route:
    """The hops to try for ``domain``, in order; RouteError when there is none."""
    domain = domain.lower().rstrip(".")
    transports: dict[str, tuple[str, int]] = settings.RELAY_TRANSPORTS
    if domain in transports:
        host, port = transports[domain]
        return Route(domain=domain, hops=[Hop(host=host, address=host, port=port)])
    if settings.RELAY_SMARTHOST:
        host, port = parse_hostport(settings.RELAY_SMARTHOST, default_port=587)
        return Route(
            domain=domain, hops=[Hop(host=host, address=host, port=port)], smarthost=True,
            username=settings.RELAY_SMARTHOST_USER, password=settings.RELAY_SMARTHOST_PASSWORD,
        )
    resolver = resolver or resolver_make()
    port = int(getattr(settings, "RELAY_MX_PORT", SMTP_PORT))
    found = mx_hosts(resolver, domain)
    # RFC 5321 §5.1: no MX, so the domain itself is the mail host ("implicit MX").
    records = [(0, domain)] if found is None else found
    hops: list[Hop] = []
    temporary: RouteError | None = None
    for preference, host in records:
        try:
            addresses = host_addresses(resolver, host)
        except RouteError as exc:
            temporary = exc if not exc.permanent else temporary
            continue
        hops.extend(Hop(host=host, address=a, port=port, preference=preference) for a in addresses)
    if not hops:
        if temporary is not None:
            raise temporary
        raise RouteError(f"{domain}: no address for any mail host", permanent=True)
    return Route(domain=domain, hops=hops)
