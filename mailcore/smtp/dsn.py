"""RFC 3461 DSN parameters of MAIL FROM (RET, ENVID) and RCPT TO (NOTIFY, ORCPT); xtext (no I/O).

Values are checked here and kept in their xtext form (hex in upper case), which is what the
relay passes on to a next hop that offers DSN; reports show them decoded
(:func:`xtext_decode`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2 (the whole "addr-type;xtext" value)
NOTIFY_KEYWORDS = ("SUCCESS", "FAILURE", "DELAY")  # and NEVER, alone
RET_VALUES = ("FULL", "HDRS")

_XTEXT = re.compile(r"^(?:[!-*,-<>-~]|\+[0-9A-Fa-f]{2})*$")
_HEXCHAR = re.compile(r"\+([0-9A-Fa-f]{2})")
_ADDR_TYPE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$")  # an atom (RFC 3461 §4.2)


class DsnParamError(ValueError):
    """A DSN parameter that cannot be accepted; the text is a sentence for the 501 reply."""


def xtext_decode(text: str) -> str:
    """``+XX`` → the character; the caller has checked the syntax (or gets it as it is)."""
    return _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)


def xtext_encode(text: str) -> str:
    """RFC 3461 §4: "+", "=" and anything outside "!".."~" as ``+XX``."""
    return "".join(ch if "!" <= ch <= "~" and ch not in "+=" else f"+{ord(ch):02X}" for ch in text)


def orcpt_for(address: str) -> str:
    """The ORCPT synthesised for mail forwarded from ``address`` (an alias), or "" when none can
    be given: RFC 3461 xtext carries only US-ASCII and the value is at most MAX_ORCPT characters;
    ORCPT is optional, so an address that does not fit goes without one rather than failing."""
    if not address.isascii():
        return ""
    value = f"rfc822;{xtext_encode(address)}"
    return value if len(value) <= MAX_ORCPT else ""


def _xtext_checked(value: str, what: str) -> str:
    """The canonical xtext (upper-case hex) of a well-formed value whose decoded text is printable."""
    if not _XTEXT.match(value):
        raise DsnParamError(f"{what} is not valid xtext (RFC 3461 section 4)")
    canonical = _HEXCHAR.sub(lambda m: "+" + m.group(1).upper(), value)
    decoded = xtext_decode(canonical)
    if not all(" " <= ch <= "~" for ch in decoded):
        raise DsnParamError(f"{what} must decode to printable US-ASCII (RFC 3461 section 4)")
    return canonical


@dataclass(frozen=True)
class MailDsn:
    ret: str = ""  # FULL / HDRS / "" (not given)
    envid: str = ""  # xtext


@dataclass(frozen=True)
class RcptDsn:
    notify: str = ""  # e.g. "SUCCESS,FAILURE" or "NEVER"; "" = not given (FAILURE,DELAY)
    orcpt: str = ""  # "addr-type;xtext"


def mail_dsn_params(params: dict[str, str | None]) -> MailDsn:
    """Take RET and ENVID out of ``params`` (duplicates were refused by the parser)."""
    ret = params.pop("RET", "")
    envid = params.pop("ENVID", "")
    if ret is None or (ret and ret.upper() not in RET_VALUES):
        raise DsnParamError("RET must be FULL or HDRS")
    if envid is None:
        raise DsnParamError("ENVID needs a value")
    if len(envid) > MAX_ENVID:
        raise DsnParamError(f"ENVID is longer than {MAX_ENVID} characters")
    return MailDsn(ret=ret.upper(), envid=_xtext_checked(envid, "ENVID") if envid else "")


def rcpt_dsn_params(params: dict[str, str | None]) -> RcptDsn:
    """Take NOTIFY and ORCPT out of ``params``."""
    notify = params.pop("NOTIFY", "")
    orcpt = params.pop("ORCPT", "")
    if notify is None:
        raise DsnParamError("NOTIFY needs a value: NEVER, or SUCCESS, FAILURE and/or DELAY")
    keywords = [k.upper() for k in notify.split(",")] if notify else []
    if keywords:
        if any(k not in (*NOTIFY_KEYWORDS, "NEVER") for k in keywords):
            raise DsnParamError("NOTIFY takes NEVER, or a list of SUCCESS, FAILURE and DELAY")
        if len(set(keywords)) != len(keywords):
            raise DsnParamError("NOTIFY names a keyword twice")
        if "NEVER" in keywords and len(keywords) > 1:
            raise DsnParamError("NOTIFY=NEVER cannot be combined with other keywords")
    if orcpt is None:
        raise DsnParamError("ORCPT needs a value: addr-type;address")
    if orcpt:
        if len(orcpt) > MAX_ORCPT:
            raise DsnParamError(f"ORCPT is longer than {MAX_ORCPT} characters")
        addr_type, semicolon, address = orcpt.partition(";")
        if not semicolon or not _ADDR_TYPE.match(addr_type) or not address:
            raise DsnParamError("ORCPT must be addr-type;address, e.g. rfc822;user@example.org")
        orcpt = f"{addr_type};{_xtext_checked(address, 'ORCPT')}"
    return RcptDsn(notify=",".join(keywords), orcpt=orcpt)


def orcpt_decoded(orcpt: str) -> str:
    """``rfc822;a+2Bb@x`` → ``rfc822;a+b@x`` for the Original-Recipient field (RFC 3464 §2.3.1)."""
    addr_type, _, address = orcpt.partition(";")
    return f"{addr_type};{xtext_decode(address)}"


def notify_keywords(notify: str) -> set[str]:
    """The NOTIFY keywords in force: empty (not given) means FAILURE,DELAY (RFC 3461 §4.1)."""
    return {k.strip().upper() for k in notify.split(",") if k.strip()} or {"FAILURE", "DELAY"}
