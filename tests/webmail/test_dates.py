from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from webmail.templatetags.mail_dates import list_date


def test_list_dates_are_the_time_today_the_day_this_year_else_the_full_date() -> None:
    with timezone.override(ZoneInfo("Europe/Paris")):
        now = timezone.localtime()
        assert list_date(now) == now.strftime("%H:%M")
        # Another day of this year: 1 January, or 31 December in January.
        other, label = (now.replace(month=12, day=31), "31 Dec") if now.month == 1 else \
            (now.replace(month=1, day=1), "1 Jan")
        assert list_date(other) == label
        old = now.replace(year=now.year - 2, month=3, day=9)
        assert list_date(old) == f"9 Mar {now.year - 2}"
        assert list_date(now - timedelta(days=400)).endswith(str((now - timedelta(days=400)).year))
    assert list_date(None) == ""
