"""Folder create, rename, delete and subscribe."""

from __future__ import annotations

from django.db import connection, transaction

from mailcore.events import mail_changed, publish_on_commit
from mailcore.models import Account, Folder, FolderEntry

from .errors import FolderError, FolderExists, FolderNotFound
from .messages import folder_expunge, message_move

MAX_NAME_LENGTH = 900
MAX_DEPTH = 32
_FORBIDDEN = set("\r\n\x00*%")

SPECIAL_FOLDERS: list[tuple[str, str]] = [
    (Folder.INBOX, Folder.SpecialUse.INBOX),
    ("Sent", Folder.SpecialUse.SENT),
    ("Drafts", Folder.SpecialUse.DRAFTS),
    ("Trash", Folder.SpecialUse.TRASH),
    ("Junk", Folder.SpecialUse.JUNK),
    ("Archive", Folder.SpecialUse.ARCHIVE),
]


def folder_name_normalize(name: str) -> str:
    """Validate a folder name and spell INBOX (any case, also as a prefix) canonically."""
    if not name or not name.strip():
        raise FolderError("a folder needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise FolderError("the folder name is too long")
    if any(ch in _FORBIDDEN or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise FolderError("a folder name cannot contain control characters, * or %")
    name = name.rstrip(Folder.DELIMITER)  # RFC 3501 §6.3.3: a trailing delimiter names the same folder
    parts = name.split(Folder.DELIMITER)
    if any(part == "" for part in parts):
        raise FolderError("a folder name cannot have an empty level (// or a leading /)")
    if len(parts) > MAX_DEPTH:
        raise FolderError("the folder hierarchy is too deep")
    if parts[0].upper() == Folder.INBOX:
        parts[0] = Folder.INBOX
    return Folder.DELIMITER.join(parts)


def _next_uidvalidity() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT nextval('mailcore_uidvalidity_seq')")
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def _create_one(account: Account, name: str, special_use: str = "") -> Folder:
    return Folder.objects.create(account=account, name=name, special_use=special_use, uidvalidity=_next_uidvalidity())


@transaction.atomic
def folders_create_defaults(*, account: Account) -> list[Folder]:
    existing = set(Folder.objects.filter(account=account).values_list("name", flat=True))
    made = [_create_one(account, name, use) for name, use in SPECIAL_FOLDERS if name not in existing]
    return made


@transaction.atomic
def folder_create(*, account: Account, name: str, special_use: str = "") -> Folder:
    """Create a folder and any missing superiors (RFC 3501 §6.3.3)."""
    name = folder_name_normalize(name)
    if name == Folder.INBOX:
        raise FolderExists("INBOX always exists")
    if special_use and special_use not in Folder.SpecialUse.values:
        raise FolderError(f"{special_use} is not a special use this server knows")
    if Folder.objects.filter(account=account, name=name).exists():
        raise FolderExists(f"a folder named {name} already exists")
    parts = name.split(Folder.DELIMITER)
    for depth in range(1, len(parts)):
        parent = Folder.DELIMITER.join(parts[:depth])
        if not Folder.objects.filter(account=account, name=parent).exists():
            _create_one(account, parent)
    folder = _create_one(account, name, special_use)
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "folders"))
    return folder


@transaction.atomic
def folder_rename(*, account: Account, folder: Folder, new_name: str) -> Folder:
    """Rename a folder and its children; renaming INBOX moves its messages (RFC 3501 §6.3.5)."""
    if folder.account_id != account.pk:
        raise FolderNotFound("no such folder")
    new_name = folder_name_normalize(new_name)
    if new_name == folder.name:
        raise FolderExists("the folder already has that name")
    if new_name == Folder.INBOX:
        raise FolderExists("INBOX always exists")
    if Folder.objects.filter(account=account, name=new_name).exists():
        raise FolderExists(f"a folder named {new_name} already exists")
    if folder.is_inbox:
        target = folder_create(account=account, name=new_name)
        uids = list(FolderEntry.objects.filter(folder=folder).values_list("uid", flat=True))
        if uids:
            message_move(account=account, source=folder, uids=uids, target=target)
        return target
    if new_name.startswith(folder.name + Folder.DELIMITER):
        raise FolderError("a folder cannot be moved inside itself")
    prefix = folder.name + Folder.DELIMITER
    children = list(Folder.objects.select_for_update().filter(account=account, name__startswith=prefix))
    parts = new_name.split(Folder.DELIMITER)
    for depth in range(1, len(parts)):
        parent = Folder.DELIMITER.join(parts[:depth])
        if not Folder.objects.filter(account=account, name=parent).exists():
            _create_one(account, parent)
    for child in children:
        child.name = new_name + Folder.DELIMITER + child.name[len(prefix):]
        if Folder.objects.filter(account=account, name=child.name).exclude(pk=child.pk).exists():
            raise FolderExists(f"a folder named {child.name} already exists")
    folder.name = new_name
    folder.save(update_fields=["name"])
    for child in children:
        child.save(update_fields=["name"])
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "folders"))
    return folder


@transaction.atomic
def folder_delete(*, account: Account, folder: Folder, recursive: bool = False) -> None:
    """Delete a folder and the messages standing only there. INBOX cannot be deleted.

    Without ``recursive`` the children stay (IMAP's DELETE); with it they go too (the web UI).
    """
    if folder.account_id != account.pk:
        raise FolderNotFound("no such folder")
    if folder.is_inbox:
        raise FolderError("INBOX cannot be deleted")
    doomed = [folder]
    if recursive:
        doomed += list(Folder.objects.filter(account=account, name__startswith=folder.name + Folder.DELIMITER))
    for item in sorted(doomed, key=lambda f: -f.depth):
        folder_expunge(account=account, folder=item, only_deleted=False)
        item.delete()
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "folders"))


@transaction.atomic
def folder_subscribe(*, account: Account, folder: Folder, subscribed: bool) -> Folder:
    if folder.account_id != account.pk:
        raise FolderNotFound("no such folder")
    if folder.subscribed != subscribed:
        folder.subscribed = subscribed
        folder.save(update_fields=["subscribed"])
        publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "folders"))
    return folder


@transaction.atomic
def folder_set_special_use(*, account: Account, folder: Folder, special_use: str) -> Folder:
    if folder.account_id != account.pk:
        raise FolderNotFound("no such folder")
    if special_use and special_use not in Folder.SpecialUse.values:
        raise FolderError(f"{special_use} is not a special use this server knows")
    folder.special_use = special_use
    folder.save(update_fields=["special_use"])
    return folder
