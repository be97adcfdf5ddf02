"""Address and domain normalisation (pure: no ORM).

One canonical spelling per mailbox, so that lookups are exact matches on an index:
the domain as its IDNA A-label in lower case (``bücher.example`` → ``xn--bcher-kva.example``),
the local part NFC-normalised and lower-cased. Every door into the system (SMTP RCPT, logins,
the admin, management commands) goes through :func:`normalize_address`.
"""

from __future__ import annotations

import re
import unicodedata

import idna


class AddressError(ValueError):
    """An address or domain that cannot be accepted, with a sentence saying why."""


_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+)*$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_domain(domain: str) -> str:
    """Return the canonical A-label form of ``domain`` or raise :class:`AddressError`."""
    text = domain.strip()
    if not text:
        raise AddressError("the domain is empty")
    if text.endswith("."):
        # A trailing dot is a fully-qualified DNS name, not a mail domain (RFC 5321 §2.3.5).
        raise AddressError(f"the domain {domain!r} ends with a dot")
    if any(ch in text for ch in "\r\n\t \x00@[]\\\"%!,;:<>()"):
        raise AddressError(f"the domain {domain!r} contains a character not allowed in a domain")
    text = unicodedata.normalize("NFC", text)
    try:
        ascii_form = idna.encode(text, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise AddressError(f"the domain {domain!r} is not a valid domain name ({exc})") from None
    ascii_form = ascii_form.lower()
    labels = ascii_form.split(".")
    if len(labels) < 2:
        raise AddressError(f"the domain {domain!r} needs at least two labels, like example.org")
    if len(ascii_form) > 253 or not all(_LABEL.match(label) for label in labels):
        raise AddressError(f"the domain {domain!r} is not a valid domain name")
    return ascii_form


def domain_to_unicode(ascii_domain: str) -> str:
    """The U-label form of a canonical domain, for display."""
    try:
        return idna.decode(ascii_domain)
    except (idna.IDNAError, UnicodeError):
        return ascii_domain


def split_address(address: str) -> tuple[str, str]:
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, sep, domain = text.rpartition("@")
    if not sep or not local:
        raise AddressError(f"{address!r} is not an address of the form name@domain")
    return local, domain


def normalize_local_part(local: str) -> str:
    if len(local.encode("utf-8")) > 64:
        raise AddressError("the part before @ is longer than 64 octets")
    if local.startswith('"') or any(ch in local for ch in '"\\ \t\r\n\x00()<>[],;:@'):
        # Quoted local parts are legal in RFC 5321 but are a classic route to relay and
        # spoofing confusion; no account is ever created with one.
        raise AddressError(f"the name {local!r} contains characters not accepted here")
    if not _LOCAL_ATOM.match(local):
        raise AddressError(f"the name {local!r} is not a valid mailbox name")
    return unicodedata.normalize("NFC", local).lower()


def normalize_address(address: str) -> str:
    """Return ``local@domain`` in canonical form or raise :class:`AddressError`."""
    if any(ch in address for ch in "\r\n\x00"):
        raise AddressError("an address cannot contain line breaks")
    local, domain = split_address(address)
    return f"{normalize_local_part(local)}@{normalize_domain(domain)}"


def address_for_display(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain_to_unicode(domain)}" if local else address
