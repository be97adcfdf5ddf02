"""Replies and forwards of HTML mail: quoted HTML in rich text, "> " in plain text, forwarded
headers, attachments and cid: images, threading headers, reply-all addressing."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from django.test import Client

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry, Message
from tests.webmail.conftest import Deliver, folder_of

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40

HTML_MESSAGE = (
    "From: Carol Jones <carol@example.org>\r\nTo: Alice <alice@a.test>, Dan <dan@x.example>\r\n"
    "Cc: ALICE@a.test, dan@X.example, Erin <erin@y.example>, alice.alias@a.test\r\n"
    "Subject: Menu\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <menu-1@example.org>\r\n"
    "References: <start-0@example.org>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n'
    '--mix\r\nContent-Type: multipart/related; boundary="rel"\r\n\r\n'
    '--rel\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nToday: soup.\r\nTomorrow: pie.\r\n"
    "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    '<p>Today: <b>soup</b>.</p><img src="cid:logo@example.org" alt="logo">'
    "<script>alert(1)</script><p onclick=\"x()\">Tomorrow: pie.</p>\r\n"
    "--alt--\r\n"
    "--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@example.org>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + __import__("base64").b64encode(PNG).decode() + "\r\n--rel--\r\n"
    "--mix\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=menu.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--mix--\r\n"
)


def _parsed(message: Message) -> email.message.EmailMessage:
    return email.message_from_bytes(bytes(message.blob.data), policy=email.policy.default)  # type: ignore[return-value]


def _sent(account: Account) -> email.message.EmailMessage:
    folder = folder_of(account, Folder.SpecialUse.SENT)
    entry = FolderEntry.objects.filter(folder=folder).select_related("message__blob").order_by("-uid").first()
    assert entry is not None
    return _parsed(entry.message)


def _form(page: str) -> dict[str, str]:
    """The fields of the compose form as the browser would post them (hidden and text inputs)."""
    out = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and name.group(1) not in ("attachments",):
            out[name.group(1)] = (value.group(1) if value else "").replace("&lt;", "<").replace("&gt;", ">") \
                .replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&")
    return out


@pytest.fixture
def html_original(alice: Account, deliver: Deliver) -> Message:
    return deliver(raw=HTML_MESSAGE.encode())


def test_reply_to_html_opens_in_rich_text_quoting_by_reference(alice_client: Client, html_original: Message) -> None:
    page = alice_client.get(f"/compose/?reply={html_original.pk}").content.decode()
    fields = _form(page)
    assert fields["quote"] == str(html_original.pk) and fields["quote_mode"] == "reply"
    assert 'id="rich-toggle" checked' in page
    assert f'src="/m/{html_original.pk}/body/"' in page and "sandbox=" in page  # the preview is sandboxed
    assert "On Sat, 28 Nov 2026 at 12:00, Carol Jones &lt;carol@example.org&gt; wrote:" in page
    # The plain-text field keeps the "> " quote, for when rich text is switched off.
    assert "&gt; Today: soup." in page


def test_reply_in_rich_text_sends_the_sanitised_html_in_a_blockquote(alice_client: Client, alice: Account,
                                                                     html_original: Message) -> None:
    fields = _form(alice_client.get(f"/compose/?reply={html_original.pk}").content.decode())
    fields.update(html="<div>Yes please</div>", body="Yes please")
    response = alice_client.post("/compose/", fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    sent = _sent(alice)
    html = sent.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    text = sent.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert html.index("Yes please") < html.index("wrote:") < html.index('<blockquote type="cite"')
    assert "On Sat, 28 Nov 2026 at 12:00, Carol Jones &lt;carol@example.org&gt; wrote:" in html
    assert "<b>soup</b>" in html and "Tomorrow: pie." in html
    assert "<script" not in html and "alert(1)" not in html and "onclick" not in html
    assert text.startswith("Yes please") and "> Today: soup.\n> Tomorrow: pie." in text
    assert sent["In-Reply-To"] == "<menu-1@example.org>"
    assert sent["References"] == "<start-0@example.org> <menu-1@example.org>"
    # The quoted image goes along as a related part with its Content-ID.
    [image] = [p for p in sent.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<logo@example.org>" and image.get_content() == PNG
    assert 'src="cid:logo@example.org"' in html


def test_reply_with_rich_text_switched_off_is_plain_with_the_quote_as_typed(alice_client: Client, alice: Account,
                                                                            html_original: Message) -> None:
    fields = _form(alice_client.get(f"/compose/?reply={html_original.pk}").content.decode())
    # What compose.js posts after switching rich text off: the quote is in the text, not by reference.
    fields.update(html="", quote="", quote_mode="", body="Fine.\n\nOn ... wrote:\n> Today: soup.")
    alice_client.post("/compose/", fields)
    sent = _sent(alice)
    assert sent.get_content_type() == "text/plain"
    assert sent.get_content().count("> Today: soup.") == 1


def test_forward_of_html_keeps_headers_attachments_and_cid_images(alice_client: Client, alice: Account, bob: Account,
                                                                   html_original: Message) -> None:
    page = alice_client.get(f"/compose/?forward={html_original.pk}").content.decode()
    fields = _form(page)
    assert fields["quote_mode"] == "forward" and fields["subject"] == "Fwd: Menu"
    assert "menu.pdf" in page  # listed as attached
    fields.update(to="bob@b.test", html="<div>FYI</div>", body="FYI")
    response = alice_client.post("/compose/", fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    received = _parsed(Message.objects.get(account=bob))
    html = received.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    for line in ("---------- Forwarded message ---------", "From: Carol Jones &lt;carol@example.org&gt;",
                 "Subject: Menu", "Date: Sat, 28 Nov 2026 at 12:00"):
        assert line in html
    assert "<b>soup</b>" in html and 'src="cid:logo@example.org"' in html and "<script" not in html
    [image] = [p for p in received.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<logo@example.org>"
    # The image sits beside the HTML in multipart/related, so the recipient's client shows it.
    related = [p for p in received.walk() if p.get_content_type() == "multipart/related"]
    assert related and any(p.get_content_type() == "text/html" for p in related[0].iter_parts())
    assert [a.get_filename() for a in received.iter_attachments()] == ["menu.pdf"]
    text = received.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Forwarded message" in text and "Today: soup." in text
    # And our reader shows the forwarded image through its inline view.
    bob_client = Client()
    bob_client.force_login(bob)
    mine = Message.objects.get(account=bob)
    body = bob_client.get(f"/m/{mine.pk}/body/").content.decode()
    inline = re.search(r'src="(http://testserver/inline/[^"]+)"', body)
    assert inline is not None
    assert bob_client.get(inline.group(1).removeprefix("http://testserver")).content == PNG


def test_reply_all_leaves_out_my_addresses_and_aliases_and_dedupes(alice_client: Client, alice: Account,
                                                                   html_original: Message) -> None:
    store.alias_create(address="alice.alias@a.test", destinations=["alice@a.test"])
    fields = _form(alice_client.get(f"/compose/?reply={html_original.pk}&all=1").content.decode())
    assert fields["to"] == "Carol Jones <carol@example.org>"
    assert fields["cc"] == "Dan <dan@x.example>, Erin <erin@y.example>"


def test_reply_to_my_own_message_goes_to_its_recipients(alice_client: Client, alice: Account) -> None:
    alice_client.post("/compose/", {"to": "Dan <dan@x.example>", "subject": "Hi", "body": "Hello"})
    sent = Message.objects.get(account=alice)
    fields = _form(alice_client.get(f"/compose/?reply={sent.pk}").content.decode())
    assert fields["to"] == "Dan <dan@x.example>"


def test_a_quote_of_someone_elses_message_is_ignored(mallory_client: Client, mallory: Account,
                                                     html_original: Message) -> None:
    mallory_client.post("/compose/", {"to": "mallory@a.test", "subject": "steal", "body": "x", "html": "<p>x</p>",
                                      "quote": str(html_original.pk), "quote_mode": "forward"})
    received = [m for m in Message.objects.filter(account=mallory)]
    assert received
    for message in received:
        raw = bytes(message.blob.data)
        assert b"soup" not in raw and b"logo@example.org" not in raw


def test_a_draft_keeps_its_quote_by_reference(alice_client: Client, alice: Account, html_original: Message) -> None:
    fields = _form(alice_client.get(f"/compose/?reply={html_original.pk}").content.decode())
    fields.update(html="<div>Half written</div>", body="Half written")
    saved = alice_client.post("/compose/draft/", fields).json()
    draft = Message.objects.get(pk=saved["draft"])
    assert b"soup" in bytes(draft.blob.data)  # an IMAP client sees the whole reply
    page = alice_client.get(f"/compose/?draft={draft.pk}").content.decode()
    resumed = _form(page)
    assert resumed["quote"] == str(html_original.pk) and resumed["quote_mode"] == "reply"
    editor = page[page.index('id="rich-editor"'):]
    editor = editor[: editor.index("</div>\n")]
    assert "Half written" in editor and "soup" not in editor and "blockquote" not in editor
