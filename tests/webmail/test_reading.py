"""The pure reading and outgoing helpers: sanitising, quoting, address lists, message building."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from webmail.outgoing import AddressListError, Attachment, Outgoing, build_message, parse_address_field
from webmail.reading import quote_text, sanitize_html


def _clean(html: str, images: bool = False) -> tuple[str, bool]:
    return sanitize_html(html, inline_url=lambda cid: f"https://mail.test/inline/{cid}/", allow_remote_images=images)


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        '<a href="javascript:alert(1)">x</a>',
        '<a href=" JaVaScRiPt:alert(1)">x</a>',
        '<svg onload="alert(1)"><script>alert(1)</script></svg>',
        '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
        '<base href="https://evil.example/">',
        '<form action="https://evil.example/"><input name=p></form>',
        '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
        '<object data="https://evil.example/x.swf"></object>',
        '<div style="background:url(https://evil.example/t.png)">x</div>',
        '<div style="width: expression(alert(1))">x</div>',
        '<div style="background:\\75 rl(https://evil.example/escaped.png)">x</div>',
        '<div style="background:u\\72l(https://evil.example/escaped.png)">x</div>',
        '<div style="background-image:image-set(\'https://evil.example/set.png\' 1x)">x</div>',
        '<div style="background-image:-webkit-image-set(\'https://evil.example/set.png\' 1x)">x</div>',
        '<div style="background:ur/**/l(https://evil.example/c.png)">x</div>',
        '<div style="background:&#117;rl(https://evil.example/entity.png)">x</div>',
        "<style>@import url(https://evil.example/x.css);</style>",
        '<link rel="stylesheet" href="https://evil.example/x.css">',
        '<img src="https://tracker.example/pixel.gif">',
        '<img srcset="https://tracker.example/pixel.gif 1x">',
        '<video poster="https://tracker.example/p.png"></video>',
    ],
)
def test_hostile_html_loses_every_active_or_fetching_part(hostile: str) -> None:
    cleaned, _ = _clean(f"<p>before</p>{hostile}<p>after</p>")
    lowered = cleaned.lower()
    for needle in ("<script", "onerror", "onload", "javascript:", "<meta", "<base", "<form", "<iframe",
                   "<object", "url(", "expression(", "@import", "<link", "tracker.example", "evil.example",
                   "<svg", "<style", "srcset", "<video"):
        assert needle not in lowered, (hostile, cleaned)
    assert "before" in cleaned and "after" in cleaned


def test_remote_images_are_blocked_and_reported_until_allowed() -> None:
    html = '<img src="https://tracker.example/p.gif" alt="t">'
    cleaned, blocked = _clean(html)
    assert blocked and "tracker.example" not in cleaned
    cleaned, blocked = _clean(html, images=True)
    assert not blocked and 'src="https://tracker.example/p.gif"' in cleaned


def test_cid_images_point_at_our_inline_view() -> None:
    cleaned, blocked = _clean('<img src="cid:logo@x">')
    assert 'src="https://mail.test/inline/logo@x/"' in cleaned and not blocked


def test_links_open_outside_the_frame_without_referrer() -> None:
    cleaned, _ = _clean('<a href="https://example.org/">x</a>')
    assert 'target="_blank"' in cleaned and "noreferrer" in cleaned


def test_quote_text_prefixes_every_line() -> None:
    assert quote_text("a\r\n> b\r\n\r\nc\r\n") == "> a\n>> b\n> \n> c"


def test_address_lists_parse_and_name_the_bad_entry() -> None:
    assert parse_address_field("Ann <ANN@X.test>, bob@y.test") == [("Ann", "ann@x.test"), ("", "bob@y.test")]
    with pytest.raises(AddressListError, match="not an address"):
        parse_address_field("bob@y.test, not an address")


def test_built_message_has_threading_headers_and_attachments_but_no_bcc() -> None:
    outgoing = Outgoing(from_name="Alice", from_address="alice@a.test", to=[("", "bob@b.test")],
                        bcc=[("", "eve@c.test")], subject="Héllo", body="Line one\nLine two",
                        in_reply_to="orig@x", references=["root@x", "orig@x"],
                        attachments=[Attachment("a.bin", "application/octet-stream", b"\x00\x01")])
    raw = build_message(outgoing, message_id="<new@mail.test>", date=datetime(2026, 11, 28, tzinfo=UTC))
    assert b"\r\n" in raw and b"eve@c.test" not in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Héllo" and parsed["In-Reply-To"] == "<orig@x>"
    assert parsed["References"] == "<root@x> <orig@x>"
    [part] = list(parsed.iter_attachments())  # type: ignore[attr-defined]
    assert part.get_filename() == "a.bin" and part.get_content() == b"\x00\x01"
