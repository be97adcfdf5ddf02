"""What goes on the wire: CRLF line endings, dot-stuffing, and 8-bit to 7-bit body conversion.

Pure functions on bytes, no ORM. ``body_to_7bit`` walks the MIME tree and re-encodes only leaf
bodies that carry 8-bit bytes (quoted-printable for text, base64 otherwise), keeping every other
byte as it was, for a server that does not offer 8BITMIME (RFC 6152 §3). DKIM signing comes after
this conversion, dot-stuffing after signing (RFC 5321 §4.5.2).
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

CRLF = b"\r\n"
MAX_MIME_DEPTH = 20  # nesting beyond this is left untouched rather than recursed into
BASE64_LINE = 76

_BARE_EOL = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_CTE_HEADER = re.compile(rb"(?im)^content-transfer-encoding[ \t]*:.*(?:\r\n[ \t].*)*")
_MIME_VERSION = re.compile(rb"(?im)^mime-version[ \t]*:")


def crlf_normalize(raw: bytes) -> bytes:
    """Every line ending CRLF (bare LF and bare CR too), and the message ending with one."""
    text = _BARE_EOL.sub(CRLF, raw)
    if not text.endswith(CRLF):
        text += CRLF
    return text


def dot_stuff(raw: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line starting with "." gets another; ``raw`` must already be CRLF."""
    return _LEADING_DOT.sub(b"..", raw)


def wire_data(raw: bytes) -> bytes:
    """The bytes to send after a 354: normalised, dot-stuffed, ending with CRLF "." CRLF."""
    return dot_stuff(crlf_normalize(raw)) + b"." + CRLF


def has_8bit(data: bytes) -> bool:
    return not data.isascii()


def _split_entity(entity: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block without its last CRLF, separator, body)."""
    if entity.startswith(CRLF):
        return b"", CRLF, entity[2:]
    index = entity.find(CRLF + CRLF)
    if index < 0:
        return entity, b"", b""
    return entity[:index], CRLF + CRLF, entity[index + 4 :]


def _headers(head: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(head + CRLF + CRLF)


def _set_cte(head: bytes, value: bytes, *, top: bool) -> bytes:
    line = b"Content-Transfer-Encoding: " + value
    if _CTE_HEADER.search(head):
        return _CTE_HEADER.sub(lambda _m: line, head, count=1)
    if top and not _MIME_VERSION.search(head):
        line = b"MIME-Version: 1.0" + CRLF + line
    return head + CRLF + line if head else line


def _encode_leaf(body: bytes, *, text: bool) -> tuple[bytes, bytes]:
    if text:
        encoded = binascii.b2a_qp(body, quotetabs=False, istext=True, header=False)
        return encoded, b"quoted-printable"
    data = base64.b64encode(body)
    lines = [data[i : i + BASE64_LINE] for i in range(0, len(data), BASE64_LINE)]
    return CRLF.join(lines) + CRLF, b"base64"


def _convert_multipart(body: bytes, boundary: str, depth: int) -> bytes:
    delimiter = re.compile(rb"(?:^|\r\n)--" + re.escape(boundary.encode("ascii", "replace")) + rb"(--)?[ \t]*(?=\r\n|$)")
    matches = list(delimiter.finditer(body))
    if not matches:
        return body
    out = [body[: matches[0].end()]]
    for index, match in enumerate(matches):
        if match.group(1):  # the close delimiter: the epilogue follows untouched
            out.append(body[match.end() :])
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        segment = body[match.end() : end]
        if segment.startswith(CRLF):
            out.append(CRLF + _convert_entity(segment[2:], depth + 1, top=False))
        else:
            out.append(segment)
        if index + 1 < len(matches):
            out.append(matches[index + 1].group(0))
    return b"".join(out)


def _convert_entity(entity: bytes, depth: int, *, top: bool) -> bytes:
    if depth > MAX_MIME_DEPTH or not has_8bit(entity):
        return entity
    head, sep, body = _split_entity(entity)
    if not sep or not has_8bit(body):
        return entity  # 8-bit bytes only in headers: that needs SMTPUTF8, not a body encoding
    headers = _headers(head)
    maintype = headers.get_content_maintype()
    if maintype == "multipart":
        boundary = headers.get_boundary()
        return head + sep + _convert_multipart(body, boundary, depth) if boundary else entity
    if headers.get_content_type() == "message/rfc822":
        inner = _convert_entity(body, depth + 1, top=False)
        if not has_8bit(inner):
            head = _set_cte(head, b"7bit", top=False) if _CTE_HEADER.search(head) else head
        return head + sep + inner
    encoded, cte = _encode_leaf(body, text=maintype == "text")
    return _set_cte(head, cte, top=top) + sep + encoded


def body_to_7bit(raw: bytes) -> bytes:
    """Re-encode 8-bit MIME bodies of a CRLF message as 7-bit; headers stay as they are."""
    return _convert_entity(crlf_normalize(raw), 0, top=True)
