"""``manage.py dkimkey DOMAIN``: make a DKIM key for a domain and print the TXT record to publish."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailcore.addresses import AddressError, normalize_domain
from mailcore.models import Domain
from mailcore.relay.dkim import dkim_dns_record, domain_dkim_key_create


class Command(BaseCommand):
    help = "Make an RSA-2048 DKIM key for DOMAIN, store it, and print the DNS TXT record to publish."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("domain")
        parser.add_argument("--selector", default=None, help="DKIM selector (default: the domain's, else 'mail')")
        parser.add_argument("--show", action="store_true", help="print the record of the existing key, make none")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            name = normalize_domain(options["domain"])
        except AddressError as exc:
            raise CommandError(str(exc)) from None
        domain = Domain.objects.filter(name=name).first()
        if domain is None:
            raise CommandError(f"no such domain here: {name}")
        if options["show"]:
            if not domain.dkim_private_key:
                raise CommandError(f"{name} has no DKIM key yet; run without --show to make one")
        else:
            domain = domain_dkim_key_create(domain=domain, selector=options["selector"])
        self.stdout.write(dkim_dns_record(domain))
