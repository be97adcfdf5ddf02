"""Gmail-style keyboard shortcuts, in a real Chromium."""

from __future__ import annotations

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


def _deliver(to: str, **kwargs: str) -> Message:
    store.message_deliver(raw=make_message(to=to, **kwargs), recipients=[to])
    return Message.objects.filter(account__address=to).order_by("-pk").first()  # type: ignore[return-value]


def _folder_of(message: Message) -> str:
    return FolderEntry.objects.select_related("folder").get(message=message).folder.name


def test_list_shortcuts_move_select_star_mark_and_archive(page: Any, web_server: str, people: dict[str, Account]) -> None:
    oldest, middle, newest = (_deliver("alice@a.test", subject=s) for s in ("Oldest", "Middle", "Newest"))
    sign_in(page, web_server, "alice@a.test")
    wait_live(page)
    rows = page.locator("#list tbody tr")
    expect(rows).to_have_count(3)

    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    expect(page.get_by_role("dialog")).to_contain_text("Reply all")
    screenshot(page, "shortcuts-help")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()

    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bcursor\b"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bcursor\b"))  # "Middle"
    page.keyboard.press("x")
    expect(rows.nth(1).locator("input[name=ids]")).to_be_checked()
    page.keyboard.press("x")
    expect(rows.nth(1).locator("input[name=ids]")).not_to_be_checked()

    page.keyboard.press("s")
    expect(rows.nth(1).locator(".star-toggle")).to_have_attribute("aria-pressed", "true")
    middle.refresh_from_db()
    assert middle.flagged
    page.keyboard.press("Shift+I")
    expect(rows.nth(1)).not_to_have_class(re.compile(r"\bunread\b"))
    middle.refresh_from_db()
    assert middle.seen
    page.keyboard.press("Shift+U")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bunread\b"))

    page.keyboard.press("e")
    expect(page.get_by_role("link", name="Middle")).to_have_count(0)
    assert _folder_of(middle) == "Archive" and _folder_of(newest) == "INBOX" and _folder_of(oldest) == "INBOX"
    # The cursor moved to the row that took the archived one's place.
    expect(rows.nth(1)).to_have_class(re.compile(r"\bcursor\b"))
    page.keyboard.press("#")
    expect(page.get_by_role("link", name="Oldest")).to_have_count(0)
    assert _folder_of(oldest) == "Trash"


def test_open_reply_forward_back_and_delete_from_the_message(page: Any, web_server: str,
                                                            people: dict[str, Account]) -> None:
    _deliver("alice@a.test", subject="Agenda")
    sign_in(page, web_server, "alice@a.test")
    page.keyboard.press("j")
    page.keyboard.press("o")
    expect(page.get_by_role("heading", name="Agenda")).to_be_visible()
    message_url = page.url
    page.keyboard.press("r")
    expect(page.get_by_label("Subject")).to_have_value("Re: Agenda")
    page.goto(message_url)
    page.keyboard.press("a")
    expect(page.get_by_label("Subject")).to_have_value("Re: Agenda")
    assert "all=1" in page.url
    page.goto(message_url)
    page.keyboard.press("f")
    expect(page.get_by_label("Subject")).to_have_value("Fwd: Agenda")
    page.goto(message_url)
    page.keyboard.press("u")
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Agenda")).to_be_visible()
    page.keyboard.press("#")
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    assert _folder_of(Message.objects.get(account=people["alice"])) == "Trash"


def test_shortcuts_never_fire_while_typing(page: Any, web_server: str, people: dict[str, Account]) -> None:
    sign_in(page, web_server, "alice@a.test")
    page.keyboard.press("c")
    page.wait_for_url(re.compile(r".*/compose/$"))
    to = page.get_by_label("To", exact=True)
    to.click()
    page.keyboard.type("jack#?e@example.org")
    page.get_by_label("Subject").click()
    page.keyboard.type("cu soon")
    page.get_by_label("Message").click()
    page.keyboard.type("u e # r a f s x ? c")
    expect(to).to_have_value("jack#?e@example.org")
    expect(page.get_by_label("Subject")).to_have_value("cu soon")
    expect(page.get_by_label("Message")).to_have_value(re.compile(r"^u e # r a f s x \? c"))
    expect(page.locator("dialog[open]")).to_have_count(0)
    assert page.url.endswith("/compose/")


def test_a_setting_turns_them_off(page: Any, web_server: str, people: dict[str, Account]) -> None:
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("checkbox", name=re.compile("^Keyboard shortcuts")).uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    people["alice"].refresh_from_db()
    assert people["alice"].keyboard_shortcuts is False
    inbox = Folder.objects.get(account=people["alice"], special_use=Folder.SpecialUse.INBOX)
    page.goto(f"{web_server}/f/{inbox.pk}/")
    page.keyboard.press("c")
    page.keyboard.press("?")
    page.wait_for_timeout(300)  # a shortcut, if any, navigates at once; nothing may happen here
    assert page.url.endswith(f"/f/{inbox.pk}/")
    expect(page.locator("dialog[open]")).to_have_count(0)


def test_j_and_k_move_between_conversations_while_reading(page: Any, web_server: str,
                                                          people: dict[str, Account]) -> None:
    for subject in ("Oldest", "Middle", "Newest"):
        _deliver("alice@a.test", subject=subject)
    sign_in(page, web_server, "alice@a.test")
    page.keyboard.press("j")
    page.keyboard.press("o")
    expect(page.get_by_role("heading", name="Newest")).to_be_visible()
    page.keyboard.press("j")
    expect(page.get_by_role("heading", name="Middle")).to_be_visible()
    page.keyboard.press("j")
    expect(page.get_by_role("heading", name="Oldest")).to_be_visible()
    page.keyboard.press("k")
    expect(page.get_by_role("heading", name="Middle")).to_be_visible()
    page.keyboard.press("n")  # within the conversation: its only message takes focus
    assert page.evaluate("document.activeElement.matches('section.msg')")
