"""parse_message: everything the store keeps about a message, computed once at delivery."""

from __future__ import annotations

import html
import logging
import mimetypes
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from mailcore.mime.addresses import Address, addresses_from_envelope
from mailcore.mime.bodystructure import Envelope, Node, build_envelope, iter_nodes, parse_message_structure
from mailcore.mime.charsets import decode_bytes
from mailcore.mime.headers import decode_header_value, decode_params, scan_header_block
from mailcore.mime.sections import decode_transfer

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1_000_000
MAX_PREVIEW_CHARS = 200
# Encoded bytes of one part read for text extraction: enough for MAX_TEXT_CHARS after decoding.
MAX_TEXT_PART_BYTES = 4 * MAX_TEXT_CHARS
MAX_ATTACHMENTS = 500

_NOT_ATTACHMENT_TYPES = {
    "application/pgp-signature",
    "application/pgp-encrypted",
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
    "message/delivery-status",
    "message/global-delivery-status",
    "text/rfc822-headers",
}
_TEXT_INDEX_TYPES = {"text/plain", "text/html", "message/delivery-status", "text/rfc822-headers"}


@dataclass(slots=True)
class ParsedMessage:
    """Metadata of one message. All fields but ``date`` are JSON-safe; use ``to_json()`` to store."""

    subject: str = ""
    from_: list[Address] = field(default_factory=list)
    sender: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    date: datetime | None = None
    message_id: str = ""
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    thread_subject: str = ""
    header_size: int = 0
    size: int = 0
    envelope: Envelope = field(default_factory=list)
    bodystructure: Node = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    has_attachments: bool = False
    preview: str = ""
    text: str = ""
    html_part: str | None = None
    text_part: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["date"] = self.date.isoformat() if self.date else None
        return data


# --- small header helpers ---------------------------------------------------------------------

_MSGID_RE = re.compile(r"<([^<>]*)>")
_SUBJECT_PREFIXES_RE = re.compile(
    r"(?:\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|rif|tr|r)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]|\[[^\[\]]*\]))+\s*",
    re.IGNORECASE,
)
MAX_THREAD_SUBJECT_CHARS = 1000
_SUBJECT_TRAILER_RE = re.compile(r"\s*\((?:fwd|fw)\)\s*$", re.IGNORECASE)
_WS_RE = re.compile(r"\s+")


def normalize_thread_subject(subject: str) -> str:
    """Subject for threading: reply/forward prefixes and [list-tags] stripped, spaces collapsed,
    casefolded. "Re: [dev] AW: Fwd:  Hello" -> "hello"."""
    text = _WS_RE.sub(" ", subject[: MAX_THREAD_SUBJECT_CHARS * 4]).strip()
    for _ in range(10):  # "Re: Fwd: x (fwd)" needs the prefix pass again after the trailer
        match = _SUBJECT_PREFIXES_RE.match(text)
        stripped = _SUBJECT_TRAILER_RE.sub("", text[match.end() :] if match else text)
        if stripped == text:
            break
        text = stripped
    return text.strip().casefold()[:MAX_THREAD_SUBJECT_CHARS]


def parse_message_ids(value: str | None) -> list[str]:
    """Message ids without angle brackets; a bare id (no brackets) is taken whole."""
    if not value:
        return []
    ids = [m.strip() for m in _MSGID_RE.findall(value) if m.strip()]
    if not ids and value.strip():
        ids = [value.strip().split()[0]]
    return ids[:1000]


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # RFC 5322 "-0000": no zone information
    return parsed


# --- HTML to text -----------------------------------------------------------------------------

_SKIP_OPEN_RE = re.compile(r"<!--|<(script|style|head|title|template)\b", re.IGNORECASE)
_BLOCK_RE = re.compile(r"<(?:br|/p|p|/div|/tr|/li|/h[1-6]|/table|hr)\b[^<>]*>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^<>]*>")


def html_to_text(markup: str) -> str:
    """Readable text of HTML: scripts, styles and comments dropped, tags removed, entities
    decoded. Linear time on any input (no backtracking over unclosed constructs)."""
    kept: list[str] = []
    pos = 0
    while True:
        match = _SKIP_OPEN_RE.search(markup, pos)
        if match is None:
            kept.append(markup[pos:])
            break
        kept.append(markup[pos : match.start()])
        if match.group(0) == "<!--":
            close = markup.find("-->", match.end())
            pos = len(markup) if close < 0 else close + 3
        else:
            closer = re.compile(rf"</{match.group(1)}\s*>", re.IGNORECASE).search(markup, match.end())
            pos = len(markup) if closer is None else closer.end()
    text = _BLOCK_RE.sub("\n", "".join(kept))
    text = _TAG_RE.sub("", text)
    return html.unescape(text)


# --- bodies -----------------------------------------------------------------------------------


def _content_type(node: Node) -> str:
    return f"{node['type']}/{node['subtype']}"


def _params(node: Node) -> dict[str, str]:
    return decode_params(node["params"])


def _disposition(node: Node) -> tuple[str, dict[str, str]]:
    disposition = node.get("disposition")
    if not disposition:
        return "", {}
    return str(disposition[0]).lower(), decode_params(disposition[1])


def _filename(node: Node) -> str:
    _, dparams = _disposition(node)
    return dparams.get("filename") or _params(node).get("name") or ""


def _is_attachment_like(node: Node) -> bool:
    disposition, _ = _disposition(node)
    return disposition == "attachment" or bool(_filename(node))


def _pick_bodies(node: Node, section: str, depth: int = 0) -> tuple[str | None, str | None]:
    """(html section, plain section) of the best display bodies under ``node``."""
    if depth > 64:
        return None, None
    parts = node.get("parts")
    if parts is None:
        ctype = _content_type(node)
        own = section or "1"
        if _is_attachment_like(node):
            return None, None
        if ctype == "text/html":
            return own, None
        if ctype == "text/plain":
            return None, own
        return None, None
    prefix = f"{section}." if section else ""
    numbered = [(f"{prefix}{i + 1}", child) for i, child in enumerate(parts)]
    subtype = node["subtype"]
    if subtype == "related":
        start = _params(node).get("start", "").strip()
        root = next((p for p in numbered if start and (p[1].get("id") or "").strip() == start), numbered[0])
        numbered = [root]
    elif subtype in ("signed", "report"):
        numbered = numbered[:1]
    elif subtype == "encrypted":
        return None, None
    results = [_pick_bodies(child, sec, depth + 1) for sec, child in numbered]
    if subtype == "alternative":
        results.reverse()  # RFC 2046 §5.1.4: the last alternative is the preferred one
    html_section = next((h for h, _ in results if h), None)
    text_section = next((t for _, t in results if t), None)
    return html_section, text_section


def _part_text(raw: bytes, node: Node, decoded: dict[int, str] | None = None) -> str:
    """The decoded text of a leaf part; ``decoded`` remembers it by node for a second use
    (the search text and the preview both want the text body: decode it once)."""
    if decoded is not None and id(node) in decoded:
        return decoded[id(node)]
    text = _decode_part_text(raw, node)
    if decoded is not None:
        decoded[id(node)] = text
    return text


def _decode_part_text(raw: bytes, node: Node) -> str:
    body = raw[node["body_start"] : min(node["body_end"], node["body_start"] + MAX_TEXT_PART_BYTES)]
    data = decode_transfer(body, node.get("encoding") or "")
    text = decode_bytes(data, _params(node).get("charset"))
    if node["subtype"] == "html":
        text = html_to_text(text)
    return text


# --- the parser -------------------------------------------------------------------------------


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a raw RFC 5322 message. Never raises: metadata is best effort on broken input."""
    try:
        return _parse(raw)
    except Exception:  # a bug must not bounce mail: keep a structure IMAP can still serve
        logger.exception("MIME parsing failed; storing a minimal structure")
        return _minimal(raw)


def _minimal(raw: bytes) -> ParsedMessage:
    """The whole body as one text/plain part, after the header block if that can be found."""
    try:
        header_end, _ = scan_header_block(raw, 0, len(raw))
    except Exception:
        header_end = 0
    node: Node = {
        "type": "text",
        "subtype": "plain",
        "params": [["charset", "us-ascii"]],
        "id": None,
        "description": None,
        "encoding": "7BIT",
        "size": len(raw) - header_end,
        "md5": None,
        "disposition": None,
        "language": None,
        "location": None,
        "header_start": 0,
        "header_end": header_end,
        "body_start": header_end,
        "body_end": len(raw),
        "lines": raw.count(b"\n", header_end),
    }
    return ParsedMessage(
        header_size=header_end, size=len(raw), envelope=[None] * 10, bodystructure=node, text_part="1"
    )


def _parse(raw: bytes) -> ParsedMessage:
    headers, root = parse_message_structure(raw)
    envelope = build_envelope(headers)
    subject = decode_header_value(headers.get("subject") or "")
    result = ParsedMessage(
        subject=subject,
        # The envelope already holds the parsed lists; Sender and Reply-To there default to From.
        from_=addresses_from_envelope(envelope[2] or []),
        sender=addresses_from_envelope(envelope[3] or []) if headers.get("sender") else [],
        reply_to=addresses_from_envelope(envelope[4] or []) if headers.get("reply-to") else [],
        to=addresses_from_envelope(envelope[5] or []),
        cc=addresses_from_envelope(envelope[6] or []),
        bcc=addresses_from_envelope(envelope[7] or []),
        date=parse_date(headers.get("date")),
        message_id=next(iter(parse_message_ids(headers.get("message-id"))), ""),
        in_reply_to=parse_message_ids(headers.get("in-reply-to")),
        references=parse_message_ids(headers.get("references")),
        thread_subject=normalize_thread_subject(subject),
        header_size=root["header_end"],
        size=len(raw),
        envelope=envelope,
        bodystructure=root,
    )
    html_section, text_section = _pick_bodies(root, "")
    result.html_part, result.text_part = html_section, text_section
    nodes = iter_nodes(root)
    by_section = {section: node for section, node in nodes if "parts" not in node}
    html_text = ""
    if html_section and html_section in by_section:
        html_text = decode_bytes(
            decode_transfer(
                raw[by_section[html_section]["body_start"] : by_section[html_section]["body_end"]],
                by_section[html_section].get("encoding") or "",
            ),
            _params(by_section[html_section]).get("charset"),
        )
    result.attachments = _attachments(raw, nodes, {html_section, text_section}, html_text)
    result.has_attachments = any(a["disposition"] == "attachment" for a in result.attachments)
    decoded: dict[int, str] = {}
    result.text = _index_text(raw, root, subject, decoded)
    preview_source = ""
    if text_section and text_section in by_section:
        preview_source = _part_text(raw, by_section[text_section], decoded)
    elif html_text:
        preview_source = html_to_text(html_text[:MAX_TEXT_PART_BYTES])
    result.preview = preview_text(preview_source)
    return result


def preview_text(text: str) -> str:
    """The first MAX_PREVIEW_CHARS of ``text[:MAX_PREVIEW_CHARS * 20]`` with whitespace runs made
    one space, stripped. Collapsing a prefix gives a prefix of the collapsed whole, so a short
    prefix is collapsed first and a longer one only when it was mostly whitespace (the whole
    4,000 characters took a quarter of the parse of a plain message)."""
    limit = MAX_PREVIEW_CHARS * 20
    size = MAX_PREVIEW_CHARS * 2
    while True:
        collapsed = _WS_RE.sub(" ", text[: min(size, limit)]).lstrip()
        if len(collapsed) > MAX_PREVIEW_CHARS or size >= limit or size >= len(text):
            return collapsed.rstrip()[:MAX_PREVIEW_CHARS]
        size *= 4


def _index_text(raw: bytes, root: Node, subject: str, decoded: dict[int, str] | None = None) -> str:
    """Decoded text of text parts for full-text search; one body per multipart/alternative."""
    chunks: list[str] = []
    total = 0
    stack: list[Node] = [root]
    while stack and total < MAX_TEXT_CHARS:
        node = stack.pop()
        parts = node.get("parts")
        if parts is not None:
            if node["subtype"] == "alternative":
                plain = [p for p in parts if _content_type(p) == "text/plain"]
                parts = plain[:1] or parts[-1:]
            stack.extend(reversed(parts))
            continue
        message = node.get("message")
        if message is not None:
            inner_subject = message["envelope"][1]
            if inner_subject:
                chunks.append(decode_header_value(inner_subject))
            stack.append(message["bodystructure"])
            continue
        if _content_type(node) in _TEXT_INDEX_TYPES:
            text = _part_text(raw, node, decoded)
            chunks.append(text)
            total += len(text)
    return "\n".join(chunks)[:MAX_TEXT_CHARS]


def _attachments(
    raw: bytes, nodes: list[tuple[str, Node]], body_sections: set[str | None], html_text: str
) -> list[dict[str, Any]]:
    attachments: list[dict[str, Any]] = []
    inside_message: set[int] = set()
    related_ids: set[int] = set()
    for _, node in nodes:
        message = node.get("message")
        if message is not None:
            inside_message.update(id(n) for _, n in iter_nodes(message["bodystructure"]))
        if node.get("subtype") == "related" and "parts" in node:
            related_ids.update(id(p) for p in node["parts"])
    for section, node in nodes:
        if "parts" in node or id(node) in inside_message or section in body_sections:
            continue
        if len(attachments) >= MAX_ATTACHMENTS:
            break
        ctype = _content_type(node)
        if ctype in _NOT_ATTACHMENT_TYPES:
            continue
        disposition, _ = _disposition(node)
        filename = _filename(node)
        if (
            node["type"] == "text"
            and ctype != "text/calendar"
            and not filename
            and disposition != "attachment"
        ):
            continue  # a further inline text body (e.g. Apple Mail's text around an image)
        content_id = (node.get("id") or "").strip().strip("<>") or None
        message = node.get("message")
        if message is not None and not filename:
            inner_subject = decode_header_value(message["envelope"][1] or "").strip()
            filename = f"{inner_subject or 'message'}.eml"
        if not filename:
            if ctype == "text/calendar":
                filename = "invite.ics"
            else:
                filename = f"part-{section}{mimetypes.guess_extension(ctype) or '.bin'}"
        referenced = content_id is not None and (
            f"cid:{content_id}" in html_text or (id(node) in related_ids and not html_text)
        )
        kind = "inline" if referenced and message is None else "attachment"
        attachments.append(
            {
                "part": section,
                "filename": filename.replace("\x00", ""),
                "content_type": ctype,
                "size": _decoded_size(raw, node),
                "content_id": content_id,
                "disposition": kind,
            }
        )
    return attachments


def _decoded_size(raw: bytes, node: Node) -> int:
    size = int(node["size"])
    encoding = (node.get("encoding") or "").strip().lower()
    if encoding == "base64":
        breaks = raw.count(b"\n", node["body_start"], node["body_end"])
        crs = raw.count(b"\r", node["body_start"], node["body_end"])
        tail = raw[max(node["body_start"], node["body_end"] - 8) : node["body_end"]].rstrip()
        padding = len(tail) - len(tail.rstrip(b"="))
        return max(0, (size - breaks - crs - padding) * 3 // 4)
    return size
