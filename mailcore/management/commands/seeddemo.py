"""``manage.py seeddemo``: the demo tenant of ``make run`` — demo.test with alice and bob."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from mailcore import store
from mailcore.models import Account, Domain, Tenant

DEMO_ACCOUNTS = [("alice@demo.test", "Alice"), ("bob@demo.test", "Bob")]


class Command(BaseCommand):
    help = "Create the demo tenant (demo.test, alice and bob) if it does not exist; print new passwords once."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(name="demo").first() or store.tenant_create(name="demo")
        if not Domain.objects.filter(name="demo.test").exists():
            store.domain_create(tenant=tenant, name="demo.test")
        for address, name in DEMO_ACCOUNTS:
            if Account.objects.filter(address=address).exists():
                self.stdout.write(f"demo account {address} exists (password as printed when it was made)")
                continue
            password = secrets.token_urlsafe(12)
            store.account_create(address=address, password=password, display_name=name)
            self.stdout.write(self.style.SUCCESS(f"demo account {address} password: {password}"))
