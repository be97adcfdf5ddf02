"""Formatting IMAP response data (RFC 3501 §7, §9): strings, ENVELOPE, BODYSTRUCTURE, dates."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_QUOTABLE_MAX = 1024
# Octets a quoted string cannot carry (RFC 3501/9051 TEXT-CHAR): NUL, CR, LF and 8-bit.
_NOT_QUOTABLE = re.compile(rb"[\x00\r\n\x7f-\xff]")


def literal(data: bytes) -> bytes:
    """A literal (RFC 3501/9051 ``literal``: CHAR8, so no NUL). A NUL octet in the data is sent
    as 0x80, as Dovecot does, keeping the length and offsets; only BINARY answers with the
    data verbatim, in a literal8 (:func:`literal8`)."""
    if b"\0" in data:
        data = data.replace(b"\0", b"\x80")
    return b"{%d}\r\n" % len(data) + data


def literal8(data: bytes) -> bytes:
    """RFC 3516 literal8 ``~{n}``: any octet, for BINARY fetches only."""
    return b"~{%d}\r\n" % len(data) + data


def string(value: str | bytes) -> bytes:
    """A quoted string when possible, else a literal (8-bit, CR/LF, NUL, very long)."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) > _QUOTABLE_MAX or _NOT_QUOTABLE.search(data):
        return literal(data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else string(value)


def astring(value: str) -> bytes:
    """An atom when the text is one, else a string (mailbox names in LIST, STATUS...)."""
    if value and all(0x20 < ord(c) < 0x7F and c not in '(){ %*"\\]' for c in value):
        return value.encode("ascii")
    return string(value)


def internal_date(value: datetime, offset_minutes: int = 0) -> bytes:
    """date-time (RFC 3501 §9) in the zone ``offset_minutes`` east of UTC."""
    value = value.astimezone(timezone(timedelta(minutes=offset_minutes)))
    sign = b"-" if offset_minutes < 0 else b"+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return b'"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        value.day, _MONTHS[value.month - 1].encode(), value.year, value.hour, value.minute, value.second, sign,
        hours, minutes)


def _addresses(entries: Sequence[Sequence[str | None]] | None) -> bytes:
    if not entries:
        return b"NIL"
    return b"(" + b"".join(b"(" + b" ".join(nstring(part) for part in entry) + b")" for entry in entries) + b")"


def envelope(env: Sequence[Any]) -> bytes:
    """ENVELOPE from the stored list [date, subject, from, sender, reply-to, to, cc, bcc,
    in-reply-to, message-id] (raw header values; address lists of [name, adl, mailbox, host])."""
    if not env or len(env) < 10:
        env = [None] * 10
    parts = [nstring(env[0]), nstring(env[1])]
    parts += [_addresses(env[i]) for i in range(2, 8)]
    parts += [nstring(env[8]), nstring(env[9])]
    return b"(" + b" ".join(parts) + b")"


def _params(params: Sequence[Sequence[str]] | None) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(string(k) + b" " + string(v) for k, v in params) + b")"


def _disposition(value: Sequence[Any] | None) -> bytes:
    if not value:
        return b"NIL"
    return b"(" + string(value[0]) + b" " + _params(value[1]) + b")"


def _language(value: Sequence[str] | None) -> bytes:
    if not value:
        return b"NIL"
    if len(value) == 1:
        return string(value[0])
    return b"(" + b" ".join(string(v) for v in value) + b")"


def bodystructure(node: dict[str, Any], *, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (extended) or BODY (basic) of a stored MIME node (RFC 3501 §7.4.2)."""
    if not node:
        node = {"type": "text", "subtype": "plain", "params": [["charset", "us-ascii"]], "encoding": "7BIT",
                "size": 0, "lines": 0}
    if "parts" in node:
        out = b"(" + b"".join(bodystructure(p, extended=extended) for p in node["parts"])
        out += b" " + string(node["subtype"].upper())
        if extended:
            out += b" " + _params(node.get("params"))
            out += b" " + _disposition(node.get("disposition"))
            out += b" " + _language(node.get("language"))
            out += b" " + nstring(node.get("location"))
        return out + b")"
    fields = [
        string(node["type"].upper()),
        string(node["subtype"].upper()),
        _params(node.get("params")),
        nstring(node.get("id")),
        nstring(node.get("description")),
        string((node.get("encoding") or "7BIT").upper()),
        b"%d" % int(node.get("size") or 0),
    ]
    kind = (node["type"].lower(), node["subtype"].lower())
    message = node.get("message")
    if kind[0] == "message" and kind[1] in ("rfc822", "global") and message is not None:
        fields.append(envelope(message["envelope"]))
        fields.append(bodystructure(message["bodystructure"], extended=extended))
        fields.append(b"%d" % int(node.get("lines") or 0))
    elif kind[0] == "message" and kind[1] in ("rfc822", "global"):
        # An encoded message/rfc822 part was not parsed further; the grammar still needs an
        # envelope, a body and a line count (RFC 3501 body-type-msg).
        fields.append(envelope([]))
        fields.append(b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)')
        fields.append(b"%d" % int(node.get("lines") or 0))
    elif kind[0] == "text":
        fields.append(b"%d" % int(node.get("lines") or 0))
    if extended:
        fields += [nstring(node.get("md5")), _disposition(node.get("disposition")),
                   _language(node.get("language")), nstring(node.get("location"))]
    return b"(" + b" ".join(fields) + b")"


def flags(values: Sequence[str]) -> bytes:
    return b"(" + " ".join(values).encode("utf-8", "replace") + b")"
