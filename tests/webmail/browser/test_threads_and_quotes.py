"""Conversation rows kept live, and rich-text replies quoting HTML, in a real Chromium."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry, Message
from tests.conftest import make_message

from .conftest import screenshot, sign_in, wait_live

BASE_URL_WARNING = "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings(BASE_URL_WARNING)]

HTML = (
    "From: Carol Jones <carol@example.org>\r\nTo: alice@a.test\r\nSubject: Party\r\n"
    "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <party-1@example.org>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBring cake.\r\n"
    "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Bring <b>cake</b>.</p><script>alert(1)</script>\r\n"
    "--alt--\r\n"
)


def test_a_reply_arriving_live_updates_the_conversation_row(page: Any, web_server: str,
                                                            people: dict[str, Account]) -> None:
    store.message_deliver(raw=make_message(subject="Trip", message_id="trip-1@example.org", body="Where to?\r\n"),
                          recipients=["alice@a.test"])
    store.message_deliver(raw=make_message(subject="Other", body="Unrelated.\r\n"), recipients=["alice@a.test"])
    sign_in(page, web_server, "alice@a.test")
    wait_live(page)
    rows = page.locator("#list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Other")
    store.message_deliver(raw=make_message(subject="Re: Trip", message_id="trip-2@example.org", sender="dan@example.org",
                                           body="The coast.\r\n",
                                           extra_headers="In-Reply-To: <trip-1@example.org>\r\n"),
                          recipients=["alice@a.test"])
    # Still two rows; the thread moved to the top with its count and newest preview.
    expect(rows.first).to_contain_text("The coast.", timeout=5000)
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".count")).to_have_text("2")
    screenshot(page, "conversation-list")
    # Archiving the row moves both messages.
    rows.first.locator("input[name=ids]").check()
    page.get_by_role("button", name="Archive").click()
    expect(rows).to_have_count(1)
    archive = Folder.objects.get(account=people["alice"], special_use=Folder.SpecialUse.ARCHIVE)
    assert FolderEntry.objects.filter(folder=archive).count() == 2


def test_rich_reply_quotes_the_html_and_plain_switch_quotes_with_angle_brackets(
    page: Any, web_server: str, people: dict[str, Account]
) -> None:
    store.message_deliver(raw=HTML.encode(), recipients=["alice@a.test"])
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Party").click()
    page.get_by_role("link", name="Reply", exact=True).click()
    expect(page.locator("#rich-toggle")).to_be_checked()
    expect(page.locator(".quote-intro")).to_have_text(re.compile(r"^On .*, Carol Jones <carol@example.org> wrote:$"))
    expect(page.frame_locator("iframe.quoted-frame").get_by_text("cake")).to_be_visible()
    page.locator("#rich-editor").click()
    page.keyboard.type("Sure, chocolate.")
    screenshot(page, "rich-reply")
    # Switch to plain text and back: the typed text stays, the quote becomes "> " lines.
    page.locator("#rich-toggle").uncheck()
    body = page.get_by_label("Message")
    expect(body).to_have_value(re.compile(r"^Sure, chocolate\.\n\nOn .* wrote:\n> Bring cake\.", re.S))
    page.locator("#rich-toggle").check()
    expect(page.locator("#rich-editor")).to_contain_text("> Bring cake.")
    page.locator("#rich-toggle").uncheck()
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    sent = FolderEntry.objects.select_related("message__blob").get(
        folder__account=people["alice"], folder__special_use=Folder.SpecialUse.SENT).message
    parsed = email.message_from_bytes(bytes(sent.blob.data), policy=email.policy.default)
    assert parsed.get_content_type() == "text/plain"
    text = parsed.get_content()
    assert text.startswith("Sure, chocolate.") and text.count("> Bring cake.") == 1


def test_rich_reply_sends_the_quote_in_a_blockquote(page: Any, web_server: str, people: dict[str, Account]) -> None:
    store.message_deliver(raw=HTML.encode(), recipients=["alice@a.test"])
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Party").click()
    page.get_by_role("link", name="Reply", exact=True).click()
    page.locator("#rich-editor").click()
    page.keyboard.type("Yes!")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    sent = Message.objects.get(account=people["alice"], subject="Re: Party")
    parsed = email.message_from_bytes(bytes(sent.blob.data), policy=email.policy.default)
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert html.index("Yes!") < html.index("wrote:") < html.index("<blockquote") < html.index("<b>cake</b>")
    assert "<script" not in html
    assert parsed["In-Reply-To"] == "<party-1@example.org>"


def test_a_reply_whose_original_is_deleted_before_send_warns_keeps_the_text_and_sends_on_the_second_press(
    page: Any, web_server: str, people: dict[str, Account]
) -> None:
    store.message_deliver(raw=HTML.encode(), recipients=["alice@a.test"])
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Party").click()
    page.get_by_role("link", name="Reply", exact=True).click()
    page.locator("#rich-editor").click()
    page.keyboard.type("Count me in.")
    # Meanwhile another device deletes the original for good.
    original = Message.objects.get(account=people["alice"], subject="Party")
    for entry in FolderEntry.objects.filter(message=original).select_related("folder"):
        store.folder_expunge(account=people["alice"], folder=entry.folder, uids=[entry.uid], only_deleted=False)
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("the message you are answering was deleted after you opened it")
    expect(alert).to_contain_text("press Send again")
    expect(page.locator("#rich-editor")).to_contain_text("Count me in.")
    expect(page.locator("#quoted")).to_have_count(0)
    screenshot(page, "reply-original-deleted")
    assert not Message.objects.filter(account=people["alice"], subject="Re: Party", draft=False).exists()
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    expect(page.locator(".flash[role=status]")).to_contain_text("not marked as answered")
    sent = FolderEntry.objects.select_related("message__blob").get(
        folder__account=people["alice"], folder__special_use=Folder.SpecialUse.SENT).message
    parsed = email.message_from_bytes(bytes(sent.blob.data), policy=email.policy.default)
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "Count me in." in html and "cake" not in html
    assert parsed["In-Reply-To"] == "<party-1@example.org>"
