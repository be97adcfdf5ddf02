"""SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) for mail arriving on the MX port, and
the ``Authentication-Results:`` header (RFC 8601) that records them.

SPF is pyspf, DKIM is dkimpy; both get their DNS from :mod:`mailcore.smtp.resolver`. DMARC is
in :mod:`mailcore.smtp.dmarc`; its disposition (reject, quarantine) is applied by the handler
when ``SMTP_DMARC_ENFORCE`` is on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import dkim
import spf

from .dmarc import (
    AuthIdentities,
    Disposition,
    DmarcResult,
    FromError,
    dmarc_check,
    dmarc_disposition,
    header_from_domains,
    strongest,
)
from .resolver import DnsTempError, lookup, txt_records

log = logging.getLogger(__name__)

MAX_DKIM_SIGNATURES = 5


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


@dataclass
class AuthVerdict:
    """Everything learnt about a message on the MX port, and the header that records it."""

    header: str  # the full Authentication-Results: field, CRLF-terminated
    dmarc: list[DmarcResult] = field(default_factory=list)  # one per From domain
    from_error: str = ""  # why the From: field could not be evaluated (RFC 7489 §6.6.1)
    spf_result: str = "none"  # of the MAIL FROM identity (or the HELO one for <>)

    @property
    def disposition(self) -> Disposition:
        return strongest(self.dmarc)


def message_authenticate(*, authserv_id: str, ip: str, mail_from: str, helo: str, raw: bytes) -> AuthVerdict:
    """SPF, DKIM and DMARC for one message (DNS work: call it outside any transaction)."""
    spf_result, spf_identity = spf_check(ip=ip, mail_from=mail_from, helo=helo)
    spf_domain = spf_identity.rpartition("@")[2]
    dkim_results = dkim_check(raw)
    identities = AuthIdentities(spf_result, spf_domain, [r.domain for r in dkim_results if r.result == "pass"])
    try:
        from_domains = header_from_domains(raw)
        from_error = ""
    except FromError as exc:
        from_domains, from_error = [], str(exc)
    dmarc_results = []
    for domain in from_domains:
        result = dmarc_check(domain, identities)
        result.disposition = dmarc_disposition(result)
        dmarc_results.append(result)

    parts = [f"spf={spf_result} smtp.mailfrom={_value(spf_identity)}"]
    for r in dkim_results:
        if r.result == "none":
            parts.append("dkim=none")
        else:
            parts.append(f"dkim={r.result} header.d={_value(r.domain)} header.s={_value(r.selector)}")
    if from_error:
        parts.append("dmarc=permerror (no single From: address)")
    for dmarc in dmarc_results:
        dmarc_part = f"dmarc={dmarc.result}"
        if dmarc.policy:
            comment = f"p={_value(dmarc.policy)}"
            if dmarc.result == "fail":
                comment += f" dis={dmarc.disposition.value}"
            dmarc_part += f" ({comment})"
        dmarc_part += f" header.from={_value(dmarc.from_domain)}"
        parts.append(dmarc_part)
    header = f"Authentication-Results: {authserv_id};\r\n\t" + ";\r\n\t".join(parts) + "\r\n"
    return AuthVerdict(header=header, dmarc=dmarc_results, from_error=from_error, spf_result=spf_result)


def authentication_results(*, authserv_id: str, ip: str, mail_from: str, helo: str, raw: bytes) -> str:
    """The full ``Authentication-Results:`` header line (CRLF-terminated, folded)."""
    return message_authenticate(authserv_id=authserv_id, ip=ip, mail_from=mail_from, helo=helo, raw=raw).header


def _value(text: str) -> str:
    """A header value safe to put after ``ptype.property=`` (RFC 8601 §2.2 value)."""
    cleaned = re.sub(r"[^\w.@+=-]", "", text)
    return cleaned or '""'
