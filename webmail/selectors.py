"""Reads for the web UI. Every access by id checks ownership in the same query.

Message lists page by keyset on the ``entry_folder_date`` index (folder, received_at desc,
uid desc): a page is one indexed range scan however deep it is, never an OFFSET.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Prefetch, Q
from django.http import Http404

from mailcore.models import Account, Alias, Blob, Folder, FolderEntry, Message
from mailcore.store import SPECIAL_FOLDERS

# A conversation page shows at most this many messages, the newest ones (and the one opened).
MAX_THREAD_SHOWN = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SPECIAL_ORDER = {use: index for index, (_, use) in enumerate(SPECIAL_FOLDERS)}


def folders_for_account(account: Account) -> list[Folder]:
    """Special folders first (Inbox, Sent, Drafts, Trash, Junk, Archive), then the rest by name,
    so children follow their parent."""
    folders = list(Folder.objects.filter(account=account))
    return sorted(folders, key=lambda f: (0, _SPECIAL_ORDER.get(f.special_use, 99), "") if f.special_use
                  else (1, 0, f.name.casefold()))


def folder_for_user(account: Account, folder_id: int) -> Folder:
    try:
        return Folder.objects.get(pk=folder_id, account=account)
    except Folder.DoesNotExist:
        raise Http404("no such folder") from None


def special_folder(account: Account, special_use: str) -> Folder:
    folder = Folder.objects.filter(account=account, special_use=special_use).order_by("pk").first()
    if folder is None:
        raise Http404("that special folder is missing")
    return folder


@dataclass(frozen=True)
class Cursor:
    received_at: datetime
    uid: int

    def encode(self) -> str:
        """URL-safe: microseconds since the epoch, then the UID."""
        return f"{(self.received_at - _EPOCH) // _MICROSECOND}_{self.uid}"

    @classmethod
    def decode(cls, value: str | None) -> Cursor | None:
        stamp, _, uid = (value or "").partition("_")
        if not stamp.lstrip("-").isdigit() or not uid.isdigit() or len(stamp) > 20:
            return None
        try:
            return cls(received_at=_EPOCH + int(stamp) * _MICROSECOND, uid=int(uid))
        except OverflowError:
            return None


@dataclass
class Conversation:
    """One row of the conversation list: the newest entry of a thread in the folder, and what
    the thread's messages there (and in the other folders, outside Trash and Junk) add up to."""

    entry: FolderEntry
    count: int = 1
    unread: bool = False
    flagged: bool = False
    attachments: bool = False
    senders: list[tuple[str, str]] = field(default_factory=list)  # (name, address), oldest first
    has_draft: bool = False
    names: list[str] = field(default_factory=list)  # filled by the view (webmail.conversations)

    @property
    def message(self) -> Message:
        return self.entry.message

    @property
    def key(self) -> str:
        """What a selection posts: ``t<thread id>``, or ``m<message id>`` for a lone message."""
        thread = self.entry.message.thread_id
        return f"t{thread}" if thread is not None else f"m{self.entry.message_id}"


@dataclass
class Page:
    entries: list[FolderEntry]
    next_cursor: Cursor | None
    conversations: list[Conversation] | None = None


# What a list row shows of an entry and its message: nothing else is fetched (the message's
# JSON columns, decoded row by row, cost more than the rest of the page's rows together).
LIST_FIELDS = (
    "folder_id", "uid", "received_at", "message_id",
    *(f"message__{name}" for name in (
        "account_id", "thread_id", "subject", "preview", "from_name", "from_email", "to_text",
        "seen", "flagged", "draft", "has_attachments", "received_at",
    )),
)


def _list_columns(model: type[FolderEntry] | type[Message], wanted: set[str]) -> list[str]:
    """The concrete columns of ``model`` among ``wanted``, in the order ``Model.from_db`` takes."""
    return [f.attname for f in model._meta.concrete_fields if f.attname in wanted or f.primary_key]


_ENTRY_COLUMNS = _list_columns(FolderEntry, {n for n in LIST_FIELDS if "__" not in n})
_MESSAGE_COLUMNS = _list_columns(Message, {n.split("__", 1)[1] for n in LIST_FIELDS if n.startswith("message__")})
_MESSAGE_FIELD = FolderEntry._meta.get_field("message")

# The page query, written once in SQL: compiling its ORM form (the NOT EXISTS subquery above all)
# cost as much Python time as running it and turning its rows into models. A range scan of
# entry_folder_date from the cursor (the row comparison is a bound of the scan; the equivalent OR
# of two conditions is filtered row by row), the message by primary key, and, for conversations,
# only the newest entry of its thread in the folder: no entry of the same thread sorts after it,
# one probe of entry_folder_thread per candidate row (bounded by the row comparison, so it reads
# at most one entry however long the thread), so a page costs what it scans, not what the folder
# or the thread holds.
_PAGE_SELECT = "SELECT {columns} FROM mailcore_folderentry e JOIN mailcore_message m ON m.id = e.message_id WHERE e.folder_id = %(folder)s"
_PAGE_AFTER = " AND (e.received_at, e.uid) < (%(received_at)s, %(uid)s)"
_PAGE_NEWEST_OF_THREAD = """ AND NOT EXISTS (
    SELECT 1 FROM mailcore_folderentry n
    WHERE n.folder_id = e.folder_id AND n.thread_id = e.thread_id AND (n.received_at, n.uid) > (e.received_at, e.uid))"""
_PAGE_ORDER = " ORDER BY e.received_at DESC, e.uid DESC LIMIT %(limit)s"
_PAGE_COLUMNS = ", ".join([f"e.{c}" for c in _ENTRY_COLUMNS] + [f"m.{c}" for c in _MESSAGE_COLUMNS])


def _page_sql(*, after: bool, conversations: bool) -> str:
    return (_PAGE_SELECT.format(columns=_PAGE_COLUMNS) + (_PAGE_AFTER if after else "")
            + (_PAGE_NEWEST_OF_THREAD if conversations else "") + _PAGE_ORDER)


_PAGE_SQL = {(a, c): _page_sql(after=a, conversations=c) for a in (False, True) for c in (False, True)}


def folder_page(folder: Folder, *, after: Cursor | None, size: int, conversations: bool = False) -> Page:
    """One page of a folder, newest first, with each entry's message (one query): the entries
    and messages hold only ``LIST_FIELDS`` (the others are deferred, as ``.only()`` leaves them).

    With ``conversations``, one row per thread: only the newest entry of each thread in the
    folder is listed (a second query sums up the page's threads, see ``conversation_rows``).
    """
    params: dict[str, Any] = {"folder": folder.pk, "limit": size + 1}
    if after is not None:
        params["received_at"], params["uid"] = after.received_at, after.uid
    with connection.cursor() as cursor:
        cursor.execute(_PAGE_SQL[after is not None, conversations], params)
        fetched = cursor.fetchall()
    split = len(_ENTRY_COLUMNS)
    rows = []
    for values in fetched:
        entry = FolderEntry.from_db(connection.alias, _ENTRY_COLUMNS, values[:split])
        _MESSAGE_FIELD.set_cached_value(entry, Message.from_db(connection.alias, _MESSAGE_COLUMNS, values[split:]))
        rows.append(entry)
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = Cursor(received_at=last.received_at, uid=last.uid)
    page = Page(entries=rows, next_cursor=next_cursor)
    if conversations:
        page.conversations = conversation_rows(folder, rows)
    return page


# The messages counted are found through the entries' thread (entry_folder_thread, one range
# per folder counted and thread), then fetched by primary key. Asked through the messages'
# thread with an EXISTS on their entries instead, the planner hashed every entry of the account
# once a page's threads held a few thousand messages (48 ms for 2,000, docs/performance-web.md).
_CONVERSATION_SUMS = """
    SELECT m.thread_id, count(*), bool_or(NOT m.seen), bool_or(m.flagged), bool_or(m.has_attachments),
           bool_or(m.draft), array_agg(m.from_name ORDER BY m.received_at, m.id),
           array_agg(m.from_email ORDER BY m.received_at, m.id)
    FROM mailcore_message m
    WHERE m.id IN (
        SELECT e.message_id FROM mailcore_folderentry e
        WHERE e.thread_id = ANY(%(threads)s) AND e.folder_id = ANY(ARRAY(
            SELECT f.id FROM mailcore_folder f WHERE f.account_id = %(account)s
              AND (f.id = %(folder)s OR (NOT %(in_bin)s AND f.special_use NOT IN (%(trash)s, %(junk)s))))))
    GROUP BY m.thread_id
"""


def conversation_rows(folder: Folder, entries: list[FolderEntry]) -> list[Conversation]:
    """Sum up the threads of a page in one statement: messages counted in this folder and, for
    a folder other than Trash or Junk, in every folder but those (as Gmail counts your replies
    in Sent within an Inbox conversation)."""
    rows = [Conversation(entry=e) for e in entries]
    threads = [e.message.thread_id for e in entries if e.message.thread_id is not None]
    sums: dict[int, tuple[Any, ...]] = {}
    if threads:
        bins = (Folder.SpecialUse.TRASH, Folder.SpecialUse.JUNK)
        with connection.cursor() as cursor:
            cursor.execute(_CONVERSATION_SUMS, {
                "account": folder.account_id, "threads": threads, "folder": folder.pk,
                "in_bin": folder.special_use in bins, "trash": str(bins[0]), "junk": str(bins[1]),
            })
            sums = {row[0]: row[1:] for row in cursor.fetchall()}
    for row in rows:
        message = row.entry.message
        found = sums.get(message.thread_id) if message.thread_id is not None else None
        if found is None:
            row.unread, row.flagged, row.attachments = not message.seen, message.flagged, message.has_attachments
            row.has_draft = message.draft
            row.senders = [(message.from_name, message.from_email)]
            continue
        count, unread, flagged, attachments, draft, names, addresses = found
        row.count, row.unread, row.flagged, row.attachments, row.has_draft = count, unread, flagged, attachments, draft
        row.senders = list(zip(names, addresses, strict=True))
    return rows


# The list rows on either side of a row ("here"): the two ends of the same range scans as the
# page query's, one statement.
_NEIGHBOURS = """
    WITH here AS (
        SELECT received_at, uid FROM mailcore_folderentry
        WHERE folder_id = %(folder)s AND {standing} ORDER BY received_at DESC, uid DESC LIMIT 1
    )
    SELECT (SELECT e.message_id FROM mailcore_folderentry e
            WHERE e.folder_id = %(folder)s AND (e.received_at, e.uid) > (here.received_at, here.uid){newest}
            ORDER BY e.received_at, e.uid LIMIT 1),
           (SELECT e.message_id FROM mailcore_folderentry e
            WHERE e.folder_id = %(folder)s AND (e.received_at, e.uid) < (here.received_at, here.uid){newest}
            ORDER BY e.received_at DESC, e.uid DESC LIMIT 1)
    FROM here
"""
_NEIGHBOURS_SQL = {
    (by_thread, conversations): _NEIGHBOURS.format(
        standing="thread_id = %(thread)s" if by_thread else "message_id = %(message)s",
        newest=_PAGE_NEWEST_OF_THREAD if conversations else "")
    for by_thread in (False, True) for conversations in (False, True)
}


def neighbours(folder: Folder, message: Message, *, conversations: bool) -> tuple[int | None, int | None]:
    """The message ids of the rows just newer and just older than ``message``'s row in the
    folder's list (its conversation's row when ``conversations``): one statement."""
    by_thread = conversations and message.thread_id is not None
    with connection.cursor() as cursor:
        cursor.execute(_NEIGHBOURS_SQL[by_thread, conversations],
                       {"folder": folder.pk, "thread": message.thread_id, "message": message.pk})
        row = cursor.fetchone()
    return (row[0], row[1]) if row is not None else (None, None)


# Large, and read by search only: the pages that show messages leave them in the database.
SEARCH_COLUMNS = ("search_text", "search_vector")


def message_for_user(account: Account, message_id: int) -> Message:
    try:
        return Message.objects.select_related("blob").defer(*SEARCH_COLUMNS).get(pk=message_id, account=account)
    except Message.DoesNotExist:
        raise Http404("no such message") from None


def draft_for_user(account: Account, message_id: int) -> Message:
    """A message of ``account`` that may be resumed in the editor: flagged \\Draft or standing
    in a Drafts folder. Received mail is never a draft, whatever X-Draft-* fields it carries."""
    drafts = Message.objects.filter(
        Q(draft=True) | Q(entries__folder__special_use=Folder.SpecialUse.DRAFTS), pk=message_id, account=account
    ).values("pk")
    try:
        return Message.objects.select_related("blob").get(pk__in=drafts)
    except Message.DoesNotExist:
        raise Http404("no such draft") from None


def thread_for_user(account: Account, message: Message, *, whole: bool = True) -> list[Message]:
    """Every message of the conversation, in every folder, oldest first, with their folders
    (only ``message`` itself when not ``whole``)."""
    if message.thread_id is None or not whole:
        qs = Message.objects.filter(pk=message.pk, account=account)
    else:
        qs = Message.objects.filter(account=account, thread_id=message.thread_id)
    # No blob and no search columns: a conversation of 100 messages with attachments would read
    # every one of them, where the page shows the bodies of a few (``blobs_attached``).
    qs = qs.defer(*SEARCH_COLUMNS).prefetch_related(
        Prefetch("entries", queryset=FolderEntry.objects.select_related("folder"))
    ).order_by("-received_at", "-pk")
    messages = list(qs[:MAX_THREAD_SHOWN])
    if message.pk not in {m.pk for m in messages}:
        messages = [*messages[: MAX_THREAD_SHOWN - 1], *thread_for_user(account, message, whole=False)]
    messages.sort(key=lambda m: (m.received_at, m.pk))
    return messages


def blobs_attached(messages: Sequence[Message], *, known: Sequence[Message] = ()) -> list[Message]:
    """Give each of ``messages`` its blob, reading in one query those that no message of
    ``known`` already holds (messages share a blob when their bytes are the same). Returns the
    messages whose blob is gone: expunged since they were read, with no other copy left."""
    held = {m.blob_id: m.blob for m in known if Message.blob.is_cached(m)}
    missing = {m.blob_id for m in messages if m.blob_id not in held}
    if missing:
        held.update((b.pk, b) for b in Blob.objects.filter(pk__in=missing))
    gone = []
    for m in messages:
        if m.blob_id in held:
            Message.blob.field.set_cached_value(m, held[m.blob_id])
        else:
            gone.append(m)
    return gone


def own_addresses(account: Account) -> set[str]:
    """The account's address and the aliases of its own tenant that deliver to it, lower case
    (one query). Another tenant may point any alias of its domains at this address: that makes
    its mail arrive here, not its address the account's own (shown as "me", replied past)."""
    if account.tenant_id is None:
        return {account.address.lower()}
    aliases = Alias.objects.filter(
        destinations__contains=[account.address], domain__tenant_id=int(account.tenant_id)
    ).values_list("address", flat=True)
    return {account.address.lower(), *(a.lower() for a in aliases)}


def entries_for_selection(
    account: Account, folder: Folder, *, message_ids: Sequence[int], thread_ids: Sequence[int]
) -> list[int]:
    """The UIDs in ``folder`` of the given messages, and of every message of the given threads,
    of ``account`` (anything else silently dropped)."""
    wanted = Q(message_id__in=list(message_ids))
    if thread_ids:
        wanted |= Q(thread_id__in=list(thread_ids))
    return list(
        FolderEntry.objects.filter(wanted, folder=folder, folder__account=account, message__account=account)
        .values_list("uid", flat=True)
    )


def entries_for_messages(account: Account, folder: Folder, message_ids: Sequence[int]) -> list[int]:
    """The UIDs in ``folder`` of the given messages of ``account`` (others silently dropped)."""
    return list(
        FolderEntry.objects.filter(folder=folder, folder__account=account, message_id__in=list(message_ids))
        .values_list("uid", flat=True)
    )


def standings_of(account: Account, message_ids: Sequence[int]) -> dict[int, list[int]]:
    """folder id → uids of the given messages of ``account`` in that folder."""
    out: dict[int, list[int]] = {}
    for folder_id, uid in FolderEntry.objects.filter(
        message_id__in=list(message_ids), folder__account=account
    ).values_list("folder_id", "uid"):
        out.setdefault(folder_id, []).append(uid)
    return out


def message_folder_ids(message: Message) -> list[int]:
    return [e.folder_id for e in message.entries.all()]


def attachment_of(message: Message, part: str) -> dict[str, Any] | None:
    for item in message.attachments or []:
        if isinstance(item, dict) and str(item.get("part")) == part:
            return item
    return None
