"""Header blocks as byte ranges, header values, RFC 2047 words, MIME parameters (RFC 2045/2231)."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from mailcore.mime.charsets import decode_bytes, decode_fallback

# RFC 5322 §2.2: a field name is printable US-ASCII except colon. Some senders put spaces
# before the colon ("Subject : x"); accept them like every MUA does.
_FIELD_LINE_RE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_FOLD_RE = re.compile(rb"\r?\n(?=[ \t])")
_STRAY_EOL_RE = re.compile(r"[\r\n]+")


@dataclass(frozen=True, slots=True)
class Field:
    """One header field: its name as written and the absolute byte range of the whole field."""

    name: str
    start: int
    end: int
    value_start: int

    def raw_value(self, raw: bytes) -> bytes:
        return raw[self.value_start : self.end]


def scan_header_block(raw: bytes, start: int, end: int) -> tuple[int, list[Field]]:
    """Return (header_end, fields) for the header block starting at ``start``.

    ``header_end`` includes the blank separator line. With no blank line the block stops
    at the first line that is neither a field nor a continuation (that line starts the body),
    or at ``end`` when everything looks like header fields.
    """
    fields: list[Field] = []
    pos = start
    current: tuple[str, int, int] | None = None  # name, start, value_start
    if raw.startswith(b"From ", start, end) and _FIELD_LINE_RE.match(raw, start, end) is None:
        # An mbox "From " envelope line some MTAs leave in front of the header ("From sender
        # date"). "From : x" is no such line but a From: field with space before the colon
        # (RFC 5322 §4.5, obs-optional), which DMARC evaluates and readers must show alike. The
        # standard library skips both (feedparser); mutt also wants a date; any other non-field
        # line here would end the header at once, so it goes too.
        nl = raw.find(b"\n", start, end)
        pos = end if nl < 0 else nl + 1
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        first = raw[pos]
        if first == 0x0A or (first == 0x0D and (pos + 1 == end or raw[pos + 1] == 0x0A)):
            if current is not None:
                fields.append(Field(current[0], current[1], pos, current[2]))
            return line_end, fields
        if first in (0x20, 0x09) and current is not None:
            pos = line_end
            continue
        match = _FIELD_LINE_RE.match(raw, pos, line_end)
        if match is None:
            break
        if current is not None:
            fields.append(Field(current[0], current[1], pos, current[2]))
        name = raw[pos : match.end()].rstrip(b": \t").decode("ascii", "replace")
        current = (name, pos, match.end())
        pos = line_end
    if current is not None:
        fields.append(Field(current[0], current[1], pos, current[2]))
    return pos, fields


def unfold(value: bytes) -> str:
    """Unfold a raw field value (RFC 5322 §2.2.3) and make it text: UTF-8 (RFC 6532) or latin-1."""
    text = decode_fallback(_FOLD_RE.sub(b"", value))
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _STRAY_EOL_RE.sub(" ", text).strip()


class Headers:
    """Field lookup over a scanned block. First occurrence wins, as in IMAP servers and MUAs."""

    __slots__ = ("_values", "fields")

    def __init__(self, raw: bytes, fields: list[Field]) -> None:
        self.fields = fields
        self._values: dict[str, str] = {}
        for field in fields:
            key = field.name.lower()
            if key not in self._values:
                self._values[key] = unfold(field.raw_value(raw))

    def get(self, name: str) -> str | None:
        return self._values.get(name)


# RFC 2047 encoded word. Tolerant: spaces inside Q words, lowercase b/q, missing trailing text.
# Encoded text never contains "?", which also keeps matching linear on "=?=?=?..." input.
_ENCODED_WORD_RE = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_Q_HEX_RE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_b(data: str) -> bytes:
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", data)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else len(cleaned)]
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned.encode("ascii"))
    except (binascii.Error, ValueError):
        return b""


def _decode_q(data: str) -> bytes:
    raw = data.replace("_", " ").encode("utf-8", "replace")
    return _Q_HEX_RE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def decode_header_value(value: str | bytes) -> str:
    """Decode RFC 2047 encoded words; raw 8-bit text is taken as UTF-8 (RFC 6532) or latin-1.

    Whitespace between adjacent encoded words is dropped (RFC 2047 §6.2) and adjacent words in
    one charset are joined before decoding, so a multibyte character split across words survives.
    """
    if isinstance(value, bytes):
        text = unfold(value)
    else:
        text = _STRAY_EOL_RE.sub(" ", value.replace("\r\n ", " ").replace("\r\n\t", "\t"))
    if "=?" not in text:
        return text.replace("\x00", "")
    out: list[str] = []
    pending_charset: str | None = None
    pending: list[bytes] = []
    pos = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset))
            pending.clear()
        pending_charset = None

    for match in _ENCODED_WORD_RE.finditer(text):
        between = text[pos : match.start()]
        if between and not (pending and between.isspace()):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0].lower()
        data = _decode_b(match.group(3)) if match.group(2) in "bB" else _decode_q(match.group(3))
        if pending and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.append(data)
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out).replace("\x00", "")


# --- MIME parameters -------------------------------------------------------------------------


def _split_params(value: str) -> list[str]:
    """Split on semicolons outside quoted strings."""
    pieces: list[str] = []
    buf: list[str] = []
    in_quote = False
    escaped = False
    for ch in value:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and in_quote:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            buf.append(ch)
            in_quote = not in_quote
        elif ch == ";" and not in_quote:
            pieces.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    pieces.append("".join(buf))
    return pieces


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"':
        inner = value[1:-1] if value.endswith('"') else value[1:]
        return re.sub(r"\\(.)", r"\1", inner)
    if value.startswith('"'):
        return value[1:]
    return value


def parse_params_header(value: str | None) -> tuple[str, list[list[str]]]:
    """Split "text/plain; charset=utf-8; format=flowed" into ("text/plain", [[key, value], ...]).

    Keys are lowercased; values are unquoted but otherwise as written (RFC 2231 pieces stay
    separate, as IMAP BODYSTRUCTURE shows them).
    """
    if not value:
        return "", []
    pieces = _split_params(value)
    head = pieces[0].strip()
    params: list[list[str]] = []
    for piece in pieces[1:]:
        if "=" not in piece:
            continue
        key, _, val = piece.partition("=")
        key = key.strip().lower()
        if key:
            params.append([key, _unquote(val)])
    return head, params


_CONTINUATION_RE = re.compile(r"^([^*]+)\*(\d+)(\*?)$")


def decode_params(params: list[list[str]]) -> dict[str, str]:
    """Resolve RFC 2231 continuations and charsets, and RFC 2047 words in values; first key wins."""
    result: dict[str, str] = {}
    continued: dict[str, list[tuple[int, bool, str]]] = {}
    extended: dict[str, str] = {}
    for key, val in params:
        match = _CONTINUATION_RE.match(key)
        if match:
            continued.setdefault(match.group(1), []).append((int(match.group(2)), bool(match.group(3)), val))
        elif key.endswith("*"):
            extended.setdefault(key[:-1], _decode_2231_segments([(0, True, val)]))
        elif key not in result:
            result[key] = decode_header_value(val)
    for key, segments in continued.items():
        extended.setdefault(key, _decode_2231_segments(sorted(segments, key=lambda s: s[0])))
    # RFC 2231 values win over plain ones (senders put both for old readers).
    result.update(extended)
    return result


def _decode_2231_segments(segments: list[tuple[int, bool, str]]) -> str:
    charset: str | None = None
    first_encoded = segments[0][1] if segments else False
    chunks: list[bytes] = []
    for index, (_, encoded, val) in enumerate(segments):
        if index == 0 and first_encoded and val.count("'") >= 2:
            charset, _, rest = val.split("'", 2)
            val = rest
        if encoded:
            chunks.append(unquote_to_bytes(val))
        else:
            chunks.append(val.encode("utf-8", "replace"))
    data = b"".join(chunks)
    text = decode_bytes(data, charset) if charset else decode_fallback(data)
    return decode_header_value(text) if "=?" in text else text
