from __future__ import annotations

import getpass
import sys
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from mailcore import store
from mailcore.models import Account
from webmail.env import parse_size


def read_password(stdin_is_tty: bool) -> str:
    if not stdin_is_tty:
        raise CommandError("no --password given and no terminal to ask for one")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Password (again): ")
    if first != second:
        raise CommandError("the two passwords differ")
    return first


def check_password_strength(password: str, address: str) -> None:
    try:
        validate_password(password, Account(address=address))
    except ValidationError as exc:
        raise CommandError(" ".join(exc.messages)) from None


class Command(BaseCommand):
    help = "Create a mailbox (with INBOX, Sent, Drafts, Trash, Junk and Archive)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("address")
        parser.add_argument("--password", help="asked for on the terminal when not given")
        parser.add_argument("--quota", help="size such as 500M or 2G; 0 for unlimited (default: DEFAULT_QUOTA)")
        parser.add_argument("--name", default="", help="display name")
        parser.add_argument("--tenant-admin", action="store_true", help="may administer the tenant's domains")

    def handle(self, *args: Any, address: str, password: str | None, quota: str | None, name: str,
               tenant_admin: bool, **options: Any) -> None:
        quota_bytes = None
        if quota is not None:
            try:
                quota_bytes = parse_size(quota)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        if password is None:
            password = read_password(sys.stdin.isatty())
        check_password_strength(password, address)
        role = Account.Role.TENANT_ADMIN if tenant_admin else Account.Role.USER
        try:
            account = store.account_create(
                address=address, password=password, quota_bytes=quota_bytes, display_name=name, role=role
            )
        except store.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created account {account.display_address}")
