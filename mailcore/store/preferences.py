"""Preferences of the web UI kept on the account row (display name, signature, paging...)."""

from __future__ import annotations

import zoneinfo

from django.db import transaction

from mailcore.models import Account

from .errors import StoreError

MAX_PAGE_SIZE = 200


@transaction.atomic
def account_preferences_set(
    *,
    account: Account,
    display_name: str,
    signature: str,
    page_size: int,
    conversation_view: bool,
    time_zone: str,
    keyboard_shortcuts: bool = True,
) -> Account:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise StoreError(f"a page holds 1 to {MAX_PAGE_SIZE} messages")
    if time_zone not in zoneinfo.available_timezones():
        raise StoreError(f"{time_zone} is not a known time zone")
    account.display_name = display_name.strip()
    account.signature = signature
    account.page_size = page_size
    account.conversation_view = conversation_view
    account.time_zone = time_zone
    account.keyboard_shortcuts = keyboard_shortcuts
    account.save(update_fields=["display_name", "signature", "page_size", "conversation_view", "time_zone",
                                "keyboard_shortcuts"])
    return account
