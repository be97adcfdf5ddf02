"""SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) for mail arriving on the MX port, and
the ``Authentication-Results:`` header (RFC 8601) that records them.

SPF is pyspf, DKIM is dkimpy; both get their DNS from :mod:`mailcore.smtp.resolver`. DMARC is
evaluated here: the policy record at ``_dmarc.<From domain>`` or else at the organisational
domain, relaxed or strict alignment of the SPF and DKIM identities with the From domain.
The organisational domain is taken by a simple rule, not the Public Suffix List: the last two
labels, or the last three when the second-to-last is a common second-level registry label
(``co.uk``, ``com.au``...). Results are recorded, not enforced: nothing is refused for them.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import logging
import re
from dataclasses import dataclass

import dkim
import spf

from mailcore.addresses import AddressError, normalize_domain

from .resolver import DnsTempError, lookup, txt_records

log = logging.getLogger(__name__)

MAX_DKIM_SIGNATURES = 5
_SECOND_LEVEL_REGISTRY = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go"})


# --- SPF -----------------------------------------------------------------------------------
def _spf_dns(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list[tuple[tuple[str, str], object]]:
    """pyspf's DNS hook (same contract as ``spf.DNSLookup_dnspython``), on our resolver."""
    try:
        records = lookup(name, qtype)
    except DnsTempError as exc:
        raise spf.TempError(f"DNS {exc}") from None
    out: list[tuple[tuple[str, str], object]] = []
    for rdata in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rdata.address))  # type: ignore[attr-defined]
        elif qtype == "MX":
            out.append(((name, qtype), (rdata.preference, rdata.exchange)))  # type: ignore[attr-defined]
        elif qtype == "PTR":
            out.append(((name, qtype), rdata.target.to_text(True)))  # type: ignore[attr-defined]
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rdata.strings))  # type: ignore[attr-defined]
    return out


# pyspf looks names up through this module-level function; this process's DNS is ours.
spf.DNSLookup = _spf_dns


def spf_check(*, ip: str, mail_from: str, helo: str) -> tuple[str, str]:
    """(result, the identity checked): result is pass/fail/softfail/neutral/none/temperror/permerror."""
    sender = mail_from or f"postmaster@{helo}"
    try:
        result, _explanation = spf.check2(i=ip, s=sender, h=helo, querytime=10)
    except Exception as exc:  # noqa: BLE001 - a library error must not lose mail
        log.warning("SPF check failed: %s", exc)
        result = "temperror"
    return str(result), sender


# --- DKIM ----------------------------------------------------------------------------------
def _dkim_dns(name: bytes | str, timeout: float = 5) -> bytes | None:
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    try:
        records = txt_records(text)
    except DnsTempError:
        raise dkim.DnsTimeoutError(f"no DNS answer for {text}") from None
    return records[0] if records else None


@dataclass
class DkimResult:
    result: str  # pass / fail / temperror / permerror / none
    domain: str = ""
    selector: str = ""


def dkim_check(raw: bytes) -> list[DkimResult]:
    count = len(re.findall(rb"(?im)^dkim-signature:", _headers(raw)))
    if count == 0:
        return [DkimResult("none")]
    results = []
    for idx in range(min(count, MAX_DKIM_SIGNATURES)):
        verifier = dkim.DKIM(raw, timeout=5)
        try:
            ok = verifier.verify(idx=idx, dnsfunc=_dkim_dns)
            result = "pass" if ok else "fail"
        except dkim.DnsTimeoutError:
            result = "temperror"
        except dkim.ValidationError as exc:
            # A signature that does not verify (e.g. body hash mismatch) fails (RFC 8601 §2.7.1).
            result = "fail" if "mismatch" in str(exc) else "permerror"
        except dkim.DKIMException:
            result = "permerror"
        except Exception as exc:  # noqa: BLE001
            log.warning("DKIM verification failed: %s", exc)
            result = "permerror"
        domain = (verifier.domain or b"").decode("ascii", "replace") if verifier.domain else ""
        selector = verifier.selector.decode("ascii", "replace") if isinstance(verifier.selector, bytes) else ""
        results.append(DkimResult(result, domain.lower(), selector))
    return results


def _headers(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


# --- DMARC ---------------------------------------------------------------------------------
def organizational_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL_REGISTRY and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _aligned(identity: str, from_domain: str, mode: str) -> bool:
    identity, from_domain = identity.lower(), from_domain.lower()
    if mode == "s":
        return identity == from_domain
    return organizational_domain(identity) == organizational_domain(from_domain)


def parse_dmarc_record(record: bytes) -> dict[str, str] | None:
    text = record.decode("ascii", "replace").strip()
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq:
            tags[key.strip().lower()] = value.strip()
    if tags.get("v") != "DMARC1" or not text.startswith("v"):
        return None
    return tags


def dmarc_record(from_domain: str) -> tuple[dict[str, str] | None, bool]:
    """(tags, found at the organisational domain rather than the From domain)."""
    for name, inherited in ((from_domain, False), (organizational_domain(from_domain), True)):
        if inherited and name == from_domain:
            break
        records = [r for r in (parse_dmarc_record(t) for t in txt_records(f"_dmarc.{name}")) if r]
        if len(records) == 1:
            return records[0], inherited
    return None, False


@dataclass
class DmarcResult:
    result: str  # pass / fail / none / temperror / permerror
    policy: str = ""
    from_domain: str = ""


def dmarc_check(*, from_domain: str, spf_result: str, spf_domain: str, dkim_results: list[DkimResult]) -> DmarcResult:
    if not from_domain:
        return DmarcResult("permerror")
    try:
        tags, inherited = dmarc_record(from_domain)
    except DnsTempError:
        return DmarcResult("temperror", from_domain=from_domain)
    if tags is None:
        return DmarcResult("none", from_domain=from_domain)
    policy = tags.get("sp", tags.get("p", "none")) if inherited else tags.get("p", "none")
    spf_ok = spf_result == "pass" and _aligned(spf_domain, from_domain, tags.get("aspf", "r"))
    dkim_ok = any(r.result == "pass" and _aligned(r.domain, from_domain, tags.get("adkim", "r")) for r in dkim_results)
    return DmarcResult("pass" if spf_ok or dkim_ok else "fail", policy, from_domain)


def header_from_domain(raw: bytes) -> str:
    """The domain of the single RFC 5322.From address, canonical; "" when there is not exactly one."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(_headers(raw))
    values = headers.get_all("From") or []
    addresses = email.utils.getaddresses([str(v) for v in values])
    if len(values) != 1 or len(addresses) != 1:
        return ""
    domain = addresses[0][1].rpartition("@")[2]
    try:
        return normalize_domain(domain)
    except AddressError:
        return ""


# --- the header ----------------------------------------------------------------------------
_FIELD_START = re.compile(rb"^[^ \t:]+:", re.MULTILINE)


def strip_forged_results(raw: bytes, authserv_id: str) -> bytes:
    """Remove ``Authentication-Results:`` fields that claim to be ours (RFC 8601 §5): only this
    server may speak for ``authserv_id``. Everything else stays byte for byte."""
    end = raw.find(b"\r\n\r\n")
    head, body = (raw, b"") if end < 0 else (raw[: end + 2], raw[end + 2 :])
    if b"authentication-results" not in head.lower():
        return raw
    starts = [m.start() for m in _FIELD_START.finditer(head)] + [len(head)]
    kept = []
    if starts[0] > 0:
        kept.append(head[: starts[0]])
    ours = authserv_id.lower().encode("ascii", "replace")
    for start, stop in zip(starts, starts[1:], strict=False):
        field = head[start:stop]
        name, _, value = field.partition(b":")
        if name.strip().lower() == b"authentication-results":
            claimed = re.split(rb"[;\s(]", value.strip(), maxsplit=1)[0].lower()
            if claimed == ours:
                continue
        kept.append(field)
    return b"".join(kept) + body


def authentication_results(*, authserv_id: str, ip: str, mail_from: str, helo: str, raw: bytes) -> str:
    """The full ``Authentication-Results:`` header line (CRLF-terminated, folded)."""
    spf_result, spf_identity = spf_check(ip=ip, mail_from=mail_from, helo=helo)
    spf_domain = spf_identity.rpartition("@")[2]
    dkim_results = dkim_check(raw)
    from_domain = header_from_domain(raw)
    dmarc = dmarc_check(from_domain=from_domain, spf_result=spf_result, spf_domain=spf_domain, dkim_results=dkim_results)

    parts = [f"spf={spf_result} smtp.mailfrom={_value(spf_identity)}"]
    for r in dkim_results:
        if r.result == "none":
            parts.append("dkim=none")
        else:
            parts.append(f"dkim={r.result} header.d={_value(r.domain)} header.s={_value(r.selector)}")
    dmarc_part = f"dmarc={dmarc.result}"
    if dmarc.policy:
        dmarc_part += f" (p={_value(dmarc.policy)})"
    if dmarc.from_domain:
        dmarc_part += f" header.from={dmarc.from_domain}"
    parts.append(dmarc_part)
    return f"Authentication-Results: {authserv_id};\r\n\t" + ";\r\n\t".join(parts) + "\r\n"


def _value(text: str) -> str:
    """A header value safe to put after ``ptype.property=`` (RFC 8601 §2.2 value)."""
    cleaned = re.sub(r"[^\w.@+=-]", "", text)
    return cleaned or '""'
