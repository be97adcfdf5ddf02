"""The list's display strings built in Python (webmail.listing) print what the template filters did."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.text import Truncator

from webmail.listing import RowBuilder, truncate, url_pattern


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
