"""Changing stored messages: append, flags, copy, move, labels and expunge."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet

from mailcore.events import mail_changed, publish_on_commit
from mailcore.mime import parse_message
from mailcore.models import Account, Folder, FolderChange, FolderEntry, Message

from .blobs import blobs_release
from .copies import (
    CopyTarget,
    allocate_uids,
    bump_modseq,
    flag_fields,
    release_quota,
    reserve_quota,
    store_copies,
)
from .errors import MessageTooLarge, QuotaExceeded, StoreError

FlagMode = Literal["set", "add", "remove"]
_FLAG_NAMES = ("seen", "answered", "flagged", "deleted", "draft")


def _lock_account(account_id: int) -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM mailcore_account WHERE id = %s FOR UPDATE", [account_id])


def _lock_folders(folder_ids: Iterable[int]) -> None:
    ids = sorted(set(folder_ids))
    if ids:
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM mailcore_folder WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids])


# What the store's writers read of a message: never the parsed text, which can be large.
_LEAN_MESSAGE = ("message__id", "message__size", "message__blob_id", "message__keywords",
                 *(f"message__{n}" for n in _FLAG_NAMES))
_LEAN_ENTRY = ("id", "folder_id", "uid", "message_id", "modseq", "received_at", *_LEAN_MESSAGE)


def _lean_entries(folder: Folder, uids: Sequence[int] | None) -> QuerySet[FolderEntry]:
    return _entries_in(folder, uids).select_related("message").only(*_LEAN_ENTRY).order_by("uid")


def _check_folder(account: Account, folder: Folder) -> None:
    if folder.account_id != account.pk:
        raise StoreError("that folder belongs to another account")


@dataclass
class Appended:
    message_id: int
    uid: int
    uidvalidity: int
    modseq: int


@transaction.atomic
def message_append(
    *,
    account: Account,
    folder: Folder,
    raw: bytes,
    flags: Sequence[str] = (),
    internal_date: datetime | None = None,
) -> Appended:
    """Add a message to a folder (IMAP APPEND, drafts, the Sent copy). Refused when over quota."""
    _check_folder(account, folder)
    if len(raw) > settings.MAX_MESSAGE_SIZE:
        raise MessageTooLarge(f"the message is larger than the limit of {settings.MAX_MESSAGE_SIZE} bytes")
    outcome = store_copies(
        raw=raw,
        targets=[CopyTarget(account_id=account.pk, folder_id=folder.pk, flags=flags, received_at=internal_date)],
        parsed=parse_message(raw),
    )
    if not outcome.stored:
        raise QuotaExceeded("the mailbox is full")
    copy = outcome.stored[0]
    return Appended(message_id=copy.message_id, uid=copy.uid, uidvalidity=folder.uidvalidity, modseq=copy.modseq)


@dataclass
class FlagsResult:
    # uid → (flags, modseq) for every entry of the folder the command named.
    entries: dict[int, tuple[list[str], int]] = field(default_factory=dict)
    changed: list[int] = field(default_factory=list)  # uids whose flags changed
    failed: list[int] = field(default_factory=list)  # uids refused by UNCHANGEDSINCE (RFC 7162)


def _apply_flags(message: Message, mode: FlagMode, values: dict[str, bool], keywords: list[str]) -> bool:
    before = (tuple(getattr(message, n) for n in _FLAG_NAMES), tuple(message.keywords))
    if mode == "set":
        for name in _FLAG_NAMES:
            setattr(message, name, values[name])
        message.keywords = list(keywords)
    elif mode == "add":
        for name in _FLAG_NAMES:
            if values[name]:
                setattr(message, name, True)
        lower = {k.lower() for k in message.keywords}
        message.keywords = list(message.keywords) + [k for k in keywords if k.lower() not in lower]
    else:
        for name in _FLAG_NAMES:
            if values[name]:
                setattr(message, name, False)
        drop = {k.lower() for k in keywords}
        message.keywords = [k for k in message.keywords if k.lower() not in drop]
    after = (tuple(getattr(message, n) for n in _FLAG_NAMES), tuple(message.keywords))
    return before != after


def _standings(folder: Folder, uids: Sequence[int]) -> list[tuple[int, int, int]]:
    """(folder, uid, message) of the other standings of the messages at ``uids`` in ``folder``,
    and (folder, 0, 0) when any of them stands there, in one query."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT o.folder_id, o.uid, o.message_id FROM mailcore_folderentry e
            JOIN mailcore_folderentry o ON o.message_id = e.message_id
            WHERE e.folder_id = %s AND e.uid = ANY(%s) AND o.folder_id <> e.folder_id
            UNION ALL
            (SELECT folder_id, 0, 0 FROM mailcore_folderentry WHERE folder_id = %s AND uid = ANY(%s) LIMIT 1)
            """,
            [folder.pk, list(uids), folder.pk, list(uids)],
        )
        return [(int(f), int(u), int(m)) for f, u, m in cur.fetchall()]


@transaction.atomic
def flags_store(
    *,
    account: Account,
    folder: Folder,
    uids: Sequence[int],
    mode: FlagMode,
    flags: Iterable[str],
    unchanged_since: int | None = None,
) -> FlagsResult:
    """Set, add or remove flags on the messages standing at ``uids`` in ``folder``.

    Flags belong to the message, so every folder it stands in gets a new MODSEQ for it and a
    change-log row, and an event.
    """
    _check_folder(account, folder)
    values, keywords = flag_fields(flags)
    result = FlagsResult()
    # Every standing of the named messages, in this folder and in others, read again once their
    # folders are locked: a move or label committed in between (it locks the folders it changes)
    # would otherwise leave a folder without its MODSEQ bump and with a wrong unseen count.
    locked: set[int] = set()
    while True:
        rows = _standings(folder, uids)
        if not rows:
            return result
        missing = {f for f, _, _ in rows} - locked
        if not missing:
            break
        _lock_folders(missing)
        locked |= missing
    others = [(f, u, m) for f, u, m in rows if f != folder.pk]
    # Read under the folder lock: the flags we change from are the committed ones.
    entries = list(_lean_entries(folder, uids))
    changed_messages: dict[int, tuple[Message, bool]] = {}
    for entry in entries:
        message = entry.message
        if unchanged_since is not None and entry.modseq > unchanged_since:
            result.failed.append(entry.uid)
            continue
        if message.pk in changed_messages:
            continue
        was_seen = message.seen
        if _apply_flags(message, mode, values, keywords):
            changed_messages[message.pk] = (message, was_seen)
    if changed_messages:
        groups: dict[tuple[tuple[bool, ...], tuple[str, ...]], list[int]] = {}
        for message, _ in changed_messages.values():
            key = (tuple(bool(getattr(message, n)) for n in _FLAG_NAMES), tuple(message.keywords))
            groups.setdefault(key, []).append(message.pk)
        for (bools, kws), ids in groups.items():
            Message.objects.filter(pk__in=ids).update(**dict(zip(_FLAG_NAMES, bools, strict=True)), keywords=list(kws))
        standings: dict[int, list[tuple[int, int]]] = {folder.pk: [(e.uid, e.message_id) for e in entries]}
        for folder_id, uid, message_id in others:
            standings.setdefault(folder_id, []).append((uid, message_id))
        changes: list[FolderChange] = []
        for folder_id in sorted(standings):
            touched = [(uid, mid) for uid, mid in standings[folder_id] if mid in changed_messages]
            if not touched:
                continue
            unseen_delta = 0
            for _, mid in touched:
                message, was_seen = changed_messages[mid]
                unseen_delta += int(was_seen) - int(message.seen)
            modseq = bump_modseq(folder_id, unseen_delta=unseen_delta)
            FolderEntry.objects.filter(folder_id=folder_id, uid__in=[u for u, _ in touched]).update(modseq=modseq)
            changes.extend(FolderChange(folder_id=folder_id, modseq=modseq, uid=u, kind=FolderChange.Kind.FLAGS) for u, _ in touched)
            if folder_id == folder.pk:
                result.changed = [u for u, _ in touched]
                for entry in entries:
                    if entry.message_id in changed_messages:
                        entry.modseq = modseq
            publish_on_commit(account.pk, mail_changed(account.pk, folder_id, "flags", modseq))
        FolderChange.objects.bulk_create(changes)
    for entry in entries:
        result.entries[entry.uid] = (entry.message.flag_list, entry.modseq)
    return result


def _entries_in(folder: Folder, uids: Sequence[int] | None) -> QuerySet[FolderEntry]:
    qs = FolderEntry.objects.filter(folder=folder)
    if uids is not None:
        qs = qs.filter(uid__in=list(uids))
    return qs


@transaction.atomic
def message_copy(*, account: Account, source: Folder, uids: Sequence[int], target: Folder) -> list[tuple[int, int]]:
    """IMAP COPY: new messages sharing the blob, flags copied; returns (source uid, new uid) pairs."""
    _check_folder(account, source)
    _check_folder(account, target)
    entries = list(_lean_entries(source, uids))
    if not entries:
        return []
    total = sum(e.message.size for e in entries)
    accepted, _ = reserve_quota({account.pk: total})
    if not accepted:
        raise QuotaExceeded("the mailbox is full")
    unseen = sum(1 for e in entries if not e.message.seen)
    first_uid, modseq = allocate_uids(target.pk, len(entries), unseen=unseen, size=total)
    with connection.cursor() as cur:
        cur.execute(_COPY_SQL, [[e.message_id for e in entries], target.pk, first_uid, modseq])
    pairs = [(entry.uid, first_uid + offset) for offset, entry in enumerate(entries)]
    publish_on_commit(account.pk, mail_changed(account.pk, target.pk, "exists", modseq))
    return pairs


def _copy_sql() -> str:
    """Clone messages (every column, the search vector too), add blob references, file entries."""
    columns = [f.column for f in Message._meta.concrete_fields if f.column != "id"]
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(f'o."{c}"' for c in columns)
    return f"""
    WITH p AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('mailcore_message', 'id')) AS new_id, old_id, ord
        FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(old_id, ord)
    ), clone AS (
        INSERT INTO mailcore_message (id, {names})
        SELECT p.new_id, {values} FROM p JOIN mailcore_message o ON o.id = p.old_id
    ), refs AS (
        UPDATE mailcore_blob b SET refcount = b.refcount + d.n
        FROM (SELECT o.blob_id, count(*) AS n FROM p JOIN mailcore_message o ON o.id = p.old_id
              GROUP BY o.blob_id) d
        WHERE b.id = d.blob_id
    )
    INSERT INTO mailcore_folderentry (folder_id, uid, message_id, modseq, recent, received_at)
    SELECT %s, %s + p.ord - 1, p.new_id, %s, true, o.received_at
    FROM p JOIN mailcore_message o ON o.id = p.old_id
    """  # noqa: S608 (column names from the model)


_COPY_SQL = _copy_sql()


@transaction.atomic
def message_move(*, account: Account, source: Folder, uids: Sequence[int], target: Folder) -> list[tuple[int, int]]:
    """IMAP MOVE (RFC 6851) and the web's "move to": the same messages, new standings."""
    _check_folder(account, source)
    _check_folder(account, target)
    if source.pk == target.pk:
        # Every entry would count as "already there" and then be removed: the messages would
        # be left standing nowhere.
        raise StoreError("messages cannot be moved into the folder they are in")
    _lock_folders([source.pk, target.pk])
    entries = list(_lean_entries(source, uids))
    if not entries:
        return []
    existing = set(FolderEntry.objects.filter(folder=target, message_id__in=[e.message_id for e in entries])
                   .values_list("message_id", flat=True))
    movers = [e for e in entries if e.message_id not in existing]
    size = sum(e.message.size for e in entries)
    unseen = sum(1 for e in entries if not e.message.seen)
    pairs: list[tuple[int, int]] = []
    if movers:
        mover_size = sum(e.message.size for e in movers)
        mover_unseen = sum(1 for e in movers if not e.message.seen)
        first_uid, modseq = allocate_uids(target.pk, len(movers), unseen=mover_unseen, size=mover_size)
        FolderEntry.objects.bulk_create(
            FolderEntry(folder=target, uid=first_uid + i, message_id=e.message_id, modseq=modseq, recent=True,
                        received_at=e.received_at)
            for i, e in enumerate(movers)
        )
        pairs = [(e.uid, first_uid + i) for i, e in enumerate(movers)]
        publish_on_commit(account.pk, mail_changed(account.pk, target.pk, "exists", modseq))
    _remove_entries(account=account, folder=source, entries=entries, size=size, unseen=unseen, release=False)
    return pairs


@transaction.atomic
def label_add(*, account: Account, message_ids: Sequence[int], folder: Folder) -> list[int]:
    """Put messages into another folder as well (a label): same Message, shared flags."""
    _check_folder(account, folder)
    # The folders the messages stand in, with the new one, before their flags are read: flags_store
    # locks them too, so the unseen count given here is the one it leaves (and it sees this entry).
    _lock_folders([folder.pk, *FolderEntry.objects.filter(
        folder__account=account, message_id__in=list(message_ids)).values_list("folder_id", flat=True)])
    messages = list(
        Message.objects.filter(account=account, pk__in=list(message_ids)).exclude(entries__folder=folder).order_by("pk")
    )
    if not messages:
        return []
    unseen = sum(1 for m in messages if not m.seen)
    first_uid, modseq = allocate_uids(folder.pk, len(messages), unseen=unseen, size=sum(m.size for m in messages))
    FolderEntry.objects.bulk_create(
        FolderEntry(folder=folder, uid=first_uid + i, message=m, modseq=modseq, recent=True, received_at=m.received_at)
        for i, m in enumerate(messages)
    )
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "exists", modseq))
    return [first_uid + i for i in range(len(messages))]


@transaction.atomic
def folder_expunge(
    *, account: Account, folder: Folder, uids: Sequence[int] | None = None, only_deleted: bool = True
) -> list[int]:
    """Remove entries from a folder (those flagged \\Deleted, unless ``only_deleted`` is False).

    A message whose last entry goes is deleted, its size leaves the quota, and its blob loses
    a reference. Returns the expunged UIDs in ascending order.
    """
    _check_folder(account, folder)
    # The account row first, then the folder: the order of APPEND and delivery (quota, then
    # UIDs), since releasing messages here updates the account's quota after the folder lock.
    _lock_account(account.pk)
    _lock_folders([folder.pk])
    qs = _lean_entries(folder, uids)
    if only_deleted:
        qs = qs.filter(message__deleted=True)
    entries = list(qs)
    if not entries:
        return []
    size = sum(e.message.size for e in entries)
    unseen = sum(1 for e in entries if not e.message.seen)
    _remove_entries(account=account, folder=folder, entries=entries, size=size, unseen=unseen, release=True)
    return [e.uid for e in entries]


def _remove_entries(
    *, account: Account, folder: Folder, entries: list[FolderEntry], size: int, unseen: int, release: bool
) -> None:
    modseq = bump_modseq(folder.pk, count_delta=-len(entries), unseen_delta=-unseen, size_delta=-size)
    FolderEntry.objects.filter(pk__in=[e.pk for e in entries]).delete()
    FolderChange.objects.bulk_create(
        FolderChange(folder=folder, modseq=modseq, uid=e.uid, kind=FolderChange.Kind.EXPUNGE) for e in entries
    )
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "expunge", modseq))
    if release:
        messages_release(account=account, message_ids=[e.message_id for e in entries])


def messages_release(*, account: Account, message_ids: Sequence[int]) -> None:
    """Delete the given messages that no longer stand in any folder; free quota and blobs."""
    with connection.cursor() as cur:
        cur.execute(
            """
            DELETE FROM mailcore_message m WHERE m.account_id = %s AND m.id = ANY(%s)
            AND NOT EXISTS (SELECT 1 FROM mailcore_folderentry e WHERE e.message_id = m.id)
            RETURNING m.id, m.size, m.blob_id
            """,
            [account.pk, list(message_ids)],
        )
        orphans = cur.fetchall()
    if not orphans:
        return
    release_quota({account.pk: sum(size for _, size, _ in orphans)})
    refs: dict[int, int] = {}
    for _, _, blob_id in orphans:
        refs[blob_id] = refs.get(blob_id, 0) + 1
    blobs_release(blob_refs=refs)


@transaction.atomic
def recent_clear(*, folder: Folder, uids: Sequence[int]) -> None:
    """The first session to see an entry takes its \\Recent (RFC 3501 §2.3.2)."""
    FolderEntry.objects.filter(folder=folder, uid__in=list(uids), recent=True).update(recent=False)
