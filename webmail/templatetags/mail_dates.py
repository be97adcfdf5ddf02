"""Dates as a mail list shows them (Gmail-like): the time today, day and month this year, else
the full date; in the reader's time zone (activated by ``views.common.mail_view``)."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from ..listing import list_label

register = template.Library()


@register.filter
def list_date(value: datetime | None) -> str:
    if value is None:
        return ""
    return list_label(timezone.localtime(value), timezone.localdate())
