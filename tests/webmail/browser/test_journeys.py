"""The journeys of the issue, in a real Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry, Message
from tests.conftest import make_message

from .conftest import screenshot, sign_in, wait_live

# pytest-base-url (pulled in by pytest-playwright) still defines a session fixture as a method.
BASE_URL_WARNING = "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings(BASE_URL_WARNING)]


def _deliver(to: str, **kwargs: str) -> None:
    store.message_deliver(raw=make_message(to=to, **kwargs), recipients=[to])


def test_sign_in_shows_the_inbox(page: Any, web_server: str, people: dict[str, Account]) -> None:
    _deliver("alice@a.test", subject="Welcome aboard")
    sign_in(page, web_server, "alice@a.test")
    expect(page.get_by_role("link", name="Welcome aboard")).to_be_visible()
    expect(page.locator("tr.unread")).to_have_count(1)
    screenshot(page, "inbox")


def test_wrong_password_stays_on_sign_in(page: Any, web_server: str, people: dict[str, Account]) -> None:
    page.goto(f"{web_server}/login/")
    page.get_by_label("Email address").fill("alice@a.test")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")


def test_read_a_message(page: Any, web_server: str, people: dict[str, Account]) -> None:
    _deliver("alice@a.test", subject="Minutes", body="Item one: budget.\r\n")
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Minutes").click()
    expect(page.get_by_role("heading", name="Minutes")).to_be_visible()
    expect(page.get_by_text("Item one: budget.")).to_be_visible()
    assert Message.objects.get(account=people["alice"]).seen
    screenshot(page, "read")


def test_send_to_a_local_user_who_sees_it_arrive_live(browser: Any, web_server: str, people: dict[str, Account]) -> None:
    alice_ctx, bob_ctx = browser.new_context(), browser.new_context()
    try:
        bob = bob_ctx.new_page()
        sign_in(bob, web_server, "bob@b.test")
        wait_live(bob)
        alice = alice_ctx.new_page()
        sign_in(alice, web_server, "alice@a.test")
        alice.get_by_role("link", name="Compose").click()
        alice.get_by_label("To", exact=True).fill("Bob <bob@b.test>")
        alice.get_by_label("Subject").fill("Live delivery")
        alice.get_by_label("Message").fill("Did this arrive by itself?")
        alice.get_by_role("button", name="Send").click()
        alice.wait_for_url(re.compile(r".*/f/\d+/$"))
        expect(alice.get_by_text("Message sent.")).to_be_visible()
        # No reload on bob's side: the websocket event makes the list and the count refresh.
        expect(bob.get_by_role("link", name="Live delivery")).to_be_visible(timeout=5000)
        expect(bob.locator(".folders .count").first).to_have_text("1")
        screenshot(bob, "live-arrival")
        assert FolderEntry.objects.filter(folder__account=people["alice"], folder__special_use=Folder.SpecialUse.SENT).count() == 1
    finally:
        alice_ctx.close()
        bob_ctx.close()


def test_flag_change_from_another_source_shows_live(page: Any, web_server: str, people: dict[str, Account]) -> None:
    _deliver("alice@a.test", subject="Flag me")
    sign_in(page, web_server, "alice@a.test")
    wait_live(page)
    expect(page.locator("tr.unread")).to_have_count(1)
    inbox = Folder.objects.get(account=people["alice"], special_use=Folder.SpecialUse.INBOX)
    uid = FolderEntry.objects.get(folder=inbox).uid
    store.flags_store(account=people["alice"], folder=inbox, uids=[uid], mode="add", flags=["\\Seen"])  # as IMAP would
    expect(page.locator("tr.unread")).to_have_count(0, timeout=5000)


def test_reply(page: Any, web_server: str, people: dict[str, Account]) -> None:
    _deliver("alice@a.test", subject="Question", body="Are you coming?\r\n", sender="bob@b.test")
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Question").click()
    page.get_by_role("link", name="Reply", exact=True).click()
    expect(page.get_by_label("Subject")).to_have_value("Re: Question")
    expect(page.get_by_label("Message")).to_contain_text("> Are you coming?")
    page.get_by_label("Message").press("Control+Home")
    page.get_by_label("Message").type("Yes, see you there.")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    reply = Message.objects.get(account=people["bob"])
    assert reply.subject == "Re: Question" and reply.in_reply_to
    assert Message.objects.get(account=people["alice"], subject="Question").answered


def test_attachment_upload_and_download(browser: Any, web_server: str, people: dict[str, Account], tmp_path: Path) -> None:
    upload = tmp_path / "report.csv"
    upload.write_bytes(b"year,total\n2026,42\n")
    ctx = browser.new_context(accept_downloads=True)
    try:
        page = ctx.new_page()
        sign_in(page, web_server, "alice@a.test")
        page.get_by_role("link", name="Compose").click()
        page.get_by_label("To", exact=True).fill("bob@b.test")
        page.get_by_label("Subject").fill("Numbers")
        page.get_by_label("Message").fill("Attached.")
        page.get_by_label("Attach files").set_input_files(str(upload))
        page.get_by_role("button", name="Send").click()
        page.wait_for_url(re.compile(r".*/f/\d+/$"))
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, web_server, "bob@b.test")
        page.get_by_role("link", name="Numbers").click()
        with page.expect_download() as info:
            page.get_by_role("link", name="report.csv").click()
        download = info.value
        assert download.suggested_filename == "report.csv"
        assert Path(download.path()).read_bytes() == upload.read_bytes()
        screenshot(page, "attachment")
    finally:
        ctx.close()


def test_move_and_delete(page: Any, web_server: str, people: dict[str, Account]) -> None:
    _deliver("alice@a.test", subject="Keep this")
    _deliver("alice@a.test", subject="Bin this")
    store.folder_create(account=people["alice"], name="Projects")
    sign_in(page, web_server, "alice@a.test")
    wait_live(page)
    page.get_by_label(re.compile("Select conversation .*Keep this")).check()
    page.get_by_label("Move to").select_option(label="Projects")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.get_by_role("link", name="Keep this")).to_have_count(0)
    page.get_by_label(re.compile("Select conversation .*Bin this")).check()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("link", name="Bin this")).to_have_count(0)
    where = dict(FolderEntry.objects.filter(folder__account=people["alice"]).values_list("message__subject", "folder__name"))
    assert where == {"Keep this": "Projects", "Bin this": "Trash"}
    page.get_by_role("link", name=re.compile("^Trash")).click()
    page.get_by_label(re.compile("Select conversation .*Bin this")).check()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("link", name="Bin this")).to_have_count(0)
    assert not Message.objects.filter(subject="Bin this").exists()
    screenshot(page, "after-delete")


def test_draft_autosave_and_resume(page: Any, web_server: str, people: dict[str, Account]) -> None:
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Compose").click()
    page.get_by_label("To", exact=True).fill("bob@b.test")
    page.get_by_label("Subject").fill("Unfinished thoughts")
    page.get_by_label("Message").fill("First paragraph.")
    expect(page.locator("#draft-status")).to_contain_text("Draft saved", timeout=10000)
    page.get_by_label("Message").fill("First paragraph. Second paragraph.")
    page.wait_for_timeout(4500)
    drafts = FolderEntry.objects.filter(folder__account=people["alice"], folder__special_use=Folder.SpecialUse.DRAFTS)
    assert drafts.count() == 1  # each save replaced the one before
    page.get_by_role("link", name=re.compile("^Drafts")).click()
    page.get_by_role("link", name="Unfinished thoughts").click()
    expect(page.get_by_label("Message")).to_have_value("First paragraph. Second paragraph.")
    expect(page.get_by_label("To", exact=True)).to_have_value("bob@b.test")
    screenshot(page, "draft-resumed")


def test_keyboard_reaches_compose_and_focus_is_visible(page: Any, web_server: str, people: dict[str, Account]) -> None:
    sign_in(page, web_server, "alice@a.test")
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Compose":
            break
    else:
        pytest.fail("Compose is not reachable with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_star_a_row_in_place(page: Any, web_server: str, people: dict[str, Account]) -> None:
    _deliver("alice@a.test", subject="Star me")
    _deliver("alice@a.test", subject="Leave me")
    sign_in(page, web_server, "alice@a.test")
    wait_live(page)
    page.get_by_label(re.compile("Select conversation .*Leave me")).check()  # a selection elsewhere is not starred
    page.locator("tr", has_text="Star me").get_by_role("button", name="Starred").click()
    expect(page.locator("tr", has_text="Star me").get_by_role("button", name="Starred")).to_have_attribute("aria-pressed", "true")
    assert dict(Message.objects.values_list("subject", "flagged")) == {"Star me": True, "Leave me": False}


def test_rich_text_compose(page: Any, web_server: str, people: dict[str, Account]) -> None:
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Compose").click()
    page.get_by_label("To", exact=True).fill("bob@b.test")
    page.get_by_label("Subject").fill("Formatted")
    page.get_by_label("Rich text").check()
    editor = page.get_by_role("textbox", name="Message")
    editor.click()
    editor.type("plain ")
    page.get_by_role("button", name="Bold").click()
    editor.type("strong")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    raw = bytes(Message.objects.get(account=people["bob"]).blob.data)
    assert b"text/html" in raw and b"<b>strong</b>" in raw and b"plain strong" in raw
