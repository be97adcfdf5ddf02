"""DMARC (RFC 7489) for mail arriving on the MX port: policy discovery, alignment, disposition.

The organisational domain comes from the Public Suffix List snapshot bundled with the
``publicsuffixlist`` package (no fetch at run time; a package update brings a newer list).
DNS goes through :mod:`mailcore.smtp.resolver`. What is done with the verdict (refuse, file in
Junk, deliver) is decided by :func:`dmarc_disposition` and applied in ``handler.py``.
"""

from __future__ import annotations

import email.utils
import enum
import functools
import random
import re
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from mailcore.addresses import AddressError, normalize_domain
from mailcore.mime.addresses import parse_address_list
from mailcore.mime.headers import scan_header_block, unfold

from .resolver import DnsTempError, txt_records

POLICIES = ("none", "quarantine", "reject")
MAX_FROM_DOMAINS = 5  # each costs up to two DNS lookups
_ALIGNMENT_MODES = ("r", "s")


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the bundled list; unknown TLDs count as public suffixes ("*" rule)


def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label; a public suffix itself is its own."""
    name = domain.lower().rstrip(".")
    return _psl().privatesuffix(name) or name


def _aligned(identity: str, from_domain: str, mode: str) -> bool:
    identity, from_domain = identity.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not identity:
        return False
    if mode == "s":
        return identity == from_domain
    return organizational_domain(identity) == organizational_domain(from_domain)


@dataclass(frozen=True)
class DmarcRecord:
    policy: str  # none / quarantine / reject
    subdomain_policy: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


class RecordError(ValueError):
    """A ``v=DMARC1`` record that names no usable policy (RFC 7489 §6.6.3: it is discarded)."""


def parse_dmarc_record(text: str) -> DmarcRecord:
    """Parse one record that starts with ``v=DMARC1``. Unknown tags are ignored and known ones
    with bad values fall back to their defaults (RFC 7489 §6.3); a missing or invalid ``p`` is a
    RecordError unless ``rua`` is present, which makes it ``p=none`` (§6.6.3 step 6)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq:
            tags.setdefault(key.strip().lower(), value.strip())
    policy = tags.get("p", "").lower()
    if policy not in POLICIES:
        if "rua" not in tags:
            raise RecordError(f"no valid p= tag in {text[:80]!r}")
        policy = "none"
    subdomain_policy = tags.get("sp", "").lower()
    if subdomain_policy not in POLICIES:
        subdomain_policy = policy
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    pct_text = tags.get("pct", "100")
    pct = int(pct_text) if pct_text.isdigit() and int(pct_text) <= 100 else 100
    return DmarcRecord(
        policy=policy,
        subdomain_policy=subdomain_policy,
        adkim=adkim if adkim in _ALIGNMENT_MODES else "r",
        aspf=aspf if aspf in _ALIGNMENT_MODES else "r",
        pct=pct,
    )


def _is_dmarc(text: str) -> bool:
    # RFC 7489 §6.6.3 step 2: records not starting with "v=DMARC1" are discarded.
    head, _, _ = text.partition(";")
    key, eq, value = head.partition("=")
    return bool(eq) and key.strip() == "v" and value.strip() == "DMARC1"


class Lookup(enum.Enum):
    FOUND = "found"
    NONE = "none"
    INVALID = "invalid"  # several DMARC records, or one with no usable policy


def dmarc_record(from_domain: str) -> tuple[Lookup, DmarcRecord | None, bool]:
    """(what was found, the record, found at the organisational domain rather than the From domain).

    Raises DnsTempError when DNS does not answer (the result is then ``temperror``).
    """
    organisational = organizational_domain(from_domain)
    names = [(from_domain, False)] + ([(organisational, True)] if organisational != from_domain else [])
    for name, inherited in names:
        texts = [t.decode("utf-8", "replace") for t in txt_records(f"_dmarc.{name}")]
        records = [t for t in texts if _is_dmarc(t)]
        if not records:
            continue
        if len(records) > 1:
            return Lookup.INVALID, None, inherited  # §6.6.3 step 5: DMARC is not applied
        try:
            return Lookup.FOUND, parse_dmarc_record(records[0]), inherited
        except RecordError:
            return Lookup.INVALID, None, inherited
    return Lookup.NONE, None, False


class Disposition(enum.Enum):
    """What the receiver does with the message (RFC 7489 §6.6.4)."""

    DELIVER = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass
class DmarcResult:
    result: str  # pass / fail / none / temperror / permerror
    from_domain: str = ""
    policy: str = ""  # the policy that applies to this domain (p, or sp for a subdomain)
    pct: int = 100
    disposition: Disposition = Disposition.DELIVER


@dataclass
class AuthIdentities:
    """What SPF and DKIM authenticated, for alignment."""

    spf_result: str
    spf_domain: str
    dkim_passed: list[str] = field(default_factory=list)  # d= of every signature that passed


def dmarc_check(from_domain: str, identities: AuthIdentities) -> DmarcResult:
    try:
        found, record, inherited = dmarc_record(from_domain)
    except DnsTempError:
        return DmarcResult("temperror", from_domain)
    if found is Lookup.INVALID:
        return DmarcResult("permerror", from_domain)  # treated as no policy
    if record is None:
        return DmarcResult("none", from_domain)
    policy = record.subdomain_policy if inherited else record.policy
    spf_ok = identities.spf_result == "pass" and _aligned(identities.spf_domain, from_domain, record.aspf)
    dkim_ok = any(_aligned(d, from_domain, record.adkim) for d in identities.dkim_passed)
    return DmarcResult("pass" if spf_ok or dkim_ok else "fail", from_domain, policy, record.pct)


_STRICTER = {"none": 0, "quarantine": 1, "reject": 2}
_SAMPLED_OUT = {"reject": Disposition.QUARANTINE, "quarantine": Disposition.DELIVER, "none": Disposition.DELIVER}


def dmarc_disposition(result: DmarcResult, *, sample: float | None = None) -> Disposition:
    """The policy applied to a failing message, with ``pct`` sampling: a message outside the
    sample gets the next weaker policy (RFC 7489 §6.6.4: reject becomes quarantine,
    quarantine becomes none). ``sample`` in [0, 100) stands in for the random draw."""
    if result.result != "fail" or result.policy not in ("quarantine", "reject"):
        return Disposition.DELIVER
    draw = random.uniform(0, 100) if sample is None else sample
    if draw < result.pct:
        return Disposition(result.policy)
    return _SAMPLED_OUT[result.policy]


def strongest(results: list[DmarcResult]) -> Disposition:
    order = {Disposition.DELIVER: 0, Disposition.QUARANTINE: 1, Disposition.REJECT: 2}
    return max((r.disposition for r in results), key=order.__getitem__, default=Disposition.DELIVER)


# --- the RFC 5322.From domains ---------------------------------------------------------------
class FromError(ValueError):
    """The message has no usable From: field; the text is for the SMTP reply."""


# A group with no member (RFC 5322 §3.4), "undisclosed-recipients:;" being the usual one.
_EMPTY_GROUP_RE = re.compile(r'^\s*[^:;<>@",]*:\s*;\s*$')


def _from_fields(raw: bytes) -> list[str]:
    """The unfolded value of every From: field, found as every reader here finds fields
    (``mailcore.mime.headers``: spaces before the colon, any case), so that no From: a reader
    shows escapes the evaluation and none is evaluated that the readers do not see."""
    _end, fields = scan_header_block(raw, 0, len(raw))
    return [unfold(f.raw_value(raw)) for f in fields if f.name.strip().lower() == "from"]


# The IDNA encoding in normalize_domain costs more than the rest of the From: evaluation, and a
# mail server sees the same few sender domains over and over; only valid names are kept (an
# invalid one raises every time).
_canonical_domain = functools.lru_cache(maxsize=4096)(normalize_domain)


def _domain_of(address: str) -> str:
    if not address.strip():  # what the standard library makes of an empty group or of garbage
        raise FromError("the From: header field holds something that is not an address")
    local, at, domain = address.rpartition("@")
    if not at or not local.strip() or not domain.strip():
        raise FromError("the From: header field holds an address without a domain")
    try:
        return _canonical_domain(domain.strip())
    except AddressError:
        raise FromError("the From: header field holds an invalid domain") from None


def header_from_domains(raw: bytes) -> list[str]:
    """Every distinct domain of the RFC 5322.From field, canonical, in order.

    RFC 7489 §6.6.1: a message without exactly one From field, or whose From holds no address
    with a domain, cannot be evaluated; FromError says which (the reply tells the sender why).
    The domains of both address parsers are taken (the standard library's and the one that
    makes the IMAP ENVELOPE and the web's sender), so an odd From: cannot show a domain that
    was not evaluated.
    """
    values = _from_fields(raw)
    if not values:
        raise FromError("the message has no From: header field (RFC 5322 section 3.6)")
    if len(values) > 1:
        raise FromError("the message has more than one From: header field (RFC 5322 section 3.6)")
    value = values[0]
    if not value.strip():
        raise FromError("the From: header field is empty")
    if _EMPTY_GROUP_RE.match(value):
        raise FromError(
            "the From: header field is a group with no address (such as undisclosed-recipients:;)"
        )
    domains: list[str] = []
    # Entries without a host are the group start and end markers.
    shown = [
        f"{mailbox or ''}@{host}"
        for _name, _route, mailbox, host in parse_address_list(value)
        if host is not None
    ]
    for address in [address for _name, address in email.utils.getaddresses([value])] + shown:
        canonical = _domain_of(address)
        if canonical not in domains:
            domains.append(canonical)
    if len(domains) > MAX_FROM_DOMAINS:
        raise FromError(f"the From: header field names more than {MAX_FROM_DOMAINS} domains")
    if not domains:
        raise FromError("the From: header field holds no address")
    return domains
