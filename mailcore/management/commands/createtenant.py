from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailcore import store


class Command(BaseCommand):
    help = "Create a tenant: an organisation that owns domains and accounts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            tenant = store.tenant_create(name=name)
        except store.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created tenant {tenant.name}")
