"""Dates as a mail list shows them (Gmail-like): the time today, day and month this year, else
the full date; in the reader's time zone (activated by ``views.common.mail_view``)."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def list_date(value: datetime | None) -> str:
    if value is None:
        return ""
    local = timezone.localtime(value)
    today = timezone.localdate()
    if local.date() == today:
        return local.strftime("%H:%M")
    if local.year == today.year:
        return f"{local.day} {local:%b}"
    return f"{local.day} {local:%b} {local.year}"
