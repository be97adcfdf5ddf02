from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailcore import store
from mailcore.addresses import AddressError, normalize_address
from mailcore.models import Account

from .createaccount import check_password_strength, read_password


class Command(BaseCommand):
    help = "Set an account's password (asked for on the terminal unless --password is given)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("address")
        parser.add_argument("--password")

    def handle(self, *args: Any, address: str, password: str | None, **options: Any) -> None:
        try:
            canonical = normalize_address(address)
        except AddressError as exc:
            raise CommandError(str(exc)) from None
        account = Account.objects.filter(address=canonical).first()
        if account is None:
            raise CommandError(f"there is no account {address}")
        if password is None:
            password = read_password(sys.stdin.isatty())
        check_password_strength(password, canonical)
        store.account_set_password(account=account, password=password)
        self.stdout.write(f"password changed for {account.display_address}")
