"""The list's display strings built in Python (webmail.listing) print what the template filters did."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.template.defaultfilters import date as date_filter
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.text import Truncator

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import make_message
from webmail.listing import Row, RowBuilder, render_rows, truncate, url_pattern


@pytest.mark.parametrize("text", [
    "", "short", "x" * 119, "x" * 120, "x" * 121, "A preview " * 30, "Zoë " * 40, "e\u0301" * 130,
    "e\u0301" * 100, "日本語のテキスト" * 20,
])
@pytest.mark.parametrize("chars", [1, 40, 120])
def test_truncate_prints_what_truncatechars_printed(text: str, chars: int) -> None:
    assert truncate(text, chars) == Truncator(text).chars(chars)


def test_url_patterns_format_to_the_reversed_urls() -> None:
    from django.urls import reverse

    assert url_pattern("message").format(42) == reverse("message", args=[42])
    assert url_pattern("folder_list").format(7) == reverse("folder_list", args=[7])


def test_row_dates_are_the_date_filters_in_the_readers_zone() -> None:
    zone = ZoneInfo("America/St_Johns")  # a half-hour offset
    with timezone.override(zone):
        build = RowBuilder(1, drafts=False)
        for when in (datetime(2024, 2, 29, 23, 45, 1, 123456, tzinfo=UTC), timezone.now(),
                     datetime(2025, 7, 4, 2, 0, tzinfo=UTC)):
            iso, title, _ = build._dates(when)
            local = timezone.localtime(when)
            assert iso == date_filter(local, "c")
            assert title == date_filter(local, "D j M Y, H:i")


@pytest.mark.django_db
@pytest.mark.parametrize(("special_use", "conversations"), [
    (Folder.SpecialUse.INBOX, True), (Folder.SpecialUse.INBOX, False),
    (Folder.SpecialUse.SENT, True), (Folder.SpecialUse.DRAFTS, True),
])
def test_every_kind_of_list_costs_the_same_queries_for_one_row_or_a_page(
        alice_client: Client, alice: Account, special_use: str, conversations: bool) -> None:
    """Rows read only the fields ``selectors.LIST_FIELDS`` fetched: none loads another one."""
    alice.conversation_view = conversations
    alice.save(update_fields=["conversation_view"])
    folder = Folder.objects.get(account=alice, special_use=special_use)
    flags = ["\\Draft"] if special_use == Folder.SpecialUse.DRAFTS else []

    def add(count: int) -> None:
        for i in range(count):
            raw = make_message(subject=f"row {i}", to="Bob <bob@b.test>, dan@x.example", body="A preview. " * 20)
            store.message_append(account=alice, folder=folder, raw=raw, flags=flags)

    add(1)
    with CaptureQueriesContext(connection) as one:
        alice_client.get(f"/f/{folder.pk}/list/")
    add(60)
    with CaptureQueriesContext(connection) as page:
        response = alice_client.get(f"/f/{folder.pk}/list/")
    assert len(response.context["rows"]) == 50
    assert len(page) == len(one)
    html = response.content.decode()
    assert "row 59" in html and "A preview. A preview." in html
    if special_use == Folder.SpecialUse.INBOX:
        assert "Carol" in html
    else:
        assert "Bob" in html  # "To: Bob, dan" in Sent, the To field in Drafts


# The row loop of _list.html before the rows were formatted in Python: what render_rows prints.
_TEMPLATE_ROWS = """{% for r in rows %}
  <tr class="{% if r.unread %}unread{% endif %}" data-id="{{ r.id }}" data-key="{{ r.key }}">
    <td class="sel"><input type="checkbox" name="ids" value="{{ r.value }}" aria-label="{{ r.select_label }}"></td>
    <td class="star"><button type="button" class="star-toggle{% if r.flagged %} on{% endif %}" aria-pressed="{% if r.flagged %}true{% else %}false{% endif %}"
        aria-label="Starred" title="{% if r.flagged %}Starred{% else %}Not starred{% endif %}"
        hx-post="{{ action_url }}" hx-target="#list" hx-swap="innerHTML"
        hx-vals='{"action": "{% if r.flagged %}unstar{% else %}star{% endif %}", "ids": "{{ r.value }}"}'>{% if r.flagged %}★{% else %}☆{% endif %}</button></td>
    <td class="from">{{ r.sender }}</td>
    <td class="subject">
      <a href="{{ r.href }}"><span class="subj">{{ r.subject }}</span></a>
      <span class="preview"> – {{ r.preview }}</span>
    </td>
    <td class="att">{% if r.attachments %}<span title="Has attachments" aria-label="Has attachments">📎</span>{% endif %}</td>
    <td class="date"><time datetime="{{ r.iso }}" title="{{ r.title }}">{{ r.date }}</time></td>
  </tr>
  {% endfor %}"""


@pytest.mark.parametrize("flagged", [False, True])
@pytest.mark.parametrize("text", ["plain", "<b>Tom & \"Jerry\"</b> it's {x} %s", "Zoë – 日本語"])
def test_rows_print_what_the_template_loop_printed(text: str, flagged: bool) -> None:
    from django.template import Context, Template
    from django.utils.html import format_html

    rows = [Row(id="12", key=f"t{text}", value=f"t{text}", unread=unread, flagged=flagged,
                select_label=f"Select conversation with {text}: {text}",
                sender=format_html('<span class="people">{}</span>', text), href=f"/m/12/?folder=3&x={text}",
                subject=text, preview=text, attachments=unread, iso="2026-12-02T01:00:00+00:00",
                title=f"Wed 2 Dec 2026, {text}", date=text) for unread in (False, True)]
    action_url = f"/f/3/action/?{text}"
    expected = Template(_TEMPLATE_ROWS).render(Context({"rows": rows, "action_url": action_url}))
    printed = render_rows(rows, action_url)
    assert printed == expected
    assert "<b>" not in printed.replace('<span class="people">', "")
