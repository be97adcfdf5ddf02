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
    fields = {"to": "mallory@a.test", "subject": "steal", "body": "x", "html": "<p>x</p>",
              "quote": str(html_original.pk), "quote_mode": "forward"}
    # Answered as for a message deleted meanwhile (nothing tells it exists), then sent without.
    refused = mallory_client.post("/compose/", fields)
    assert refused.status_code == 409 and b"can no longer be included" in refused.content
    assert b"soup" not in refused.content and b"Menu" not in refused.content
    mallory_client.post("/compose/", {**fields, "quote": "", "quote_mode": ""})
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


def _expunge(message: Message) -> None:
    """Delete for good, as another device would (IMAP EXPUNGE): the message row goes too."""
    for entry in FolderEntry.objects.filter(message=message).select_related("folder"):
        store.folder_expunge(account=entry.folder.account, folder=entry.folder, uids=[entry.uid], only_deleted=False)
    assert not Message.objects.filter(pk=message.pk).exists()


def test_a_rich_reply_whose_original_was_deleted_is_refused_once_with_the_text_kept(
        alice_client: Client, alice: Account, html_original: Message) -> None:
    fields = _form(alice_client.get(f"/compose/?reply={html_original.pk}").content.decode())
    fields.update(html="<div>Yes please</div>", body="Yes please")
    _expunge(html_original)
    response = alice_client.post("/compose/", fields)
    page = response.content.decode()
    assert response.status_code == 409
    assert ("the message you are answering was deleted after you opened it, perhaps from another device, "
            "so the quoted text can no longer be included") in page
    assert "press Send again to send it without" in page and 'role="alert"' in page
    kept = _form(page)
    assert kept["html"] == "<div>Yes please</div>" and kept["subject"] == "Re: Menu"
    assert kept["to"] == "Carol Jones <carol@example.org>"
    assert kept["quote"] == "" and kept["quote_mode"] == ""  # so the next Send goes without it
    assert kept["in_reply_to"] == "menu-1@example.org"
    assert 'id="quoted"' not in page
    assert FolderEntry.objects.filter(folder=folder_of(alice, Folder.SpecialUse.SENT)).count() == 0
    # Send again: it goes, without the quote, still threaded by the original's Message-ID.
    response = alice_client.post("/compose/", kept)
    assert response.status_code == 302, response.content.decode()[:2000]
    sent = _sent(alice)
    html = sent.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "Yes please" in html and "soup" not in html and "wrote:" not in html
    assert sent["In-Reply-To"] == "<menu-1@example.org>"
    assert sent["References"] == "<start-0@example.org> <menu-1@example.org>"
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    assert "no longer in your mailbox, so it was not marked as answered" in \
        alice_client.get(f"/f/{inbox.pk}/").content.decode()


def test_a_forward_whose_original_was_deleted_says_what_is_lost_and_keeps_new_uploads(
        alice_client: Client, alice: Account, bob: Account, html_original: Message) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    fields = _form(alice_client.get(f"/compose/?forward={html_original.pk}").content.decode())
    assert fields["keep_from"] == str(html_original.pk) and fields["keep"]
    fields.update(to="bob@b.test", html="<div>FYI</div>", body="FYI")
    _expunge(html_original)
    upload = SimpleUploadedFile("notes.txt", b"my own notes", content_type="text/plain")
    response = alice_client.post("/compose/", {**fields, "attachments": [upload]})
    page = response.content.decode()
    assert response.status_code == 409
    assert "the message you are forwarding was deleted after you opened it" in page
    assert "so the forwarded message and its" in page and "can no longer be included" in page
    assert not Message.objects.filter(account=bob).exists()
    # The new upload cannot go back to the browser: it waits in a draft the form now points at.
    kept = _form(page)
    assert kept["draft"] and kept["keep_from"] == kept["draft"] and "notes.txt" in page
    assert "menu.pdf" not in page
    response = alice_client.post("/compose/", kept)
    assert response.status_code == 302, response.content.decode()[:2000]
    received = _parsed(Message.objects.get(account=bob))
    assert [(a.get_filename(), a.get_content()) for a in received.iter_attachments()] == [("notes.txt", "my own notes")]
    assert "FYI" in received.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert FolderEntry.objects.filter(folder=folder_of(alice, Folder.SpecialUse.DRAFTS)).count() == 0


def test_a_draft_deleted_elsewhere_before_send_says_its_attachments_are_gone(
        alice_client: Client, alice: Account, bob: Account, html_original: Message) -> None:
    fields = _form(alice_client.get(f"/compose/?forward={html_original.pk}").content.decode())
    fields.update(to="bob@b.test", html="<div>FYI</div>", body="FYI")
    saved = alice_client.post("/compose/draft/", fields).json()
    fields.update(draft=str(saved["draft"]), keep_from=str(saved["keep_from"]), keep=saved["keep"])
    _expunge(Message.objects.get(pk=saved["draft"]))
    page = alice_client.post("/compose/", fields).content.decode()
    assert "this draft was sent or deleted elsewhere, so" in page and "attachment" in page
    assert "the message you are forwarding" not in page  # the original is still there
    assert not Message.objects.filter(account=bob).exists()
    assert alice_client.post("/compose/", _form(page)).status_code == 302
    assert Message.objects.filter(account=bob).count() == 1
