"""Changing stored messages: append, flags, copy, move, labels and expunge."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

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
from .locks import LOCK_ACCOUNTS_SQL, LOCK_FOLDERS_SQL, lock_accounts, lock_folders
from .sql import fetch_all, fetch_pipelined

FlagMode = Literal["set", "add", "remove"]
_FLAG_NAMES = ("seen", "answered", "flagged", "deleted", "draft")


# What the store's writers read of a message: never the parsed text, which can be large.
_LEAN_MESSAGE = ("message__id", "message__size", "message__blob_id", "message__keywords",
                 *(f"message__{n}" for n in _FLAG_NAMES))
_LEAN_ENTRY = ("id", "folder_id", "uid", "message_id", "modseq", "received_at", "thread_id", *_LEAN_MESSAGE)


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
    recent: bool = True,
) -> Appended:
    """Add a message to a folder (IMAP APPEND, drafts, the Sent copy). Refused when over quota.

    ``recent=False`` files it without \\Recent: for an IMAP session that has the folder
    selected, which is then the first to see it and reports \\Recent itself."""
    _check_folder(account, folder)
    if len(raw) > settings.MAX_MESSAGE_SIZE:
        raise MessageTooLarge(f"the message is larger than the limit of {settings.MAX_MESSAGE_SIZE} bytes")
    outcome = store_copies(
        raw=raw,
        targets=[CopyTarget(account_id=account.pk, folder_id=folder.pk, flags=flags, received_at=internal_date,
                            recent=recent)],
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


FlagState = tuple[tuple[bool, ...], tuple[str, ...]]  # the five system flags, then the keywords


def _apply_flags(state: FlagState, mode: FlagMode, values: dict[str, bool], keywords: list[str]) -> FlagState:
    bools, current = state
    if mode == "set":
        return tuple(values[n] for n in _FLAG_NAMES), tuple(keywords)
    if mode == "add":
        lower = {k.lower() for k in current}
        return (tuple(b or values[n] for b, n in zip(bools, _FLAG_NAMES, strict=True)),
                current + tuple(k for k in keywords if k.lower() not in lower))
    drop = {k.lower() for k in keywords}
    return (tuple(b and not values[n] for b, n in zip(bools, _FLAG_NAMES, strict=True)),
            tuple(k for k in current if k.lower() not in drop))


def _flag_list(state: FlagState) -> list[str]:
    return [name for name, on in zip(Message.SYSTEM_FLAGS, state[0], strict=True) if on] + list(state[1])


def _json_list(value: object) -> list[str]:
    # Django loads jsonb as text on its connections (JSONField decodes it); raw cursors see that.
    loaded: Any = json.loads(value) if isinstance(value, str) else value
    return list(loaded or [])


# Lock, in id order, every folder where a named message stands (this one included); none when
# no entry stands at the named UIDs. Run under the account lock, so that set cannot change.
_FLAGS_LOCK_SQL = """
SELECT f.id FROM mailcore_folder f
WHERE f.id IN (SELECT o.folder_id FROM mailcore_folderentry e
               JOIN mailcore_folderentry o ON o.message_id = e.message_id
               WHERE e.folder_id = %s AND e.uid = ANY(%s::bigint[]))
ORDER BY f.id FOR NO KEY UPDATE OF f
"""
# Read under the folder locks: the flags we change from are the committed ones.
_FLAGS_READ_SQL = """
SELECT e.uid, e.modseq, m.id, m.seen, m.answered, m.flagged, m.deleted, m.draft, m.keywords
FROM mailcore_folderentry e JOIN mailcore_message m ON m.id = e.message_id
WHERE e.folder_id = %s AND e.uid = ANY(%s::bigint[]) ORDER BY e.uid
"""
# Write the new flags, then give every standing of a changed message (in any folder) its
# folder's next MODSEQ and a change-log row; returns each touched folder's new MODSEQ.
_FLAGS_WRITE_SQL = """
WITH c AS (
    SELECT * FROM unnest(%s::bigint[], %s::boolean[], %s::boolean[], %s::boolean[], %s::boolean[],
                         %s::boolean[], %s::text[], %s::integer[])
        AS c(id, seen, answered, flagged, deleted, draft, keywords, unseen_delta)
), msg AS (
    UPDATE mailcore_message m
    SET seen = c.seen, answered = c.answered, flagged = c.flagged, deleted = c.deleted, draft = c.draft,
        keywords = c.keywords::jsonb
    FROM c WHERE m.id = c.id
), s AS MATERIALIZED (
    SELECT o.id, o.folder_id, o.uid, c.unseen_delta FROM mailcore_folderentry o JOIN c ON c.id = o.message_id
), fold AS (
    UPDATE mailcore_folder f SET highest_modseq = f.highest_modseq + 1, unseen_count = f.unseen_count + d.n
    FROM (SELECT folder_id, sum(unseen_delta) AS n FROM s GROUP BY folder_id) d
    WHERE f.id = d.folder_id
    RETURNING f.id, f.highest_modseq
), ent AS (
    UPDATE mailcore_folderentry e SET modseq = fold.highest_modseq
    FROM s JOIN fold ON fold.id = s.folder_id WHERE e.id = s.id
), log AS (
    INSERT INTO mailcore_folderchange (folder_id, modseq, uid, kind)
    SELECT s.folder_id, fold.highest_modseq, s.uid, 'flags' FROM s JOIN fold ON fold.id = s.folder_id
)
SELECT id, highest_modseq FROM fold
"""


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
    change-log row, and an event. Four statements at most, in two round trips: the account
    lock, the folder locks and the read pipelined, then one write.
    """
    _check_folder(account, folder)
    values, keywords = flag_fields(flags)
    result = FlagsResult()
    uid_list = list(uids)
    # Under the account lock no standing of these messages can come or go until commit.
    # One round trip for the account lock, the folder locks and the read, run in that order.
    _, locked, rows = fetch_pipelined([(LOCK_ACCOUNTS_SQL, [[account.pk]]), (_FLAGS_LOCK_SQL, [folder.pk, uid_list]),
                                       (_FLAGS_READ_SQL, [folder.pk, uid_list])])
    if not locked:
        return result
    states: dict[int, FlagState] = {}  # message id -> flags it ends with
    before: dict[int, FlagState] = {}
    changed: dict[int, FlagState] = {}
    entries: list[tuple[int, int, int]] = []  # (uid, modseq, message id)
    for uid, modseq, message_id, seen, answered, flagged, deleted, draft, kws in rows:
        entries.append((uid, modseq, message_id))
        if message_id not in before:
            before[message_id] = states[message_id] = ((seen, answered, flagged, deleted, draft),
                                                       tuple(_json_list(kws)))
        if unchanged_since is not None and modseq > unchanged_since:
            result.failed.append(uid)
            continue
        if message_id in changed:
            continue
        after = _apply_flags(before[message_id], mode, values, keywords)
        if after != before[message_id]:
            changed[message_id] = states[message_id] = after
    new_modseq: dict[int, int] = {}
    if changed:
        ids = sorted(changed)
        params: list[object] = [ids]
        params += [[changed[i][0][n] for i in ids] for n in range(len(_FLAG_NAMES))]
        params.append([json.dumps(list(changed[i][1])) for i in ids])
        params.append([int(before[i][0][0]) - int(changed[i][0][0]) for i in ids])
        new_modseq = {int(f): int(m) for f, m in fetch_all(_FLAGS_WRITE_SQL, params)}
        for folder_id in sorted(new_modseq):
            publish_on_commit(account.pk, mail_changed(account.pk, folder_id, "flags", new_modseq[folder_id]))
        result.changed = [uid for uid, _, message_id in entries if message_id in changed]
    for uid, modseq, message_id in entries:
        if message_id in changed:
            modseq = new_modseq[folder.pk]
        result.entries[uid] = (_flag_list(states[message_id]), modseq)
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
    # Locked before reading: an entry expunged meanwhile would be counted but not copied.
    lock_accounts([account.pk])
    lock_folders([source.pk, target.pk])
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
    INSERT INTO mailcore_folderentry (folder_id, uid, message_id, modseq, recent, received_at, thread_id)
    SELECT %s, %s + p.ord - 1, p.new_id, %s, true, o.received_at, o.thread_id
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
    lock_accounts([account.pk])
    lock_folders([source.pk, target.pk])
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
                        received_at=e.received_at, thread_id=e.thread_id)
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
    lock_accounts([account.pk])
    lock_folders([folder.pk])
    messages = list(
        Message.objects.filter(account=account, pk__in=list(message_ids)).exclude(entries__folder=folder).order_by("pk")
    )
    if not messages:
        return []
    unseen = sum(1 for m in messages if not m.seen)
    first_uid, modseq = allocate_uids(folder.pk, len(messages), unseen=unseen, size=sum(m.size for m in messages))
    FolderEntry.objects.bulk_create(
        FolderEntry(folder=folder, uid=first_uid + i, message=m, modseq=modseq, recent=True, received_at=m.received_at,
                    thread_id=m.thread_id)
        for i, m in enumerate(messages)
    )
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "exists", modseq))
    return [first_uid + i for i in range(len(messages))]


# One statement for the whole expunge, run under the account and folder locks: remove the
# entries, bump the folder's MODSEQ and counters, log the expunges, delete the messages left
# standing nowhere, give their size back to the quota and drop their blob references. All the
# CTEs read one snapshot, taken after the locks, so the orphan test leaves out the entries this
# statement removes (``gone``); under the account lock no other standing can come or go.
_EXPUNGE_SQL = """
WITH gone AS (
    DELETE FROM mailcore_folderentry e USING mailcore_message m
    WHERE e.folder_id = %s AND m.id = e.message_id
      AND (%s::boolean OR e.uid = ANY(%s::bigint[])) AND (NOT %s::boolean OR m.deleted)
    RETURNING e.id, e.uid, e.message_id, m.size, m.seen
), totals AS (
    SELECT count(*) AS n, count(*) FILTER (WHERE NOT seen) AS unseen, COALESCE(sum(size), 0) AS size FROM gone
), fold AS (
    UPDATE mailcore_folder f
    SET highest_modseq = f.highest_modseq + 1, total_count = f.total_count - t.n,
        unseen_count = f.unseen_count - t.unseen, total_size = f.total_size - t.size
    FROM totals t WHERE f.id = %s AND t.n > 0
    RETURNING f.highest_modseq
), log AS (
    INSERT INTO mailcore_folderchange (folder_id, modseq, uid, kind)
    SELECT %s, fold.highest_modseq, gone.uid, 'expunge' FROM gone CROSS JOIN fold
), orphans AS (
    DELETE FROM mailcore_message m
    WHERE m.account_id = %s AND m.id IN (SELECT message_id FROM gone)
      AND NOT EXISTS (SELECT 1 FROM mailcore_folderentry o
                      WHERE o.message_id = m.id AND o.id NOT IN (SELECT id FROM gone))
    RETURNING m.size, m.blob_id
), quota AS (
    UPDATE mailcore_account a SET used_bytes = GREATEST(a.used_bytes - q.size, 0)
    FROM (SELECT sum(size) AS size FROM orphans) q WHERE a.id = %s AND q.size IS NOT NULL
), blobs AS (
    UPDATE mailcore_blob b SET refcount = b.refcount - d.n
    FROM (SELECT blob_id, count(*) AS n FROM orphans GROUP BY blob_id) d WHERE b.id = d.blob_id
    RETURNING b.id, b.refcount
)
SELECT gone.uid, fold.highest_modseq, NULL::bigint FROM gone CROSS JOIN fold
UNION ALL
SELECT NULL, NULL, blobs.id FROM blobs WHERE blobs.refcount <= 0
"""


class ExpungedUids(list[int]):
    """The UIDs ``folder_expunge`` removed, ascending; ``modseq`` is the folder's MODSEQ the
    expunge took (0 when nothing was removed)."""

    modseq: int = 0


@transaction.atomic
def folder_expunge(
    *, account: Account, folder: Folder, uids: Sequence[int] | None = None, only_deleted: bool = True
) -> ExpungedUids:
    """Remove entries from a folder (those flagged \\Deleted, unless ``only_deleted`` is False).

    A message whose last entry goes is deleted, its size leaves the quota, and its blob loses
    a reference. Returns the expunged UIDs in ascending order.
    """
    _check_folder(account, folder)
    # The account row first, then the folder: the order of APPEND and delivery (quota, then
    # UIDs), since releasing messages here updates the account's quota after the folder lock.
    # The locks and the expunge in one round trip, run in that order.
    _, _, rows = fetch_pipelined([
        (LOCK_ACCOUNTS_SQL, [[account.pk]]),
        (LOCK_FOLDERS_SQL, [[folder.pk]]),
        (_EXPUNGE_SQL, [folder.pk, uids is None, list(uids or ()), only_deleted, folder.pk, folder.pk, account.pk,
                        account.pk]),
    ])
    gone = ExpungedUids(sorted(int(uid) for uid, _, _ in rows if uid is not None))
    if not gone:
        return gone
    modseq = gone.modseq = next(int(m) for _, m, _ in rows if m is not None)
    freed = [int(b) for _, _, b in rows if b is not None]
    if freed:
        # A blob still referenced by an outbound queue row is protected by its FK count too.
        with connection.cursor() as cur:
            cur.execute("DELETE FROM mailcore_blob WHERE id = ANY(%s) AND refcount <= 0", [freed])
    publish_on_commit(account.pk, mail_changed(account.pk, folder.pk, "expunge", modseq))
    return gone


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
