"""The MIME tree as byte offsets into the raw message, for IMAP BODYSTRUCTURE and BODY[section].

Every node is a plain dict (JSON-safe, stored once at delivery) with offsets absolute into the
outermost raw message, so an IMAP server can serve any section by slicing, without reparsing:

    type, subtype      lowercase ("text", "plain")
    params             [[key, value], ...]: keys lowercased, values unquoted, order kept
    id, description    Content-ID / Content-Description as written, or None
    encoding           Content-Transfer-Encoding as written, "7BIT" when absent
    size               octets of the body (as stored: bare-LF messages are not CRLF-counted)
    lines              text/* and message/rfc822 only
    md5, disposition, language, location
                       Content-MD5; [type, params] or None; [tags] or None; str or None
    header_start, header_end, body_start, body_end
                       header_end includes the blank line; body_start == header_end
    parts              multipart only (never empty: a multipart without usable boundaries
                       becomes text/plain)
    message            message/rfc822 and message/global in 7bit/8bit/binary only:
                       {"envelope": [...], "bodystructure": {...}}
"""

from __future__ import annotations

import re
from typing import Any

from mailcore.mime.addresses import EnvelopeAddress, parse_address_list
from mailcore.mime.headers import Headers, parse_params_header, scan_header_block

# Nesting deeper than this is not split further: the rest is one opaque text/plain leaf.
# Real clients nest a handful of levels; attackers nest thousands to exhaust the stack.
MAX_DEPTH = 48
MAX_PARTS = 5000

Node = dict[str, Any]
Envelope = list[Any]

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$")
_MESSAGE_SUBTYPES = ("rfc822", "global")
_IDENTITY_ENCODINGS = ("", "7bit", "8bit", "binary")


def build_envelope(headers: Headers) -> Envelope:
    """RFC 3501 §7.4.2 ENVELOPE from raw (unfolded, not RFC 2047 decoded) header values."""

    def addresses(name: str) -> list[EnvelopeAddress] | None:
        return parse_address_list(headers.get(name)) or None

    from_ = addresses("from")
    sender = addresses("sender") or from_
    reply_to = addresses("reply-to") or from_
    return [
        headers.get("date"),
        headers.get("subject"),
        from_,
        sender,
        reply_to,
        addresses("to"),
        addresses("cc"),
        addresses("bcc"),
        headers.get("in-reply-to"),
        headers.get("message-id"),
    ]


class _Budget:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts = 0


def parse_message_structure(raw: bytes) -> tuple[Headers, Node]:
    """Top-level headers and the body structure of the whole message."""
    headers, node = _parse_message(raw, 0, len(raw), depth=0, budget=_Budget())
    return headers, node


def _parse_message(raw: bytes, start: int, end: int, depth: int, budget: _Budget) -> tuple[Headers, Node]:
    header_end, fields = scan_header_block(raw, start, end)
    headers = Headers(raw, fields)
    node = _parse_entity(raw, start, header_end, end, headers, "text/plain", depth, budget)
    return headers, node


def _line_count(raw: bytes, start: int, end: int) -> int:
    if end <= start:
        return 0
    count = raw.count(b"\n", start, end)
    return count if raw[end - 1] == 0x0A else count + 1


def _parse_entity(
    raw: bytes,
    header_start: int,
    header_end: int,
    end: int,
    headers: Headers,
    default_type: str,
    depth: int,
    budget: _Budget,
) -> Node:
    budget.parts += 1
    ctype, params = parse_params_header(headers.get("content-type"))
    maintype, _, subtype = ctype.partition("/")
    maintype = maintype.strip().lower()
    subtype = subtype.strip().lower()
    if not (maintype and subtype and _TOKEN_RE.match(maintype) and _TOKEN_RE.match(subtype)):
        # RFC 2045 §5.2: a missing or unparseable Content-Type means the default.
        maintype, _, subtype = default_type.partition("/")
        params = [["charset", "us-ascii"]] if default_type == "text/plain" else []
    encoding = headers.get("content-transfer-encoding") or "7BIT"
    disposition_value, disposition_params = parse_params_header(headers.get("content-disposition"))
    language = headers.get("content-language")
    node: Node = {
        "type": maintype,
        "subtype": subtype,
        "params": params,
        "id": headers.get("content-id"),
        "description": headers.get("content-description"),
        "encoding": encoding,
        "size": end - header_end,
        "md5": headers.get("content-md5"),
        "disposition": [disposition_value, disposition_params] if disposition_value else None,
        "language": [lang.strip() for lang in language.split(",") if lang.strip()] if language else None,
        "location": headers.get("content-location"),
        "header_start": header_start,
        "header_end": header_end,
        "body_start": header_end,
        "body_end": end,
    }
    too_deep = depth >= MAX_DEPTH or budget.parts >= MAX_PARTS
    if maintype == "multipart":
        boundary = next((value for key, value in params if key == "boundary"), "")
        parts = None if too_deep or not boundary else _split_multipart(raw, header_end, end, boundary)
        if not parts:
            # No boundary, or it never appears: the body is shown as text, like MUAs do.
            node.update(type="text", subtype="plain", params=[["charset", "us-ascii"]])
            node["lines"] = _line_count(raw, header_end, end)
            return node
        child_default = "message/rfc822" if subtype == "digest" else "text/plain"
        children: list[Node] = []
        for part_start, part_end in parts:
            if budget.parts >= MAX_PARTS:
                break
            part_header_end, part_fields = scan_header_block(raw, part_start, part_end)
            children.append(
                _parse_entity(
                    raw,
                    part_start,
                    part_header_end,
                    part_end,
                    Headers(raw, part_fields),
                    child_default,
                    depth + 1,
                    budget,
                )
            )
        node["parts"] = children
        return node
    if maintype == "text":
        node["lines"] = _line_count(raw, header_end, end)
    elif maintype == "message" and subtype in _MESSAGE_SUBTYPES:
        node["lines"] = _line_count(raw, header_end, end)
        if not too_deep and encoding.lower() in _IDENTITY_ENCODINGS:
            inner_headers, inner = _parse_message(raw, header_end, end, depth + 1, budget)
            node["message"] = {"envelope": build_envelope(inner_headers), "bodystructure": inner}
    return node


def _split_multipart(raw: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """Byte ranges of the body parts between RFC 2046 §5.1.1 delimiters.

    The line break before a delimiter belongs to the delimiter. A delimiter line is
    "--boundary", optionally "--" for the close delimiter, then only transport padding; so
    a nested boundary that merely starts with ours ("--abc" vs "--abcd") is not ours.
    A missing close delimiter ends the last part at the end of the enclosing body.
    """
    marker = b"--" + boundary.encode("utf-8", "replace")
    parts: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = start
    while pos < end:
        hit = raw.find(marker, pos, end)
        if hit < 0:
            break
        after = hit + len(marker)
        if hit != start and raw[hit - 1] != 0x0A:
            pos = after
            continue
        is_close = raw.startswith(b"--", after, end)
        cursor = after + 2 if is_close else after
        while cursor < end and raw[cursor] in (0x20, 0x09):
            cursor += 1
        # "--boundary--garbage" still closes, like most parsers; "--boundaryX" is not ours.
        if cursor < end and raw[cursor] not in (0x0D, 0x0A) and not is_close:
            pos = after
            continue
        if part_start is not None:
            part_end = hit
            if part_end > part_start and raw[part_end - 1] == 0x0A:
                part_end -= 1
                if part_end > part_start and raw[part_end - 1] == 0x0D:
                    part_end -= 1
            parts.append((part_start, max(part_end, part_start)))
        if is_close:
            return parts
        nl = raw.find(b"\n", cursor, end)
        part_start = end if nl < 0 else nl + 1
        pos = part_start
        if len(parts) >= MAX_PARTS:
            return parts
    if part_start is not None:
        parts.append((part_start, end))
    return parts


def iter_nodes(node: Node, section: str = "") -> list[tuple[str, Node]]:
    """(section, node) pairs in document order, IMAP numbering (RFC 3501 §6.4.5).

    Leaves and message/rfc822 parts get their section ("1", "2.1"); the body of a
    non-multipart message is "1" (or "<part>.1" inside a message/rfc822 part). Multipart
    nodes are listed under their path ("" for the top one), which inside a message/rfc822
    part repeats that part's section.
    """
    out: list[tuple[str, Node]] = []
    stack: list[tuple[str, Node, bool]] = [(section, node, True)]
    while stack:
        path, current, is_root = stack.pop()
        if "parts" in current:
            out.append((path, current))
            prefix = f"{path}." if path else ""
            for index in range(len(current["parts"]) - 1, -1, -1):
                stack.append((f"{prefix}{index + 1}", current["parts"][index], False))
            continue
        own = (f"{path}.1" if path else "1") if is_root else path
        out.append((own, current))
        message = current.get("message")
        if message is not None:
            stack.append((own, message["bodystructure"], True))
    return out


__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "Envelope",
    "Node",
    "build_envelope",
    "iter_nodes",
    "parse_message_structure",
]
