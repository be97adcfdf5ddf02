"""Storing message copies: the shared core of deliver and append.

One transaction writes the blob once, the Message rows (one per account), their FolderEntry
rows with UIDs and MODSEQs allocated by ``UPDATE folder ... RETURNING``, and the quota
counters; the search vector follows just after (mailcore/store/index.py). Row locks are
always taken in id order (accounts, then folders) so
that concurrent deliveries to overlapping recipients cannot deadlock.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DataError, connection
from django.utils import timezone

from mailcore.events import mail_changed, publish_on_commit
from mailcore.mime import ParsedMessage, parse_message
from mailcore.models import Message

from .errors import FolderNotFound
from .locks import lock_accounts, lock_folders
from .sql import fetch_all
from .threads import thread_lookup

MAX_INDEXED_TEXT = 256 * 1024
MAX_KEY_TEXT = 500  # values that sit in btree indexes (message-id, thread subject)

@dataclass
class CopyTarget:
    account_id: int
    folder_id: int
    flags: Sequence[str] = ()
    received_at: datetime | None = None
    # \Recent for IMAP (RFC 3501 §2.3.2); False when the session that appends it has the folder
    # selected and takes \Recent itself.
    recent: bool = True


@dataclass
class StoredCopy:
    account_id: int
    folder_id: int
    message_id: int
    uid: int
    modseq: int


@dataclass
class StoreOutcome:
    stored: list[StoredCopy] = field(default_factory=list)
    over_quota: list[int] = field(default_factory=list)  # account ids refused for quota
    blob_id: int | None = None


def flag_fields(flags: Iterable[str]) -> tuple[dict[str, bool], list[str]]:
    """Split IMAP flags into Message boolean fields and keywords (deduplicated, case-insensitive)."""
    values = {"seen": False, "answered": False, "flagged": False, "deleted": False, "draft": False}
    keywords: list[str] = []
    seen_kw: set[str] = set()
    for flag in flags:
        name = Message.flag_field(flag)
        if name:
            values[name] = True
        elif flag.lower() == "\\recent" or flag.startswith("\\"):
            continue  # \Recent is per-standing and never stored by a client
        elif flag.lower() not in seen_kw:
            seen_kw.add(flag.lower())
            keywords.append(flag)
    return values, keywords


def address_text(addresses: Sequence[object]) -> str:
    parts = []
    for item in addresses:
        name = getattr(item, "name", "") or ""
        email = getattr(item, "email", "") or ""
        parts.append(f"{name} <{email}>" if name else email)
    return ", ".join(parts)


def _addresses_json(parsed: ParsedMessage) -> dict[str, list[list[str]]]:
    def pack(items: Sequence[object]) -> list[list[str]]:
        return [[getattr(a, "name", "") or "", getattr(a, "email", "") or ""] for a in items]

    return {
        "from": pack(parsed.from_),
        "sender": pack(parsed.sender),
        "reply_to": pack(parsed.reply_to),
        "to": pack(parsed.to),
        "cc": pack(parsed.cc),
        "bcc": pack(parsed.bcc),
    }


def reserve_quota(amounts: dict[int, int], *, enforce: bool = True) -> tuple[list[int], list[int]]:
    """Add each account's amount to its usage where it fits; returns (accepted, over quota).

    Locks the account rows in id order first, so concurrent writers cannot deadlock here.
    """
    ids = sorted(amounts)
    if not ids:
        return [], []
    sizes = [amounts[i] for i in ids]
    condition = "AND (a.quota_bytes = 0 OR a.used_bytes + d.n <= a.quota_bytes)" if enforce else ""
    if len(ids) > 1:  # one row needs no ordering: the UPDATE locks it
        lock_accounts(ids)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE mailcore_account a SET used_bytes = a.used_bytes + d.n
            FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, n)
            WHERE a.id = d.id {condition}
            RETURNING a.id
            """,  # noqa: S608
            [ids, sizes],
        )
        accepted = {int(row[0]) for row in cur.fetchall()}
    return sorted(accepted), [i for i in ids if i not in accepted]


def release_quota(amounts: dict[int, int]) -> None:
    if amounts:
        ids = sorted(amounts)
        with connection.cursor() as cur:
            cur.execute(
                """
                UPDATE mailcore_account a SET used_bytes = GREATEST(a.used_bytes - d.n, 0)
                FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, n) WHERE a.id = d.id
                """,
                [ids, [amounts[i] for i in ids]],
            )


def allocate_uids(folder_id: int, count: int, *, unseen: int = 0, size: int = 0) -> tuple[int, int]:
    """Reserve ``count`` UIDs and one MODSEQ in a folder; returns (first uid, modseq).

    The row lock this takes is held to commit, which is what makes UIDs increase in commit
    order (RFC 3501 §2.3.1.1) and serialises writers per folder, and nothing else.
    """
    with connection.cursor() as cur:
        cur.execute(
            """
            UPDATE mailcore_folder
            SET uid_next = uid_next + %s, highest_modseq = highest_modseq + 1,
                total_count = total_count + %s, unseen_count = unseen_count + %s,
                total_size = total_size + %s
            WHERE id = %s AND NOT noselect
            RETURNING uid_next - %s, highest_modseq
            """,
            [count, count, unseen, size, folder_id, count],
        )
        row = cur.fetchone()
    if row is None:
        raise FolderNotFound("the folder does not exist (or holds no messages: \\Noselect)")
    return int(row[0]), int(row[1])


def bump_modseq(folder_id: int, *, count_delta: int = 0, unseen_delta: int = 0, size_delta: int = 0) -> int:
    with connection.cursor() as cur:
        cur.execute(
            """
            UPDATE mailcore_folder
            SET highest_modseq = highest_modseq + 1, total_count = total_count + %s,
                unseen_count = unseen_count + %s, total_size = total_size + %s
            WHERE id = %s RETURNING highest_modseq
            """,
            [count_delta, unseen_delta, size_delta, folder_id],
        )
        row = cur.fetchone()
    if row is None:
        raise FolderNotFound("the folder does not exist")
    return int(row[0])


# The parsed fields every copy of one message shares, as (column, SQL type) in INSERT order.
_SHARED_COLUMNS = [
    ("size", "bigint"), ("subject", "text"), ("thread_subject", "text"), ("from_name", "text"),
    ("from_email", "text"), ("to_text", "text"), ("cc_text", "text"), ("addresses", "jsonb"),
    ("date", "timestamptz"), ("message_id", "text"), ("in_reply_to", "jsonb"), ("references", "jsonb"),
    ("header_size", "integer"), ("envelope", "jsonb"), ("bodystructure", "jsonb"), ("attachments", "jsonb"),
    ("has_attachments", "boolean"), ("preview", "text"), ("html_part", "text"), ("text_part", "text"),
    ("search_text", "text"),
]
# What differs per copy, passed as parallel arrays and unnested.
_TARGET_COLUMNS = [
    ("account_id", "bigint"), ("folder_id", "bigint"), ("received_at", "timestamptz"), ("seen", "boolean"),
    ("answered", "boolean"), ("flagged", "boolean"), ("deleted", "boolean"), ("draft", "boolean"),
    ("keywords", "text"), ("received_tz", "smallint"), ("recent", "boolean"),
]
MESSAGE_INSERT_COLUMNS = frozenset(
    {"id", "blob_id", "thread_id"} | {c for c, _ in _SHARED_COLUMNS}
    | {c for c, _ in _TARGET_COLUMNS} - {"folder_id", "recent"}
)
_NO_THREADS = "SELECT NULL::bigint AS account_id, NULL::bigint AS thread_id WHERE false"


# Appended to the statement when it runs on its own, outside a transaction block: a target folder
# that took no copies although its account's quota took the message (the folder is gone, or is
# \Noselect) fails the whole statement, so that nothing of it is committed. (Inside a transaction
# the caller's FolderNotFound rolls everything back instead.) The divisor is data, so PostgreSQL
# cannot fold it at planning time.
_ALONE_GUARD = """
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL
    WHERE 1 / (CASE WHEN (SELECT count(*) FROM fold) < (SELECT count(DISTINCT folder_id) FROM t) THEN 0 ELSE 1 END) = 0
"""


@functools.cache
def _store_sql(*, enforce_quota: bool, threads_sql: str, alone: bool = False, single: bool = False) -> str:
    """One statement for the whole write: quota, thread lookup, blob, messages, UIDs, entries.

    ``search_vector`` stays NULL: the index job fills it just after (mailcore/store/index.py).

    Data-modifying CTEs all see one snapshot and run to completion; the order of their row locks
    follows their data dependencies: the account UPDATE (quota) feeds the copies, whose counts
    feed the folder UPDATE, so accounts are locked before folders, as everywhere in the store.
    The folder UPDATE allocates a contiguous UID range and one MODSEQ per folder and holds the
    row lock to commit, as ``allocate_uids`` does. The result has one row per stored copy and one
    per account whose quota took the message (``accepted``); an account missing there was full.

    ``single``: one target, whose values are passed as scalars instead of one-element arrays
    (psycopg inspects every list it sends, and that was the client's largest cost per delivery).
    """
    unnest_names = ", ".join(c for c, _ in _TARGET_COLUMNS)
    if single:
        targets_sql = f"(SELECT {', '.join(f'%s::{t}' for _, t in _TARGET_COLUMNS)}, 1::bigint)"
        amounts_sql = "(SELECT %s::bigint, %s::bigint)"
    else:
        targets_sql = f"unnest({', '.join(f'%s::{t}[]' for _, t in _TARGET_COLUMNS)}) WITH ORDINALITY"
        amounts_sql = "unnest(%s::bigint[], %s::bigint[])"
    shared_values = ", ".join(
        f"%s::{t}" if t != "jsonb" else "%s::text::jsonb" for _, t in _SHARED_COLUMNS
    )
    shared_names = ", ".join(f'"{c}"' for c, _ in _SHARED_COLUMNS)
    condition = "AND (a.quota_bytes = 0 OR a.used_bytes + d.n <= a.quota_bytes)" if enforce_quota else ""
    return f"""
    WITH quota AS (
        UPDATE mailcore_account a SET used_bytes = a.used_bytes + d.n
        FROM {amounts_sql} AS d(id, n)
        WHERE a.id = d.id {condition}
        RETURNING a.id
    ), th AS ({threads_sql}
    ), t AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('mailcore_message', 'id')) AS id, u.*
        FROM {targets_sql} AS u({unnest_names}, ord)
        WHERE u.account_id IN (SELECT id FROM quota)
    ), blob AS (
        INSERT INTO mailcore_blob (sha256, size, data, refcount, created_at)
        SELECT %s::varchar, %s::bigint, %s::bytea, c.n, now() FROM (SELECT count(*) AS n FROM t) c WHERE c.n > 0
        ON CONFLICT (sha256) DO UPDATE SET refcount = mailcore_blob.refcount + EXCLUDED.refcount
        RETURNING id
    ), msg AS (
        INSERT INTO mailcore_message (
            id, blob_id, account_id, received_at, seen, answered, flagged, deleted, draft, keywords,
            thread_id, received_tz, {shared_names}
        )
        SELECT t.id, blob.id, t.account_id, t.received_at, t.seen, t.answered, t.flagged, t.deleted,
               t.draft, t.keywords::jsonb, COALESCE(th.thread_id, first.id), t.received_tz, s.*
        FROM t
        CROSS JOIN blob
        JOIN (SELECT account_id, min(id) AS id FROM t GROUP BY account_id) first USING (account_id)
        LEFT JOIN th ON th.account_id = t.account_id
        CROSS JOIN (SELECT {shared_values}) s
        RETURNING id, thread_id
    ), counts AS (
        SELECT folder_id, count(*) AS n, count(*) FILTER (WHERE NOT seen) AS unseen FROM t GROUP BY folder_id
    ), fold AS (
        UPDATE mailcore_folder f
        SET uid_next = f.uid_next + c.n, highest_modseq = f.highest_modseq + 1,
            total_count = f.total_count + c.n, unseen_count = f.unseen_count + c.unseen,
            total_size = f.total_size + c.n * %s
        FROM counts c WHERE f.id = c.folder_id AND NOT f.noselect
        RETURNING f.id, f.uid_next - c.n AS first_uid, f.highest_modseq AS modseq
    ), entries AS (
        INSERT INTO mailcore_folderentry (folder_id, uid, message_id, modseq, recent, received_at, thread_id)
        SELECT t.folder_id, fold.first_uid + row_number() OVER (PARTITION BY t.folder_id ORDER BY t.ord) - 1,
               t.id, fold.modseq, t.recent, t.received_at, msg.thread_id
        FROM t JOIN fold ON fold.id = t.folder_id JOIN msg ON msg.id = t.id
        RETURNING folder_id, uid, message_id, modseq
    )
    SELECT folder_id, uid, message_id, modseq, (SELECT id FROM blob), NULL::bigint FROM entries
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, id FROM quota
    {_ALONE_GUARD if alone else ""}"""  # noqa: S608


def store_copies(
    *,
    raw: bytes,
    targets: Sequence[CopyTarget],
    parsed: ParsedMessage | None = None,
    check_quota: bool = True,
    alone: bool = False,
) -> StoreOutcome:
    """Write one blob and a Message + FolderEntry per target. Call inside ``transaction.atomic``.

    One statement (``_store_sql``) does it all, quota and thread lookup included; several
    accounts or folders are locked in id order first.

    ``alone``: for ONE target, called outside any transaction block: the statement is then its
    own transaction (no BEGIN and COMMIT round trips), and fails as a whole if the folder took
    nothing (FolderNotFound, nothing stored); a full mailbox takes nothing either (over_quota).
    """
    if alone and (len(targets) != 1 or connection.in_atomic_block):
        raise ValueError("alone is for one target outside a transaction block")
    if not targets:
        return StoreOutcome()
    statement = copies_statement(raw=raw, targets=targets, parsed=parsed, check_quota=check_quota, alone=alone)
    if len(statement.account_ids) > 1:  # one row needs no ordering: the UPDATE locks it
        lock_accounts(statement.account_ids)
    folder_ids = sorted({t.folder_id for t in statement.targets})
    if len(folder_ids) > 1:
        lock_folders(folder_ids)
    try:
        rows = fetch_all(statement.sql, statement.params)
    except DataError as exc:
        if alone and "division by zero" in str(exc):
            raise FolderNotFound("the folder does not exist (or holds no messages: \\Noselect)") from None
        raise
    return copies_outcome(statement, rows, publish=publish_on_commit)


@dataclass
class CopiesStatement:
    """The one statement that stores a message's copies (``_store_sql``), with what reading its
    rows needs: from :func:`copies_statement`, run by ``store_copies`` or by an event loop."""

    sql: str
    params: list[Any]
    targets: list[CopyTarget]  # in the statement's order
    account_ids: list[int]  # sorted, distinct


def copies_statement(
    *,
    raw: bytes,
    targets: Sequence[CopyTarget],
    parsed: ParsedMessage | None = None,
    check_quota: bool = True,
    alone: bool = False,
) -> CopiesStatement:
    """The statement that stores ``raw`` once and a copy per target, and its parameters.

    Pure computation, no database access. Run it inside a transaction after taking the locks
    ``store_copies`` takes for several accounts or folders; with ``alone`` (one target) it is its
    own transaction, and fails with a division by zero when the folder took nothing.
    """
    parsed = parsed or parse_message(raw)
    size = len(raw)
    amounts: dict[int, int] = {}
    for t in targets:
        amounts[t.account_id] = amounts.get(t.account_id, 0) + size
    ordered = sorted(targets, key=lambda t: (t.folder_id, t.account_id))
    account_ids = sorted(amounts)

    message_id_header = parsed.message_id[:MAX_KEY_TEXT]
    thread_subject = parsed.thread_subject[:MAX_KEY_TEXT]
    threads = thread_lookup(
        account_ids=account_ids,
        message_id=message_id_header,
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        thread_subject=thread_subject,
        is_reply=bool(parsed.in_reply_to or parsed.references) or _looks_like_reply(parsed.subject),
        senders=[a.email for a in parsed.from_],
        recipients=[a.email for a in [*parsed.to, *parsed.cc]],
    )
    threads_sql, thread_params = threads if threads is not None else (_NO_THREADS, [])

    now = timezone.now()
    columns: dict[str, list[Any]] = {c: [] for c, _ in _TARGET_COLUMNS}
    for target in ordered:
        flags, keywords = flag_fields(target.flags)
        columns["account_id"].append(target.account_id)
        columns["folder_id"].append(target.folder_id)
        columns["received_at"].append(target.received_at or now)
        columns["received_tz"].append(_offset_minutes(target.received_at))
        for name in ("seen", "answered", "flagged", "deleted", "draft"):
            columns[name].append(flags[name])
        columns["keywords"].append(json.dumps(keywords))
        columns["recent"].append(target.recent)

    first_from = parsed.from_[0] if parsed.from_ else None
    shared = {
        "size": size,
        "subject": parsed.subject,
        "thread_subject": thread_subject,
        "from_name": first_from.name if first_from else "",
        "from_email": first_from.email if first_from else "",
        "to_text": address_text(parsed.to),
        "cc_text": address_text(parsed.cc),
        "addresses": json.dumps(_addresses_json(parsed)),
        "date": parsed.date,
        "message_id": message_id_header,
        "in_reply_to": json.dumps([i[:MAX_KEY_TEXT] for i in parsed.in_reply_to]),
        "references": json.dumps([i[:MAX_KEY_TEXT] for i in parsed.references]),
        "header_size": parsed.header_size,
        "envelope": json.dumps(parsed.envelope),
        "bodystructure": json.dumps(parsed.bodystructure),
        "attachments": json.dumps(parsed.attachments),
        "has_attachments": parsed.has_attachments,
        "preview": parsed.preview,
        "html_part": parsed.html_part or "",
        "text_part": parsed.text_part or "",
        "search_text": parsed.text[:MAX_INDEXED_TEXT],
    }
    single = len(ordered) == 1
    if single:
        params: list[Any] = [account_ids[0], amounts[account_ids[0]], *thread_params]
        params += [columns[c][0] for c, _ in _TARGET_COLUMNS]
    else:
        params = [account_ids, [amounts[a] for a in account_ids], *thread_params]
        params += [columns[c] for c, _ in _TARGET_COLUMNS]
    params += [hashlib.sha256(raw).hexdigest(), size, raw]
    params += [shared[c] for c, _ in _SHARED_COLUMNS]
    params.append(size)
    sql = _store_sql(enforce_quota=check_quota, threads_sql=threads_sql, alone=alone, single=single)
    return CopiesStatement(sql=sql, params=params, targets=ordered, account_ids=account_ids)


def copies_outcome(
    statement: CopiesStatement, rows: Sequence[Sequence[Any]], *, publish: Callable[[int, dict[str, Any]], None]
) -> StoreOutcome:
    """What the statement's rows say was stored; ``publish`` gets each folder's "exists" event
    (``publish_on_commit`` inside a transaction, ``publish_soon`` after a statement of its own).
    FolderNotFound when a target folder took nothing although its account's quota took it."""
    outcome = StoreOutcome()
    accepted = {int(row[5]) for row in rows if row[5] is not None}
    outcome.over_quota = [a for a in statement.account_ids if a not in accepted]
    account_of: dict[int, int] = {}
    for target in statement.targets:
        if target.account_id in accepted:
            account_of.setdefault(target.folder_id, target.account_id)
    modseq_of: dict[int, int] = {}
    for folder_id, uid, message_pk, modseq, blob_id, _account in sorted(
        (r for r in rows if r[5] is None), key=lambda r: (r[0], r[1])
    ):
        outcome.blob_id = int(blob_id)
        modseq_of[folder_id] = int(modseq)
        outcome.stored.append(
            StoredCopy(
                account_id=account_of[folder_id], folder_id=folder_id, message_id=int(message_pk),
                uid=int(uid), modseq=int(modseq),
            )
        )
    for folder_id, account_id in account_of.items():
        if folder_id not in modseq_of:
            raise FolderNotFound("the folder does not exist (or holds no messages: \\Noselect)")
        publish(account_id, mail_changed(account_id, folder_id, "exists", modseq_of[folder_id]))
    return outcome


def _offset_minutes(value: datetime | None) -> int:
    offset = value.utcoffset() if value is not None else None
    return int(offset.total_seconds() // 60) if offset is not None else 0


_REPLY_PREFIXES = ("re:", "aw:", "sv:", "vs:", "antw:", "r:")


def _looks_like_reply(subject: str) -> bool:
    return subject.strip().lower().startswith(_REPLY_PREFIXES)
