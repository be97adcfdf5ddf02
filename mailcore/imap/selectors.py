"""Reads for the IMAP session: folders, snapshots, deltas, FETCH rows and SEARCH, each scoped to
the logged-in account in the same query (STYLE.md: selectors check ownership)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce

from mailcore.models import Account, Folder, FolderChange, FolderEntry, Subscription
from mailcore.store.sql import fetch_all, fetch_pipelined

from .parser import SearchKey, SequenceSet, search_uses

FETCH_BATCH = 200
_FLAG_COLUMNS = ("seen", "answered", "flagged", "deleted", "draft")
_FLAG_NAMES = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


@functools.cache
def _folder_sql(key: str) -> tuple[list[str], str]:
    fields = Folder._meta.concrete_fields
    columns = ", ".join(f'"{f.column}"' for f in fields)
    sql = f"SELECT {columns} FROM mailcore_folder WHERE account_id = %s AND {key} = %s ORDER BY id LIMIT 1"  # noqa: S608
    return [f.attname for f in fields], sql


def _folder_row(account: Account, key: str, value: object) -> Folder | None:
    """One folder of the account as a model instance, through a prepared statement: APPEND and
    SELECT look a folder up on every command, and the ORM's query building is most of that cost."""
    names, sql = _folder_sql(key)
    rows = fetch_all(sql, [account.pk, value])
    return Folder.from_db(connection.alias, names, rows[0]) if rows else None


def folder_get(account: Account, name: str) -> Folder | None:
    return _folder_row(account, "name", name)


def folder_get_by_id(account: Account, folder_id: int) -> Folder | None:
    return _folder_row(account, "id", folder_id)


def folders_list(account: Account) -> list[Folder]:
    return list(Folder.objects.filter(account=account).order_by("name"))


def folder_attributes(folder: Folder) -> list[str]:
    """The LIST attributes of one folder: children, and its special use."""
    children = Folder.objects.filter(account_id=folder.account_id,
                                     name__startswith=folder.name + Folder.DELIMITER).exists()
    attributes = ["\\Noselect"] if folder.noselect else []
    attributes.append("\\HasChildren" if children else "\\HasNoChildren")
    if folder.special_use and folder.special_use != Folder.SpecialUse.INBOX:
        attributes.append(folder.special_use)
    return attributes


def subscriptions(account: Account) -> set[str]:
    return set(Subscription.objects.filter(account=account).values_list("name", flat=True))


def account_usage(account: Account) -> tuple[int, int]:
    row = Account.objects.filter(pk=account.pk).values_list("used_bytes", "quota_bytes").first()
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


def flags_of(row: dict[str, Any], prefix: str = "message__") -> list[str]:
    names = [n for n, col in zip(_FLAG_NAMES, _FLAG_COLUMNS, strict=True) if row[prefix + col]]
    return names + list(row[prefix + "keywords"] or [])


_FLAG_VALUES = tuple(f"message__{c}" for c in _FLAG_COLUMNS) + ("message__keywords",)


@dataclass
class Snapshot:
    uidvalidity: int
    uid_next: int
    highest_modseq: int
    uids: list[int]
    recent: list[int]
    first_unseen_uid: int | None
    keywords: list[str]


# SELECT's view of a folder in one round trip and one snapshot: the folder row (kind 0), its
# entries below UIDNEXT and HIGHESTMODSEQ (1), the first unseen UID (2) and the keyword sets in
# use (3, at most 1000 distinct ones).
_SNAPSHOT_SQL = """
WITH f AS (SELECT uidvalidity, uid_next, highest_modseq FROM mailcore_folder WHERE id = %s)
SELECT 0, f.uidvalidity, f.uid_next, f.highest_modseq, NULL::boolean, NULL::jsonb FROM f
UNION ALL
SELECT 1, e.uid, NULL::bigint, NULL::bigint, e.recent, NULL::jsonb
FROM mailcore_folderentry e CROSS JOIN f
WHERE e.folder_id = %s AND e.modseq <= f.highest_modseq AND e.uid < f.uid_next
UNION ALL
SELECT 2, min(e.uid), NULL::bigint, NULL::bigint, NULL::boolean, NULL::jsonb
FROM mailcore_folderentry e JOIN mailcore_message m ON m.id = e.message_id CROSS JOIN f
WHERE e.folder_id = %s AND NOT m.seen AND e.uid < f.uid_next
UNION ALL
(SELECT DISTINCT 3, NULL::bigint, NULL::bigint, NULL::bigint, NULL::boolean, m.keywords
 FROM mailcore_message m JOIN mailcore_folderentry e ON e.message_id = m.id
 WHERE e.folder_id = %s AND m.keywords <> '[]'::jsonb LIMIT 1000)
"""


# The same, with the folder found by account and name, for SELECT's one round trip.
_SNAPSHOT_BY_NAME_SQL = """
WITH f AS (SELECT id, uidvalidity, uid_next, highest_modseq FROM mailcore_folder
           WHERE account_id = %s AND name = %s ORDER BY id LIMIT 1)
SELECT 0, f.uidvalidity, f.uid_next, f.highest_modseq, NULL::boolean, NULL::jsonb FROM f
UNION ALL
SELECT 1, e.uid, NULL::bigint, NULL::bigint, e.recent, NULL::jsonb
FROM mailcore_folderentry e CROSS JOIN f
WHERE e.folder_id = f.id AND e.modseq <= f.highest_modseq AND e.uid < f.uid_next
UNION ALL
SELECT 2, min(e.uid), NULL::bigint, NULL::bigint, NULL::boolean, NULL::jsonb
FROM mailcore_folderentry e JOIN mailcore_message m ON m.id = e.message_id CROSS JOIN f
WHERE e.folder_id = f.id AND NOT m.seen AND e.uid < f.uid_next
UNION ALL
(SELECT DISTINCT 3, NULL::bigint, NULL::bigint, NULL::bigint, NULL::boolean, m.keywords
 FROM mailcore_message m JOIN mailcore_folderentry e ON e.message_id = m.id
 WHERE e.folder_id = (SELECT id FROM f) AND m.keywords <> '[]'::jsonb LIMIT 1000)
"""


def folder_select(account: Account, name: str) -> tuple[Folder | None, Snapshot | None]:
    """SELECT's folder row and :func:`folder_snapshot` in one round trip (a pipeline of two
    statements; as before, each with its own snapshot). (None, None) when there is no such
    folder; the snapshot of a \\Noselect placeholder is there but of no use."""
    names, folder_sql = _folder_sql("name")
    folder_rows, snapshot_rows = fetch_pipelined([(folder_sql, [account.pk, name]),
                                                  (_SNAPSHOT_BY_NAME_SQL, [account.pk, name])])
    if not folder_rows:
        return None, None
    folder = Folder.from_db(connection.alias, names, folder_rows[0])
    try:
        return folder, _snapshot_of(snapshot_rows)
    except Folder.DoesNotExist:
        return None, None  # deleted between the two statements


def folder_snapshot(folder_id: int) -> Snapshot:
    return _snapshot_of(fetch_all(_SNAPSHOT_SQL, [folder_id] * 4))


def _snapshot_of(rows: list[tuple[Any, ...]]) -> Snapshot:
    head = [r for r in rows if r[0] == 0]
    if not head:
        raise Folder.DoesNotExist("Folder matching query does not exist.")
    _, uidvalidity, uid_next, highest_modseq, _, _ = head[0]
    entries = sorted((int(r[1]), bool(r[4])) for r in rows if r[0] == 1)
    unseen = next((int(r[1]) for r in rows if r[0] == 2 and r[1] is not None), None)
    keywords: set[str] = set()
    for r in rows:
        if r[0] == 3:
            keywords.update(_json_list(r[5]))
    return Snapshot(int(uidvalidity), int(uid_next), int(highest_modseq), [u for u, _ in entries],
                    [u for u, r in entries if r], unseen, sorted(keywords))


@dataclass
class Delta:
    highest_modseq: int
    uid_next: int
    expunged: list[int] = field(default_factory=list)
    new: list[tuple[int, bool]] = field(default_factory=list)  # (uid, recent)
    changed: list[tuple[int, list[str], int]] = field(default_factory=list)  # (uid, flags, modseq)


# One round trip for a whole delta: the folder's counters (kind 0), the expunges the session
# has not seen (kind 1) and the entries changed or added since (kind 2), all bounded by the
# highest_modseq read in the same snapshot.
_DELTA_SQL = """
WITH f AS (SELECT highest_modseq, uid_next FROM mailcore_folder WHERE id = %s)
SELECT 0, f.highest_modseq, f.uid_next, NULL::boolean, NULL::boolean, NULL::boolean, NULL::boolean,
       NULL::boolean, NULL::boolean, NULL::jsonb
FROM f
UNION ALL
SELECT DISTINCT 1, c.uid, NULL::bigint, NULL::boolean, NULL::boolean, NULL::boolean, NULL::boolean,
       NULL::boolean, NULL::boolean, NULL::jsonb
FROM mailcore_folderchange c CROSS JOIN f
WHERE c.folder_id = %s AND c.kind = 'expunge' AND c.modseq > %s AND c.modseq <= f.highest_modseq AND c.uid < %s
UNION ALL
SELECT 2, e.uid, e.modseq, e.recent, m.seen, m.answered, m.flagged, m.deleted, m.draft, m.keywords
FROM mailcore_folderentry e JOIN mailcore_message m ON m.id = e.message_id CROSS JOIN f
WHERE e.folder_id = %s AND e.modseq > %s AND e.modseq <= f.highest_modseq AND f.highest_modseq > %s
"""


def folder_delta(folder_id: int, since_modseq: int, known_uid_next: int) -> Delta | None:
    """What changed in a folder since a session last looked; None when the folder is gone.

    Modseqs are allocated under the folder row lock and committed in order, so everything at
    or below the highest_modseq read first is already visible (read committed); one statement
    reads the folder row and the changes in one snapshot.
    """
    rows = fetch_all(_DELTA_SQL, [folder_id, folder_id, since_modseq, known_uid_next, folder_id, since_modseq,
                                  since_modseq])
    head = [r for r in rows if r[0] == 0]
    if not head:
        return None
    highest = int(head[0][1])
    delta = Delta(highest_modseq=highest, uid_next=known_uid_next)
    if highest <= since_modseq:
        return delta
    delta.expunged = sorted(int(r[1]) for r in rows if r[0] == 1)
    for r in sorted((r for r in rows if r[0] == 2), key=lambda r: r[1]):
        _, uid, modseq, recent, *flags, keywords = r
        if uid >= known_uid_next:
            delta.new.append((uid, recent))
        else:
            names = [n for n, on in zip(_FLAG_NAMES, flags, strict=True) if on]
            delta.changed.append((uid, names + _json_list(keywords), modseq))
    if delta.new:
        delta.uid_next = max(known_uid_next, delta.new[-1][0] + 1)
    return delta


def _json_list(value: object) -> list[str]:
    # Django loads jsonb as text on its connections (JSONField decodes it); raw cursors see that.
    loaded: Any = json.loads(value) if isinstance(value, str) else value
    return list(loaded or [])


def expunged_since(folder_id: int, since: int, upto: int) -> list[int]:
    return sorted(set(FolderChange.objects.filter(
        folder_id=folder_id, kind=FolderChange.Kind.EXPUNGE, modseq__gt=since, modseq__lte=upto)
        .values_list("uid", flat=True)))


def changed_since(folder_id: int, since: int, upto: int) -> list[tuple[int, list[str], int]]:
    rows = (FolderEntry.objects.filter(folder_id=folder_id, modseq__gt=since, modseq__lte=upto)
            .order_by("uid").values("uid", "modseq", *_FLAG_VALUES))
    return [(r["uid"], flags_of(r), r["modseq"]) for r in rows]


@dataclass
class FolderStatus:
    messages: int
    recent: int
    uid_next: int
    uidvalidity: int
    unseen: int
    highest_modseq: int
    size: int
    deleted: int
    deleted_size: int


def folder_status(folder: Folder) -> FolderStatus:
    agg = FolderEntry.objects.filter(folder=folder).aggregate(
        messages=Count("uid"), recent=Count("uid", filter=Q(recent=True)),
        unseen=Count("uid", filter=Q(message__seen=False)), size=Sum("message__size"),
        deleted=Count("uid", filter=Q(message__deleted=True)),
        deleted_size=Sum("message__size", filter=Q(message__deleted=True)))
    return FolderStatus(agg["messages"], agg["recent"], folder.uid_next, folder.uidvalidity, agg["unseen"],
                        folder.highest_modseq, int(agg["size"] or 0), agg["deleted"], int(agg["deleted_size"] or 0))


def uids_in(folder_id: int, uids: Sequence[int]) -> list[int]:
    return list(FolderEntry.objects.filter(folder_id=folder_id, uid__in=list(uids)).values_list("uid", flat=True))


_FETCH_KEYS = ("uid", "modseq", "received_at", "message__received_tz", "message_id", "message__size",
               "message__header_size", "message__blob_id", *_FLAG_VALUES)
_FETCH_COLUMNS = ("e.uid, e.modseq, e.received_at, m.received_tz, e.message_id, m.size, m.header_size, m.blob_id, "
                  "m.seen, m.answered, m.flagged, m.deleted, m.draft, m.keywords")


def _fetch_sql(structure: bool, envelope: bool, body: bool) -> str:
    columns = _FETCH_COLUMNS + (", m.bodystructure" if structure else "") + (", m.envelope" if envelope else "") + (
        ", b.data" if body else "")
    blob = " LEFT JOIN mailcore_blob b ON b.id = m.blob_id" if body else ""
    return (f"SELECT {columns} FROM mailcore_folderentry e JOIN mailcore_message m ON m.id = e.message_id{blob} "  # noqa: S608
            "WHERE e.folder_id = %s AND e.uid = ANY(%s::bigint[]) ORDER BY e.uid")


_FETCH_SQL = {(s, e, b): _fetch_sql(s, e, b) for s in (False, True) for e in (False, True) for b in (False, True)}


def _json(value: object) -> Any:
    # Django loads jsonb as text on its connections (JSONField decodes it); raw cursors see that.
    return json.loads(value) if isinstance(value, str) else value


def fetch_rows(folder_id: int, uids: Sequence[int], *, structure: bool, envelope: bool,
               body: bool) -> list[dict[str, Any]]:
    """Rows for FETCH, in UID order; with ``body`` each row has "raw" (the verbatim blob, in the
    same statement: for a few rows only, as every row's bytes are in memory at once).

    A prepared statement and plain tuples: FETCH runs on every loop of a client, and the ORM's
    query compilation and row building cost more CPU than the query itself."""
    keys = _FETCH_KEYS + (("message__bodystructure",) if structure else ()) + (
        ("message__envelope",) if envelope else ()) + (("raw",) if body else ())
    rows = [dict(zip(keys, r, strict=True)) for r in fetch_all(_FETCH_SQL[structure, envelope, body],
                                                               [folder_id, list(uids)])]
    for r in rows:
        r["message__keywords"] = _json(r["message__keywords"]) or []
        if structure:
            r["message__bodystructure"] = _json(r["message__bodystructure"])
        if envelope:
            r["message__envelope"] = _json(r["message__envelope"])
    if body:
        for r in rows:
            r["raw"] = bytes(r["raw"] or b"")
    for r in rows:
        r["flags"] = flags_of(r)
    return rows


def blobs_load(rows: Sequence[dict[str, Any]]) -> None:
    """Put the verbatim message bytes into each row as "raw"."""
    blobs = {int(pk): bytes(data) for pk, data in fetch_all(
        "SELECT id, data FROM mailcore_blob WHERE id = ANY(%s::bigint[])",
        [sorted({r["message__blob_id"] for r in rows})])}
    for r in rows:
        r["raw"] = blobs.get(r["message__blob_id"], b"")


# --- SEARCH ---------------------------------------------------------------------------------

def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _header_regex(name: str | None, needle: str) -> str:
    escaped = "".join(c if c.isalnum() else "\\" + c for c in needle)
    field_name = "".join(c if c.isalnum() else "\\" + c for c in name) if name else "[^:\\s]+"
    return f"(^|\\n){field_name}[ \\t]*:([^\\n]|\\n[ \\t])*{escaped}"


_HEADER_SQL = ("SELECT m.id FROM mailcore_message m JOIN mailcore_blob b ON b.id = m.blob_id "
               "WHERE m.id IN (SELECT message_id FROM mailcore_folderentry WHERE folder_id = %s) "
               "AND encode(substring(b.data from 1 for greatest(m.header_size, 1)), 'escape') ~* %s")
# Messages stored before the MIME parser landed have no ENVELOPE (an empty list).
_NO_ENVELOPE_SQL = " AND COALESCE(jsonb_array_length(CASE WHEN jsonb_typeof(m.envelope) = 'array' " \
                   "THEN m.envelope END), 0) < 10"


def _header_q(folder_id: int, name: str | None, needle: str, *, without_envelope: bool = False) -> Q:
    """Messages of the folder whose raw header block matches (reads every message's blob)."""
    sql = _HEADER_SQL + (_NO_ENVELOPE_SQL if without_envelope else "")
    # Both values are bound parameters; the SQL text is constant.
    return Q(message_id__in=RawSQL(sql, [folder_id, _header_regex(name, needle)]))  # noqa: S611


class SearchCompiler:
    """SEARCH keys to a Django Q over FolderEntry: the database does the work (indexes, ILIKE)."""

    def __init__(self, folder_id: int, seq_ranges: Callable[[SequenceSet], list[tuple[int, int]]],
                 uid_ranges: Callable[[SequenceSet], list[tuple[int, int]]], recent: Iterable[int]) -> None:
        self.folder_id = folder_id
        self.seq_ranges = seq_ranges
        self.uid_ranges = uid_ranges
        self.recent = list(recent)

    def compile(self, key: SearchKey) -> Q:  # noqa: C901 - one branch per RFC key
        op, args = key.op, key.args
        m = "message__"
        if op == "AND":
            q = Q()
            for a in args:
                q &= self.compile(a)  # type: ignore[arg-type]
            return q
        if op == "OR":
            return self.compile(args[0]) | self.compile(args[1])  # type: ignore[arg-type]
        if op == "NOT":
            return ~self.compile(args[0])  # type: ignore[arg-type]
        if op == "ALL":
            return Q()
        if op in ("SEQ", "UIDSET"):
            ranges = (self.seq_ranges if op == "SEQ" else self.uid_ranges)(args[0])  # type: ignore[arg-type]
            q = Q(pk__in=[])
            for lo, hi in ranges:
                q |= Q(uid__gte=lo, uid__lte=hi)
            return q
        flag_ops = {"ANSWERED": ("answered", True), "DELETED": ("deleted", True), "DRAFT": ("draft", True),
                    "FLAGGED": ("flagged", True), "SEEN": ("seen", True), "UNANSWERED": ("answered", False),
                    "UNDELETED": ("deleted", False), "UNDRAFT": ("draft", False),
                    "UNFLAGGED": ("flagged", False), "UNSEEN": ("seen", False)}
        if op in flag_ops:
            column, value = flag_ops[op]
            return Q(**{m + column: value})
        if op == "RECENT":
            return Q(uid__in=self.recent)
        if op == "OLD":
            return ~Q(uid__in=self.recent)
        if op == "NEW":
            return Q(uid__in=self.recent, message__seen=False)
        if op in ("KEYWORD", "UNKEYWORD"):
            word = str(args[0])
            q = Q(**{m + "keywords__contains": [word]}) if word != "\\Recent" else Q(uid__in=self.recent)
            if word.startswith("\\") and word != "\\Recent":
                column = word[1:].lower()
                q = Q(**{m + column: True}) if column in _FLAG_COLUMNS else Q(pk__in=[])
            return q if op == "KEYWORD" else ~q
        if op in ("LARGER", "SMALLER"):
            return Q(**{m + ("size__gt" if op == "LARGER" else "size__lt"): args[0]})
        if op in ("BEFORE", "ON", "SINCE"):
            return self._date_q("received_at", op, args[0])  # type: ignore[arg-type]
        if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            return self._date_q("sent", op[4:], args[0])  # type: ignore[arg-type]
        if op in ("OLDER", "YOUNGER"):
            seconds = args[0]
            assert isinstance(seconds, int)
            limit = datetime.now(UTC) - timedelta(seconds=seconds)
            return Q(received_at__lte=limit) if op == "OLDER" else Q(received_at__gte=limit)
        if op == "MODSEQ":
            return Q(modseq__gte=args[0])
        needle = str(args[0])
        if op == "SUBJECT":
            # The decoded subject, or the raw (RFC 2047 encoded, unfolded) Subject header value,
            # which the ENVELOPE stored at delivery holds: no blob is read. Only messages
            # without an ENVELOPE (stored before the MIME parser) have their raw header searched.
            return (Q(**{m + "subject__icontains": needle}) | Q(raw_subject__icontains=needle)
                    | _header_q(self.folder_id, "subject", needle, without_envelope=True))
        if op in ("FROM", "TO", "CC", "BCC"):
            key_name = op.lower()
            return (Q(**{f"addr_{key_name}__icontains": needle})
                    | _header_q(self.folder_id, key_name, needle))
        if op == "BODY":
            return Q(**{m + "search_text__icontains": needle})
        if op == "TEXT":
            return (Q(**{m + "search_text__icontains": needle}) | Q(**{m + "subject__icontains": needle})
                    | _header_q(self.folder_id, None, needle))
        if op == "HEADER":
            return _header_q(self.folder_id, str(args[0]), str(args[1]))
        raise ValueError(f"unsupported search key {op}")

    def _date_q(self, column: str, op: str, day: date) -> Q:
        start, end = _day_start(day), _day_start(day + timedelta(days=1))
        if op == "BEFORE":
            return Q(**{f"{column}__lt": start})
        if op == "ON":
            return Q(**{f"{column}__gte": start, f"{column}__lt": end})
        return Q(**{f"{column}__gte": start})


def _annotated(folder_id: int, key: SearchKey) -> QuerySet[FolderEntry]:
    qs = FolderEntry.objects.filter(folder_id=folder_id)
    text = repr(key)
    if "'SUBJECT'" in text:
        # Never NULL (a message without Subject has none): NOT SUBJECT must match it.
        qs = qs.annotate(raw_subject=Coalesce(KeyTextTransform(1, "message__envelope"), Value(""),
                                              output_field=TextField()))
    if "SENT" in text:
        qs = qs.annotate(sent=Coalesce("message__date", "message__received_at"))
    for name in ("from", "to", "cc", "bcc"):
        if f"'{name.upper()}'" in text:
            qs = qs.annotate(**{f"addr_{name}": KeyTextTransform(name, "message__addresses")})
    return qs


# Keys whose SQL depends on the session (sequence numbers, "$", \Recent) or on the clock.
_STATEFUL_SEARCH_OPS = ("SEQ", "UIDSET", "RECENT", "OLD", "NEW", "OLDER", "YOUNGER")


def _search_sql(folder_id: int, key: SearchKey, compiler: SearchCompiler) -> tuple[str, tuple[Any, ...]]:
    qs = _annotated(folder_id, key).filter(compiler.compile(key))
    sql, params = qs.order_by("uid").values_list("uid", "modseq").query.sql_with_params()
    return sql, tuple(params)


@functools.lru_cache(maxsize=512)
def _cached_search_sql(folder_id: int, key: SearchKey) -> tuple[str, tuple[Any, ...]]:
    return _search_sql(folder_id, key, SearchCompiler(folder_id, _no_ranges, _no_ranges, ()))


def _no_ranges(seqset: SequenceSet) -> list[tuple[int, int]]:
    raise AssertionError("a search with sequence sets is never cached")


def search_uids(folder_id: int, key: SearchKey, compiler: SearchCompiler, *, max_uid: int) -> list[tuple[int, int]]:
    """(uid, modseq) of matching entries the session knows (uid below its UIDNEXT), in UID order.

    The SQL of a search that does not depend on the session is compiled once per process and
    folder (the ORM's compilation costs more CPU than the query), and it runs as a prepared
    statement: the SQL text depends only on the search (the values are parameters), so a client
    repeating a search (SUBJECT x UNSEEN on every poll) reuses the plan too.
    """
    stateful = "\\Recent" in repr(key) or any(search_uses(key, op) for op in _STATEFUL_SEARCH_OPS)
    try:
        if stateful:
            sql, params = _search_sql(folder_id, key, compiler)
        else:
            try:
                sql, params = _cached_search_sql(folder_id, key)
            except TypeError:  # an argument that cannot be hashed: compile it every time
                sql, params = _search_sql(folder_id, key, compiler)
    except EmptyResultSet:
        return []
    return [(int(uid), int(modseq)) for uid, modseq in fetch_all(sql, params) if uid < max_uid]


def ordering_rows(folder_id: int, uids: Sequence[int]) -> list[dict[str, Any]]:
    """What SORT and THREAD need of each message."""
    rows = FolderEntry.objects.filter(folder_id=folder_id, uid__in=list(uids)).values(
        "uid", "received_at", "message__size", "message__envelope", "message__date", "message__message_id",
        "message__in_reply_to", "message__references")
    return [{"uid": r["uid"], "received_at": r["received_at"], "size": r["message__size"],
             "envelope": r["message__envelope"], "sent": r["message__date"],
             "message_id": r["message__message_id"], "in_reply_to": r["message__in_reply_to"],
             "references": r["message__references"]} for r in rows]


def mailbox_exists_any(account: Account) -> bool:
    return Folder.objects.filter(account=account).exists()


__all__ = ["Delta", "FolderStatus", "SearchCompiler", "Snapshot", "fetch_rows", "folder_delta", "folder_get",
           "folder_snapshot", "folder_status", "folders_list", "search_uids"]
