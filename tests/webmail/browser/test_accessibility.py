"""Accessible names, visible focus and keyboard reach of the issue's controls, in Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from mailcore import store
from mailcore.models import Account
from tests.conftest import PASSWORD, make_message

from .conftest import sign_in

BASE_URL_WARNING = "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings(BASE_URL_WARNING)]

# What identifies the focused element in a tab order: its tag and its name as a user hears it
# (aria-label, its label, its text): "button Archive", "a Archive" (the folder), "input To".
DESCRIBE = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return "";
    const labelled = el.getAttribute("aria-labelledby");
    const byId = labelled ? (document.getElementById(labelled) || {}).textContent : "";
    const label = el.labels && el.labels.length ? el.labels[0].textContent : "";
    const name = (el.getAttribute("aria-label") || byId || label || el.textContent || el.value || "")
        .trim().replace(/\\s+/g, " ").slice(0, 80);
    return el.tagName.toLowerCase() + " " + name;
}"""
FOCUS_STYLE = """() => {
    const el = document.activeElement;
    const s = getComputedStyle(el);
    return {outline: s.outlineStyle, width: parseFloat(s.outlineWidth), shadow: s.boxShadow, tag: el.tagName};
}"""


def _tab_order(page: Any, limit: int = 120) -> list[tuple[str, dict[str, Any]]]:
    """Press Tab until focus comes back round (or ``limit``): each stop's name and focus style."""
    stops: list[tuple[str, dict[str, Any]]] = []
    # From the top of a freshly loaded page; an autofocused field is the first stop.
    page.reload()
    page.wait_for_load_state("networkidle")
    first = page.evaluate(DESCRIBE)
    if first:
        stops.append((first, page.evaluate(FOCUS_STYLE)))
    for _ in range(limit):
        page.keyboard.press("Tab")
        name = page.evaluate(DESCRIBE)
        if not name:
            break
        if stops and name == stops[0][0] and len(stops) > 3:
            break
        stops.append((name, page.evaluate(FOCUS_STYLE)))
    return stops


def _assert_focus_visible(stops: list[tuple[str, dict[str, Any]]]) -> None:
    for name, style in stops:
        if style["tag"] == "IFRAME":
            continue  # focus moves into the message's own document
        visible = (style["outline"] != "none" and style["width"] >= 2) or style["shadow"] != "none"
        assert visible, f"no visible focus on {name!r}: {style}"


# Compose, Reply, Reply all and Forward open a page, so they are links; the others act, buttons.
ROLES = {"Compose": "link", "Reply": "link", "Reply all": "link", "Forward": "link", "Archive": "button",
         "Delete": "button", "Send": "button", "Sign in": "button"}
TAGS = {"link": "a", "button": "button"}


def _control(page: Any, name: str) -> Any:
    return page.get_by_role(ROLES[name], name=name, exact=True)  # type: ignore[arg-type]


def _stop(name: str) -> str:
    return f"{TAGS[ROLES[name]]} {name}"


def test_sign_in_page_names_and_focus(page: Any, web_server: str, people: dict[str, Account]) -> None:
    page.goto(f"{web_server}/login/")
    expect(page.get_by_role("textbox", name="Email address", exact=True)).to_have_count(1)
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("type", "password")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_have_count(1)
    stops = _tab_order(page)
    names = [n for n, _ in stops]
    assert names.index("input Email address") < names.index("input Password") < names.index("button Sign in"), names
    _assert_focus_visible(stops)
    # Signing in with the keyboard alone.
    page.get_by_label("Email address").focus()
    page.keyboard.type("alice@a.test")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/f/\d+/$"))


def test_mailbox_and_message_controls_are_named_reachable_and_show_focus(page: Any, web_server: str,
                                                                          people: dict[str, Account]) -> None:
    store.message_deliver(raw=make_message(to="alice@a.test", subject="Budget", body="Numbers.\r\n"),
                          recipients=["alice@a.test"])
    sign_in(page, web_server, "alice@a.test")
    for name in ("Compose", "Archive", "Delete"):
        expect(_control(page, name)).to_have_count(1)
    expect(page.get_by_role("checkbox", name=re.compile(r"^Select conversation with .*: Budget$"))).to_have_count(1)
    stops = _tab_order(page)
    names = [n for n, _ in stops]
    # Skip link first, then the sidebar, the toolbar, the list (checkbox, star, the message).
    assert names[0] == "a Skip to content"
    for a, b in (("a Compose", "button Archive"), ("button Archive", "button Delete"),
                 ("button Delete", "button Starred"), ("button Starred", "a Budget")):
        assert names.index(a) < names.index(b), names
    assert names.index("button Delete") < names.index("input Select conversation with Carol: Budget") \
        < names.index("a Budget"), names
    _assert_focus_visible(stops)

    # Keyboard only: Tab to the message, Enter opens it; its actions are named and reachable.
    page.goto(page.url)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(len(names) + 1):
        page.keyboard.press("Tab")
        if page.evaluate(DESCRIBE) == "a Budget":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Budget")).to_be_visible()
    for name in ("Reply", "Reply all", "Forward", "Delete", "Archive"):
        expect(_control(page, name)).to_have_count(1)
    stops = _tab_order(page)
    names = [n for n, _ in stops]
    order = [names.index(_stop(n)) for n in ("Archive", "Delete", "Reply", "Reply all", "Forward")]
    assert order == sorted(order), names
    _assert_focus_visible(stops)


def test_compose_fields_are_named_in_order_and_show_focus(page: Any, web_server: str,
                                                          people: dict[str, Account]) -> None:
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Compose").click()
    for name in ("To", "Cc", "Bcc", "Subject", "Message"):
        expect(page.get_by_role("textbox", name=name, exact=True)).to_have_count(1)
    expect(page.get_by_role("button", name="Send", exact=True)).to_have_count(1)
    stops = _tab_order(page)
    names = [n for n, _ in stops]
    order = [names.index(n) for n in ("input To", "input Cc", "input Bcc", "input Subject", "textarea Message",
                                      "button Send")]
    assert order == sorted(order), names
    _assert_focus_visible(stops)
    # In rich text the editor takes the name "Message" (and the plain field is hidden).
    page.get_by_label("Rich text").check()
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_have_count(1)
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_have_attribute("contenteditable", "true")
    # Writing and sending with the keyboard alone.
    page.get_by_label("Rich text").uncheck()
    page.get_by_role("textbox", name="To", exact=True).focus()
    page.keyboard.type("bob@b.test")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("By keyboard")
    page.get_by_role("textbox", name="Message", exact=True).focus()
    page.keyboard.type("Typed without a mouse.")
    page.get_by_role("button", name="Send", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    assert people["bob"].messages.get().subject == "By keyboard"
