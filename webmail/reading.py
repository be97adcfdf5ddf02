"""Turning a stored message into something a browser may show: pure helpers, no ORM.

HTML is cleaned by nh3 (an allow-list: no script, no event handlers, no forms, no frames, no
``<base>``/``<meta>``), then shown in a sandboxed iframe whose document is served under a strict
Content-Security-Policy, so even a sanitiser gap cannot run script or fetch a remote resource.
Remote images are dropped unless the reader allowed them; ``cid:`` references become URLs of
our inline-image view.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable
from typing import Any

import nh3

from mailcore import mime

Node = dict[str, Any]

_URL_SCHEMES = {"http", "https", "mailto", "cid", "data"}
_ALLOWED_TAGS = {
    "a", "abbr", "address", "article", "aside", "b", "bdi", "bdo", "blockquote", "br", "caption", "center",
    "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption",
    "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd",
    "li", "main", "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "section", "small", "span",
    "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr",
    "tt", "u", "ul", "var", "wbr",
}
_COMMON_ATTRS = {"align", "valign", "dir", "lang", "title", "style", "class", "width", "height", "bgcolor", "color"}
_ALLOWED_ATTRS: dict[str, set[str]] = {
    "*": _COMMON_ATTRS,
    "a": {"href", "name"},
    "img": {"src", "alt", "border"},
    "font": {"face", "size"},
    "table": {"border", "cellpadding", "cellspacing"},
    "td": {"colspan", "rowspan", "nowrap"},
    "th": {"colspan", "rowspan", "nowrap"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
}
# url(), image-set(), src() and the like in inline styles can fetch (background images, fonts);
# expression() and behaviours are old IE script vectors. A style that mentions any of them is
# dropped whole, and so is one with a backslash or a comment: CSS escapes ("\75 rl(" is url()) and
# comments would hide those words from this check, and honest mail styles need neither.
_DANGEROUS_CSS = re.compile(
    r"url\s*\(|image-set\s*\(|src\s*\(|cross-fade\s*\(|element\s*\(|expression\s*\(|behaviou?r\s*:"
    r"|-moz-binding|@import|javascript:|\\|/\*",
    re.I,
)
_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.I)


def sanitize_html(
    html: str,
    *,
    inline_url: Callable[[str], str | None],
    allow_remote_images: bool,
) -> tuple[str, bool]:
    """Clean ``html``; returns (clean html, whether a remote image was blocked)."""
    blocked = False

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        nonlocal blocked
        if attr == "style":
            return None if _DANGEROUS_CSS.search(value) else value
        if tag == "img" and attr == "src":
            stripped = value.strip()
            if stripped.lower().startswith("cid:"):
                return inline_url(stripped[4:].strip().strip("<>"))
            if stripped.lower().startswith("data:image/"):
                return stripped
            if _REMOTE.match(stripped):
                if allow_remote_images:
                    return stripped
                blocked = True
                return None
            return None
        if tag == "a" and attr == "href":
            lowered = value.strip().lower()
            if lowered.startswith(("http:", "https:", "mailto:")):
                return value
            return None
        return value

    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style", "title", "head", "noscript", "iframe", "object", "embed",
                            "template", "svg", "math", "textarea", "select"},
        attributes=_ALLOWED_ATTRS,
        url_schemes=_URL_SCHEMES,
        attribute_filter=attribute_filter,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return cleaned, blocked


def node_for_section(bodystructure: Node, section: str) -> Node | None:
    """The leaf part numbered ``section`` (IMAP numbering) in a stored BODYSTRUCTURE."""
    if not bodystructure or not section:
        return None
    for number, node in mime.iter_nodes(bodystructure):
        if number == section and "parts" not in node:
            return node
    return None


def _charset(node: Node) -> str | None:
    for key, value in node.get("params") or []:
        if str(key).lower() == "charset":
            return str(value)
    return None


def part_text(raw: bytes, bodystructure: Node, section: str) -> str | None:
    node = node_for_section(bodystructure, section)
    if node is None:
        return None
    return mime.decode_bytes(mime.decoded_part(raw, node), _charset(node))


def part_bytes(raw: bytes, bodystructure: Node, section: str) -> bytes | None:
    node = node_for_section(bodystructure, section)
    if node is None:
        return None
    return mime.decoded_part(raw, node)


def plain_text_body(raw: bytes, bodystructure: Node, text_part: str, html_part: str) -> str:
    """The text to show (and quote in replies): the text part, else the HTML as text."""
    if text_part:
        text = part_text(raw, bodystructure, text_part)
        if text is not None:
            return text
    if html_part:
        html = part_text(raw, bodystructure, html_part)
        if html is not None:
            return mime.html_to_text(html)
    if not bodystructure:
        head, sep, body = raw.partition(b"\r\n\r\n")
        return mime.decode_bytes(body if sep else raw, None)
    return ""


def quote_text(text: str) -> str:
    """Quote ``text`` for a reply, one "> " per line (RFC 3676 style)."""
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    return "\n".join(">" + line if line.startswith(">") else "> " + line for line in lines)


_COMPOSE_TAGS = {"b", "strong", "i", "em", "u", "s", "ul", "ol", "li", "p", "div", "br", "blockquote", "a", "span"}


def compose_html_clean(html: str) -> str:
    """What the rich-text editor may send out: simple formatting and links, nothing else."""
    if not html.strip():
        return ""
    return nh3.clean(
        html,
        tags=_COMPOSE_TAGS,
        clean_content_tags={"script", "style"},
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


# Outgoing quotes are wrapped in this element; a resumed draft is cut there, because the
# quote travels by reference (the original message) rather than through the editor.
QUOTE_MARK = '<div class="wm-quote">'
_BLOCKQUOTE_STYLE = "margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex"


def text_as_html(text: str) -> str:
    return f'<div style="white-space:pre-wrap">{htmllib.escape(text.replace(chr(13), ""))}</div>'


def quote_html(original_html: str, attribution: str) -> str:
    """A reply's quote: the attribution line, then the (already sanitised) original in a
    ``<blockquote type="cite">``, as Gmail and Thunderbird write it."""
    return (f'{QUOTE_MARK}<div>{htmllib.escape(attribution)}</div>'
            f'<blockquote type="cite" style="{_BLOCKQUOTE_STYLE}">{original_html}</blockquote></div>')


def forward_html(original_html: str, header_lines: list[str]) -> str:
    """A forward: the original's headers block, then the (already sanitised) original."""
    header = "<br>".join(htmllib.escape(line) for line in header_lines)
    return f"{QUOTE_MARK}<div>{header}</div><br>{original_html}</div>"


def quotable_html(html: str) -> str:
    """The original HTML as it may go out again in a quote: cleaned by the reading allow-list,
    ``cid:`` references kept (the images travel along as related parts), remote images kept
    (the recipient's client decides about those)."""
    cleaned, _ = sanitize_html(html, inline_url=lambda cid: f"cid:{cid}", allow_remote_images=True)
    return cleaned
