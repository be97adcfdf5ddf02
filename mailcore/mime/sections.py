"""Serving IMAP BODY[section] (RFC 3501 §6.4.5) from stored offsets, and decoding part bodies."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable

from mailcore.mime.bodystructure import Node
from mailcore.mime.headers import scan_header_block

_SECTION_RE = re.compile(
    r"^(?P<path>\d+(?:\.\d+)*)?(?:\.?(?P<spec>HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?"
    r"\s*(?:\((?P<fields>[^)]*)\))?\s*$",
    re.IGNORECASE,
)
_NOT_BASE64_RE = re.compile(rb"[^A-Za-z0-9+/]")


def _resolve(root: Node, numbers: list[int]) -> Node | None:
    """The node a numeric section path names (RFC 3501 §6.4.5), or None."""
    current = root
    node: Node | None = None
    for number in numbers:
        if node is not None:
            message = node.get("message")
            if message is not None:
                current = message["bodystructure"]
            elif "parts" in node:
                current = node
            else:
                return None
        parts = current.get("parts")
        if parts is not None:
            if not 1 <= number <= len(parts):
                return None
            node = parts[number - 1]
        elif number == 1:
            node = current  # the body of a non-multipart message is its part 1
        else:
            return None
    return node


def section_bytes(
    raw: bytes, bodystructure: Node, section: str, fields: Iterable[str] | None = None
) -> bytes | None:
    """Bytes of an IMAP section spec ("", "HEADER", "1.2", "2.TEXT", "1.MIME",
    "HEADER.FIELDS (FROM TO)", ...) or None when the section does not exist."""
    match = _SECTION_RE.match(section.strip())
    if match is None:
        return None
    path = match.group("path")
    spec = (match.group("spec") or "").upper()
    if match.group("fields") is not None:
        fields = match.group("fields").split()
    message_root: Node | None = bodystructure
    target: Node | None = None
    if path:
        target = _resolve(bodystructure, [int(n) for n in path.split(".")])
        if target is None:
            return None
        message = target.get("message")
        message_root = message["bodystructure"] if message is not None else None
    if not spec:
        if target is None:
            return raw[bodystructure["header_start"] : bodystructure["body_end"]]
        return raw[target["body_start"] : target["body_end"]]
    if spec == "MIME":
        if target is None:
            return None  # MIME needs a part number
        return raw[target["header_start"] : target["header_end"]]
    if message_root is None:
        return None
    if spec == "TEXT":
        return raw[message_root["body_start"] : message_root["body_end"]]
    header = raw[message_root["header_start"] : message_root["header_end"]]
    if spec == "HEADER":
        return header
    wanted = {name.strip('"').lower() for name in (fields or ())}
    return header_fields(
        raw, message_root["header_start"], message_root["header_end"], wanted, spec.endswith("NOT")
    )


def header_fields(raw: bytes, start: int, end: int, wanted: set[str], exclude: bool) -> bytes:
    """The folded field lines of a header block whose names are (or, excluding, are not) wanted,
    followed by the blank line, as HEADER.FIELDS returns them."""
    _, fields = scan_header_block(raw, start, end)
    chunks = [raw[f.start : f.end] for f in fields if (f.name.lower() in wanted) != exclude]
    if chunks and not chunks[-1].endswith(b"\n"):
        chunks.append(b"\r\n")
    chunks.append(b"\r\n")
    return b"".join(chunks)


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding, tolerating bad base64 and invalid quoted-printable."""
    encoding = encoding.strip().lower()
    if encoding == "base64":
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            cleaned = _NOT_BASE64_RE.sub(b"", data)
            if len(cleaned) % 4 == 1:
                cleaned = cleaned[:-1]
            cleaned += b"=" * (-len(cleaned) % 4)
            try:
                return binascii.a2b_base64(cleaned)
            except (binascii.Error, ValueError):
                return b""
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def decoded_part(raw: bytes, node: Node) -> bytes:
    """The body of a part with its transfer encoding removed (for BINARY[] and downloads)."""
    return decode_transfer(raw[node["body_start"] : node["body_end"]], node.get("encoding") or "")
