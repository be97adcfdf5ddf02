from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailcore import store
from mailcore.models import Tenant


class Command(BaseCommand):
    help = "Create a mail domain in a tenant."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("domain")
        parser.add_argument("--tenant", required=True, help="the name of an existing tenant")
        parser.add_argument("--catch-all", default="", help="address that receives mail for unknown names")

    def handle(self, *args: Any, domain: str, tenant: str, catch_all: str, **options: Any) -> None:
        owner = Tenant.objects.filter(name__iexact=tenant).first()
        if owner is None:
            raise CommandError(f"there is no tenant named {tenant!r}; create it with createtenant")
        try:
            made = store.domain_create(tenant=owner, name=domain, catch_all=catch_all)
        except store.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created domain {made.display_name} ({made.name}) in tenant {owner.name}")
