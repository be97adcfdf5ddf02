"""RFC 5322 address lists with groups, for both the decoded view and the IMAP ENVELOPE."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailcore.mime.headers import decode_header_value

# One envelope address: [name, adl, mailbox, host]; None is NIL (RFC 3501 §7.4.2).
EnvelopeAddress = list[str | None]

MAX_ADDRESSES = 1000
# Longer address fields are cut before parsing: ~2000 real recipients fit comfortably.
MAX_ADDRESS_FIELD_CHARS = 128 * 1024


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    email: str


_SIMPLE_TOKEN_RE = re.compile(
    r'(?P<ws>\s+)|(?P<atom>[^\s"(),:;<>@.\[\]]+)|(?P<special>[,:;<>@.])'
    r'|"(?P<quoted>(?:[^"\\]|\\.)*)"?|(?P<literal>\[[^\]]*\]?)|(?P<stray>\])',
    re.DOTALL,
)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)


def _comment(value: str, i: int) -> tuple[str, int]:
    """A possibly nested comment starting at value[i] == "(": (text, index after it)."""
    depth = 0
    buf: list[str] = []
    n = len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            buf.append(value[i + 1])
            i += 2
            continue
        if c == "(":
            depth += 1
            if depth > 1:
                buf.append(c)
        elif c == ")":
            depth -= 1
            if depth == 0:
                return "".join(buf).strip(), i + 1
            buf.append(c)
        else:
            buf.append(c)
        i += 1
    return "".join(buf).strip(), n


def _tokenize(value: str) -> list[tuple[str, str]]:
    """Tokens as (kind, text): kind is 'q' quoted string, 'c' comment, 'a' atom, ' ' white
    space, or a special character."""
    tokens: list[tuple[str, str]] = []
    i = 0
    n = len(value)
    while i < n:
        if value[i] == "(":
            text, i = _comment(value, i)
            tokens.append(("c", text))
            continue
        match = _SIMPLE_TOKEN_RE.match(value, i)
        if match is None:  # cannot happen: every character starts some token
            i += 1
            continue
        kind = match.lastgroup
        if kind == "ws":
            tokens.append((" ", " "))
        elif kind == "special":
            tokens.append((match.group(), match.group()))
        elif kind == "quoted":
            tokens.append(("q", _QUOTED_PAIR_RE.sub(r"\1", match.group("quoted"))))
        else:
            tokens.append(("a", match.group()))
        i = match.end()
    return tokens


def _phrase(tokens: list[tuple[str, str]]) -> str:
    parts: list[str] = []
    for kind, text in tokens:
        if kind in ("a", "q", "."):
            parts.append(text)
        elif kind in (" ", "c") and parts and parts[-1] != " ":
            parts.append(" ")
    return "".join(parts).strip()


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str, str | None]:
    """(local, domain) from addr-spec tokens; domain None when there is no @."""
    local: list[str] = []
    domain: list[str] = []
    target = local
    seen_at = False
    for kind, text in tokens:
        if kind == "@" and not seen_at:
            seen_at = True
            target = domain
        elif kind == "q":
            target.append(
                '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if _needs_quote(text) else text
            )
        elif kind in ("a", ".", "@"):
            target.append(text)
    return "".join(local), ("".join(domain) if seen_at else None)


def _needs_quote(text: str) -> bool:
    return not text or any(c in ' \t"(),:;<>@[\\]' for c in text)


def parse_address_list(value: str | None) -> list[EnvelopeAddress]:
    """Envelope-style entries, group markers included: [None, None, group, None] ... [None]*4."""
    if not value:
        return []
    tokens = _tokenize(value[:MAX_ADDRESS_FIELD_CHARS])
    result: list[EnvelopeAddress] = []
    current: list[tuple[str, str]] = []
    in_group = False

    def finish() -> None:
        if current and len(result) < MAX_ADDRESSES:
            entry = _mailbox(current)
            if entry is not None:
                result.append(entry)
        current.clear()

    i = 0
    n = len(tokens)
    while i < n:
        kind, _ = tokens[i]
        if kind == "<":
            close = i + 1
            while close < n and tokens[close][0] != ">":
                close += 1
            current.extend(tokens[i : close + 1])
            i = close + 1
            continue
        if kind == ",":
            finish()
        elif kind == ":" and not in_group and not any(k == "@" for k, _ in current):
            name = _phrase(current)
            current.clear()
            result.append([None, None, name, None])
            in_group = True
        elif kind == ";" and in_group:
            finish()
            result.append([None, None, None, None])
            in_group = False
        else:
            current.append(tokens[i])
        i += 1
    finish()
    if in_group:
        result.append([None, None, None, None])
    return result


def _mailbox(tokens: list[tuple[str, str]]) -> EnvelopeAddress | None:
    open_at = next((i for i, t in enumerate(tokens) if t[0] == "<"), None)
    comments = [text for kind, text in tokens if kind == "c" and text]
    if open_at is not None:
        name = _phrase(tokens[:open_at]) or (comments[-1] if comments else "")
        inner = [t for t in tokens[open_at + 1 :] if t[0] not in (">", "c", " ")]
        adl: str | None = None
        colon = next((i for i, t in enumerate(inner) if t[0] == ":"), None)
        if colon is not None:
            adl = "".join(text for _, text in inner[:colon]) or None
            inner = inner[colon + 1 :]
        local, domain = _addr_spec(inner)
    else:
        name = comments[-1] if comments else ""
        adl = None
        local, domain = _addr_spec([t for t in tokens if t[0] not in ("c", " ")])
    if not local and not domain and not name:  # white space or comments only
        return None
    return [name or None, adl, local, domain if domain is not None else ""]


def addresses_from_envelope(entries: list[EnvelopeAddress]) -> list[Address]:
    """Decoded addresses (group markers dropped): RFC 2047 display names, "local@domain"."""
    out: list[Address] = []
    for name, _adl, mailbox, host in entries:
        if host is None:
            continue
        email = f"{mailbox}@{host}" if host else (mailbox or "")
        out.append(Address(name=decode_header_value(name) if name else "", email=email))
    return out
