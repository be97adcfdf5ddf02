"""DNS for the SMTP server: dnspython pointed at ``DNS_NAMESERVERS``/``DNS_PORT`` when set.

Tests run a small DNS server on 127.0.0.1 and point these settings at it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from django.conf import settings

LOOKUP_LIFETIME = 5.0
CACHE_SIZE = 10000


class DnsTempError(Exception):
    """The DNS did not answer (timeout, SERVFAIL): results are temporary errors."""


class DnsNotCached(BaseException):  # noqa: N818 - not an error: "ask again where you may wait"
    """Under :func:`cache_only`, a lookup whose answer is not at hand (it would need the network).

    A BaseException, so that the libraries' ``except Exception`` (pyspf's, dkimpy's, ours around
    them) let it through instead of turning it into a result; and for the bare ``except:`` that
    pyspf has in places, :class:`CacheProbe` records the miss as well."""


class CacheProbe:
    """What a :func:`cache_only` block met: ``missed`` when some lookup needed the network."""

    def __init__(self) -> None:
        self.missed = False


_cache_only = threading.local()


@contextmanager
def cache_only() -> Iterator[CacheProbe]:
    """Lookups in this block (this thread) answer from the cache or raise :class:`DnsNotCached`:
    for an event loop, which must not wait on DNS, to do a message's SPF/DKIM/DMARC itself when
    every answer is at hand. Whatever the block computed is void when ``probe.missed``."""
    probe = CacheProbe()
    previous = getattr(_cache_only, "probe", None)
    _cache_only.probe = probe
    try:
        yield probe
    finally:
        _cache_only.probe = previous


_CACHES: dict[tuple[tuple[str, ...], int], dns.resolver.LRUCache] = {}
_CACHES_LOCK = threading.Lock()


def _shared_cache(nameservers: list[str], port: int) -> dns.resolver.LRUCache:
    """One answer cache per DNS configuration, shared by every thread (dnspython's cache is
    thread-safe, honours TTLs and keeps NXDOMAIN/NODATA answers too)."""
    key = (tuple(nameservers), port)
    with _CACHES_LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = _CACHES[key] = dns.resolver.LRUCache(max_size=CACHE_SIZE)
        return cache


_RESOLVERS: dict[tuple[tuple[str, ...], int], dns.resolver.Resolver] = {}


def make_resolver() -> dns.resolver.Resolver:
    """The shared resolver for the current settings (dnspython resolvers are thread-safe to
    query; building one per lookup costs more than the cached lookup itself)."""
    key = (tuple(settings.DNS_NAMESERVERS), int(settings.DNS_PORT))
    resolver = _RESOLVERS.get(key)
    if resolver is None:
        resolver = _RESOLVERS[key] = _new_resolver()
    return resolver


def _new_resolver() -> dns.resolver.Resolver:
    nameservers = list(settings.DNS_NAMESERVERS)
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = nameservers
        resolver.port = int(settings.DNS_PORT)
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.cache = _shared_cache([str(n) for n in resolver.nameservers], int(resolver.port))
    resolver.lifetime = LOOKUP_LIFETIME
    resolver.timeout = LOOKUP_LIFETIME / 2
    return resolver


# What lookup() answered lately: (nameservers, port, name, rdtype) → (expiry, records), kept until
# the expiry dnspython's cache gives the same answer (its TTL, or the negative TTL of NXDOMAIN).
# A hit through dnspython's cache still builds a Name, a resolution and a cache key each time:
# a third of the SPF/DMARC cost per message, which repeats the same few lookups.
_ANSWERS: dict[tuple[tuple[str, ...], int, str, str], tuple[float, tuple[dns.rdata.Rdata, ...]]] = {}


def lookup(name: str, rdtype: str) -> list[dns.rdata.Rdata]:
    """Records of ``rdtype`` at ``name``; [] when there are none; DnsTempError when DNS fails."""
    key = (tuple(settings.DNS_NAMESERVERS), int(settings.DNS_PORT), name.lower(), rdtype)
    known = _ANSWERS.get(key)
    if known is not None and known[0] > time.time():
        return list(known[1])
    probe = getattr(_cache_only, "probe", None)
    if probe is not None:
        probe.missed = True
        raise DnsNotCached(name)
    resolver = make_resolver()
    try:
        answer = resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as exc:
        _remember(key, _nxdomain_expiry(resolver, exc), ())
        return []
    except (dns.resolver.NoAnswer, dns.name.EmptyLabel, dns.name.LabelTooLong):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise DnsTempError(str(exc)) from None
    records = tuple(answer)
    _remember(key, answer.expiration, records)
    return list(records)


def _remember(
    key: tuple[tuple[str, ...], int, str, str], expiry: float | None, records: tuple[dns.rdata.Rdata, ...]
) -> None:
    if expiry is None or expiry <= time.time():
        return  # not cached by dnspython either (TTL 0, no negative TTL): asked again next time
    if len(_ANSWERS) >= CACHE_SIZE:
        _ANSWERS.clear()
    _ANSWERS[key] = (expiry, records)


def _nxdomain_expiry(resolver: dns.resolver.Resolver, exc: dns.resolver.NXDOMAIN) -> float | None:
    """When dnspython's cache forgets this NXDOMAIN (it keeps it under rdtype ANY), if it keeps it."""
    cache = resolver.cache
    if cache is None:
        return None
    expiry = None
    for qname in exc.qnames():
        cached = cache.get((qname, dns.rdatatype.ANY, dns.rdataclass.IN))
        if cached is None:
            return None
        expiry = cached.expiration if expiry is None else min(expiry, cached.expiration)
    return expiry


def txt_records(name: str) -> list[bytes]:
    """Each TXT record at ``name`` with its strings joined (RFC 7208 §3.3)."""
    return [b"".join(r.strings) for r in lookup(name, "TXT")]  # type: ignore[attr-defined]


_ASYNC_RESOLVERS: dict[tuple[tuple[str, ...], int], dns.asyncresolver.Resolver] = {}


def make_async_resolver() -> dns.asyncresolver.Resolver:
    """The event loop's resolver for the current settings, sharing the threads' answer cache
    (for lookups the protocol makes itself, such as the client's reverse DNS: no thread waits)."""
    key = (tuple(settings.DNS_NAMESERVERS), int(settings.DNS_PORT))
    resolver = _ASYNC_RESOLVERS.get(key)
    if resolver is None:
        sync = make_resolver()
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = list(sync.nameservers)
        resolver.port = sync.port
        resolver.cache = sync.cache
        resolver.lifetime = sync.lifetime
        resolver.timeout = sync.timeout
        _ASYNC_RESOLVERS[key] = resolver
    return resolver
