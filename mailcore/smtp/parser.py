"""Pure SMTP parsing helpers: envelope paths, ESMTP parameters, message data checks (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_PATH_LENGTH = 256  # RFC 5321 §4.5.3.1.3
MAX_RECEIVED_HEADERS = 50

_PARAM_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_SOURCE_ROUTE = re.compile(r"^@[^:,]+(?:,@[^:,]+)*:")
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class PathError(ValueError):
    """An envelope path or parameter that cannot be accepted; the text says why."""


@dataclass
class PathArgument:
    address: str  # "" for the null path <>
    params: dict[str, str | None] = field(default_factory=dict)
    had_source_route: bool = False


def parse_path_argument(arg: str | None, keyword: str) -> PathArgument:
    """Parse ``FROM:<path> params`` / ``TO:<path> params`` (``keyword`` is "FROM" or "TO")."""
    if arg is None:
        raise PathError("missing argument")
    if any(ch in arg for ch in "\r\n\x00"):
        raise PathError("line breaks and NUL are not allowed in an address")
    head = arg[: len(keyword) + 1]
    if head.upper() != keyword + ":":
        raise PathError(f"expected {keyword}:")
    rest = arg[len(keyword) + 1 :].lstrip(" ")
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        path, tail = rest[1:end], rest[end + 1 :]
        if tail and not tail.startswith(" "):
            raise PathError("junk after the address")
    else:
        # Tolerated: a bare address without angle brackets (many old clients send it).
        path, _, tail = rest.partition(" ")
        if "<" in path or ">" in path:
            raise PathError("unbalanced angle brackets")
    if len(path) > MAX_PATH_LENGTH:
        raise PathError("the address is too long")
    routed = False
    match = _SOURCE_ROUTE.match(path)
    if match:
        # RFC 5321 §4.1.1.3 and Appendix C: a source route is accepted and ignored.
        path = path[match.end() :]
        routed = True
    if path and "@" not in path:
        raise PathError("the address has no domain")
    return PathArgument(address=path, params=parse_params(tail.split()), had_source_route=routed)


def _closing_bracket(text: str) -> int:
    """Index of the ">" closing the path that starts at text[0] == "<" (quotes respected)."""
    quoted = escaped = False
    for i, ch in enumerate(text[1:], start=1):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
        elif ch == "<" and not quoted:
            raise PathError("unbalanced angle brackets")
    raise PathError("unbalanced angle brackets")


def parse_params(words: list[str]) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not _PARAM_KEYWORD.match(name) or (eq and not value):
            raise PathError(f"bad parameter {word!r}")
        key = name.upper()
        if key in params:
            raise PathError(f"parameter {key} given twice")
        params[key] = value if eq else None
    return params


def is_relay_spelling(address: str) -> bool:
    """Local parts that route elsewhere through a gateway: ``%`` hack, ``!`` paths, quoting, an
    inner ``@``; and domain literals and trailing dots, which name no domain of ours."""
    local, _, domain = address.rpartition("@")
    return (
        any(ch in local for ch in '%!@"')
        or domain.startswith("[")
        or domain.endswith(".")
    )


def find_bare_line_ending(data: bytes) -> int:
    """Offset of the first CR not followed by LF or LF not preceded by CR, or -1."""
    # Every CR and every LF belongs to a CRLF exactly when the three counts agree: three passes
    # in C, many times faster than the regular expression, which is left to find the offset.
    pairs = data.count(b"\r\n")
    if data.count(b"\r") == pairs and data.count(b"\n") == pairs:
        return -1
    match = _BARE_CR_OR_LF.search(data)
    return match.start() if match else -1


def only_crlf_line_endings(data: bytes, crlf_count: int) -> bool:
    """True when every CR and LF of ``data`` is in a CRLF, given how many CRLFs it holds (the
    separators of ``data.split(b"\r\n")``, which the DATA reader makes anyway for line lengths):
    two one-byte counts instead of :func:`find_bare_line_ending`'s three passes."""
    return data.count(b"\r") == crlf_count and data.count(b"\n") == crlf_count


def header_section(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


_RECEIVED = re.compile(rb"^received:", re.IGNORECASE | re.MULTILINE)


def count_received(raw: bytes) -> int:
    """How many Received: header fields the message already has (loop detection)."""
    return len(_RECEIVED.findall(header_section(raw)))


def unstuff_line(line: bytes) -> bytes:
    """Remove the transparency dot (RFC 5321 §4.5.2)."""
    return line[1:] if line.startswith(b".") else line
