"""Folder create, rename, delete and subscribe.

A folder deleted while it has children stays as a \\Noselect placeholder (RFC 3501 §6.3.4): a
new row with ``noselect`` set, no messages, and a UIDVALIDITY of its own; CREATE of its name
makes it selectable again with a new UIDVALIDITY, and it goes by itself when its last child
does. Subscriptions are names (``Subscription``), kept across DELETE and moved by RENAME.
"""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from mailcore.events import mail_changed, publish_on_commit
from mailcore.models import Account, Folder, FolderChange, FolderEntry, Subscription

from .errors import FolderError, FolderExists, FolderHasChildren, FolderNotFound
from .locks import lock_accounts
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


def _create_one(account: Account, name: str, special_use: str = "", *, noselect: bool = False) -> Folder:
    return Folder.objects.create(account=account, name=name, special_use=special_use, noselect=noselect,
                                 uidvalidity=_next_uidvalidity())


def _children(account: Account, name: str) -> Q:
    return Q(account=account, name__startswith=name + Folder.DELIMITER)


def _create_parents(account: Account, name: str) -> None:
    parts = name.split(Folder.DELIMITER)
    wanted = [Folder.DELIMITER.join(parts[:depth]) for depth in range(1, len(parts))]
    existing = set(Folder.objects.filter(account=account, name__in=wanted).values_list("name", flat=True))
    for parent in wanted:
        if parent not in existing:
            _create_one(account, parent)


def _prune_placeholders(account: Account, name: str) -> None:
    """Remove \\Noselect ancestors of ``name`` left without children (RFC 3501 §6.3.4)."""
    parent = name.rpartition(Folder.DELIMITER)[0]
    while parent:
        placeholder = Folder.objects.filter(account=account, name=parent, noselect=True).first()
        if placeholder is None or Folder.objects.filter(_children(account, parent)).exists():
            return
        placeholder.delete()
        parent = parent.rpartition(Folder.DELIMITER)[0]


def _subscribe_names(account: Account, names: list[str]) -> None:
    Subscription.objects.bulk_create([Subscription(account=account, name=n) for n in names], ignore_conflicts=True)


@transaction.atomic
def folders_create_defaults(*, account: Account) -> list[Folder]:
    existing = set(Folder.objects.filter(account=account).values_list("name", flat=True))
    made = [_create_one(account, name, use) for name, use in SPECIAL_FOLDERS if name not in existing]
    _subscribe_names(account, [f.name for f in made])
    return made


@transaction.atomic
def folder_create(*, account: Account, name: str, special_use: str = "", subscribe: bool = True) -> Folder:
    """Create a folder and any missing superiors (RFC 3501 §6.3.3).

    The name of a \\Noselect placeholder becomes a selectable folder again, with a new
    UIDVALIDITY. ``subscribe`` adds the name to the subscriptions (the web UI and imports do;
    IMAP CREATE does not, RFC 3501 leaves that to SUBSCRIBE).
    """
    name = folder_name_normalize(name)
    if name == Folder.INBOX:
        raise FolderExists("INBOX always exists")
    if special_use and special_use not in Folder.SpecialUse.values:
        raise FolderError(f"{special_use} is not a special use this server knows")
    lock_accounts([account.pk])  # folder-tree changes of one account run one at a time
    existing = Folder.objects.filter(account=account, name=name).first()
    if existing is not None and not existing.noselect:
        raise FolderExists(f"a folder named {name} already exists")
    if existing is not None:
        existing.noselect = False
        existing.special_use = special_use
        existing.uidvalidity = _next_uidvalidity()
        existing.save(update_fields=["noselect", "special_use", "uidvalidity"])
        FolderChange.objects.filter(folder=existing).delete()
        folder = existing
    else:
        _create_parents(account, name)
        try:
            with transaction.atomic():
                folder = _create_one(account, name, special_use)
        except IntegrityError:
            raise FolderExists(f"a folder named {name} already exists") from None
    if subscribe:
        _subscribe_names(account, [name])
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "folders"))
    return folder


@transaction.atomic
def folder_rename(*, account: Account, folder: Folder, new_name: str) -> Folder:
    """Rename a folder and its children; renaming INBOX moves its messages (RFC 3501 §6.3.5).

    Subscriptions of the old names move to the new ones.
    """
    if folder.account_id != account.pk:
        raise FolderNotFound("no such folder")
    new_name = folder_name_normalize(new_name)
    if new_name == folder.name:
        raise FolderExists("the folder already has that name")
    if new_name == Folder.INBOX:
        raise FolderExists("INBOX always exists")
    lock_accounts([account.pk])  # folder-tree changes of one account run one at a time
    current = Folder.objects.filter(account=account, pk=folder.pk).first()
    if current is None:
        raise FolderNotFound("no such folder")
    folder = current
    if Folder.objects.filter(account=account, name=new_name).exists():
        raise FolderExists(f"a folder named {new_name} already exists")
    if folder.is_inbox:
        target = folder_create(account=account, name=new_name, subscribe=False)
        uids = list(FolderEntry.objects.filter(folder=folder).values_list("uid", flat=True))
        if uids:
            message_move(account=account, source=folder, uids=uids, target=target)
        return target
    if new_name.startswith(folder.name + Folder.DELIMITER):
        raise FolderError("a folder cannot be moved inside itself")
    old_name = folder.name
    prefix = old_name + Folder.DELIMITER
    children = list(Folder.objects.filter(_children(account, old_name)))
    for child in children:
        child.name = new_name + Folder.DELIMITER + child.name[len(prefix):]
        if Folder.objects.filter(account=account, name=child.name).exclude(pk=child.pk).exists():
            raise FolderExists(f"a folder named {child.name} already exists")
    _create_parents(account, new_name)
    folder.name = new_name
    folder.save(update_fields=["name"])
    for child in children:
        child.name = folder_name_normalize(child.name)
        child.save(update_fields=["name"])
    _rename_subscriptions(account, old_name, new_name)
    _prune_placeholders(account, old_name)
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "folders"))
    return folder


def _rename_subscriptions(account: Account, old_name: str, new_name: str) -> None:
    moved = Subscription.objects.filter(Q(name=old_name) | Q(name__startswith=old_name + Folder.DELIMITER),
                                        account=account)
    renamed = [new_name + name[len(old_name):] for name in moved.values_list("name", flat=True)]
    if renamed:
        moved.delete()
        _subscribe_names(account, renamed)


@transaction.atomic
def folder_delete(*, account: Account, folder: Folder, recursive: bool = False) -> None:
    """Delete a folder and the messages standing only there. INBOX cannot be deleted.

    Without ``recursive`` (IMAP's DELETE) the children stay, and a folder that has some stays
    as a \\Noselect placeholder; a placeholder with children cannot be deleted. With
    ``recursive`` (the web UI) the children go too. Subscriptions stay (RFC 3501 §6.3.6).
    """
    if folder.account_id != account.pk:
        raise FolderNotFound("no such folder")
    if folder.is_inbox:
        raise FolderError("INBOX cannot be deleted")
    lock_accounts([account.pk])  # folder-tree changes of one account run one at a time
    current = Folder.objects.filter(account=account, pk=folder.pk).first()
    if current is None:
        raise FolderNotFound("no such folder")
    folder = current
    children = list(Folder.objects.filter(_children(account, folder.name)))
    if recursive:
        doomed = [folder, *children]
        children = []
    elif folder.noselect and children:
        raise FolderHasChildren(f"{folder.name} has child folders and holds no messages itself")
    else:
        doomed = [folder]
    folder_id = folder.pk  # delete() below sets the instance's pk to None
    for item in sorted(doomed, key=lambda f: -f.depth):
        if not item.noselect:
            _expunge_all(account, item)
        item.delete()
    if children:
        _create_one(account, folder.name, noselect=True)
    else:
        _prune_placeholders(account, folder.name)
    # The deleted folder's id: sessions that have it selected look at it and find it gone.
    publish_on_commit(account.pk, mail_changed(account.pk, folder_id, "folders"))


def _expunge_all(account: Account, folder: Folder) -> None:
    folder_expunge(account=account, folder=folder, only_deleted=False)


@transaction.atomic
def folder_subscribe(*, account: Account, name: str, subscribed: bool) -> bool:
    """Add a name to the subscriptions or take it off; the name need not exist (RFC 3501
    §6.3.6). Returns False when unsubscribing a name that was not subscribed."""
    name = folder_name_normalize(name)
    if subscribed:
        _subscribe_names(account, [name])
        changed = True
    else:
        changed = Subscription.objects.filter(account=account, name=name).delete()[0] > 0
    if changed:
        publish_on_commit(account.pk, mail_changed(account.pk, None, "folders"))
    return changed


@transaction.atomic
def folder_set_special_use(*, account: Account, folder: Folder, special_use: str) -> Folder:
    if folder.account_id != account.pk:
        raise FolderNotFound("no such folder")
    if special_use and special_use not in Folder.SpecialUse.values:
        raise FolderError(f"{special_use} is not a special use this server knows")
    if folder.noselect:
        raise FolderError(f"{folder.name} holds no messages and cannot have a special use")
    folder.special_use = special_use
    folder.save(update_fields=["special_use"])
    return folder
