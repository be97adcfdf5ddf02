from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailcore import store
from mailcore.addresses import AddressError, normalize_address
from mailcore.importer import ImportSourceError, canonical_folder, read_source
from mailcore.models import Account, Folder


class Command(BaseCommand):
    help = "Import an mbox file, a folder of mbox files, or a Maildir (with subfolders) into an account."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("address")
        parser.add_argument("path")
        parser.add_argument("--folder", help="target folder for a single mbox file (default INBOX)")

    def handle(self, *args: Any, address: str, path: str, folder: str | None, **options: Any) -> None:
        try:
            canonical = normalize_address(address)
        except AddressError as exc:
            raise CommandError(str(exc)) from None
        account = Account.objects.filter(address=canonical, domain__isnull=False).first()
        if account is None:
            raise CommandError(f"there is no mailbox {address}")
        # A \Noselect placeholder is left out: folder_create makes it selectable again.
        folders: dict[str, Folder] = {f.name: f for f in Folder.objects.filter(account=account, noselect=False)}
        counts: dict[str, int] = {}
        try:
            for item in read_source(Path(path), canonical_folder(folder) if folder else None):
                target = folders.get(item.folder)
                if target is None:
                    try:
                        name = store.folder_name_normalize(item.folder)
                        target = folders.get(name) or store.folder_create(account=account, name=name)
                    except store.StoreError as exc:
                        raise CommandError(f"cannot create folder {item.folder!r}: {exc}") from None
                    folders = {f.name: f for f in Folder.objects.filter(account=account, noselect=False)}
                try:
                    store.message_append(
                        account=account, folder=target, raw=item.raw, flags=item.flags, internal_date=item.received_at
                    )
                except store.StoreError as exc:
                    done = sum(counts.values())
                    raise CommandError(f"stopped after {done} messages: {exc}") from None
                counts[target.name] = counts.get(target.name, 0) + 1
        except ImportSourceError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        if not counts:
            self.stdout.write("nothing to import: the source holds no messages")
            return
        for name, count in sorted(counts.items()):
            self.stdout.write(f"{name}: {count} messages")
        self.stdout.write(f"imported {sum(counts.values())} messages into {account.display_address}")
