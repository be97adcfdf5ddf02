"""Reads for the web UI. Every access by id checks ownership in the same query.

Message lists page by keyset on the ``entry_folder_date`` index (folder, received_at desc,
uid desc): a page is one indexed range scan however deep it is, never an OFFSET.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Prefetch
from django.http import Http404

from mailcore.models import Account, Folder, FolderEntry, Message
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
class Page:
    entries: list[FolderEntry]
    next_cursor: Cursor | None


def folder_page(folder: Folder, *, after: Cursor | None, size: int) -> Page:
    """One page of a folder, newest first, with each entry's message (one query)."""
    qs = FolderEntry.objects.filter(folder=folder)
    if after is not None:
        # A row comparison, which PostgreSQL turns into a bound of the range scan on
        # entry_folder_date; the equivalent OR of two conditions is filtered row by row.
        qs = qs.extra(  # noqa: S610 - constant SQL, values passed as parameters
            where=["(mailcore_folderentry.received_at, mailcore_folderentry.uid) < (%s, %s)"],
            params=[after.received_at, after.uid],
        )
    rows = list(
        qs.select_related("message")
        .defer("message__search_vector", "message__search_text", "message__bodystructure", "message__envelope")
        .order_by("-received_at", "-uid")[: size + 1]
    )
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = Cursor(received_at=last.received_at, uid=last.uid)
    return Page(entries=rows, next_cursor=next_cursor)


def message_for_user(account: Account, message_id: int) -> Message:
    try:
        return Message.objects.select_related("blob").get(pk=message_id, account=account)
    except Message.DoesNotExist:
        raise Http404("no such message") from None


def thread_for_user(account: Account, message: Message, *, whole: bool = True) -> list[Message]:
    """Every message of the conversation, in every folder, oldest first, with their folders
    (only ``message`` itself when not ``whole``)."""
    if message.thread_id is None or not whole:
        qs = Message.objects.filter(pk=message.pk, account=account)
    else:
        qs = Message.objects.filter(account=account, thread_id=message.thread_id)
    qs = qs.select_related("blob").prefetch_related(
        Prefetch("entries", queryset=FolderEntry.objects.select_related("folder"))
    ).order_by("-received_at", "-pk")
    messages = list(qs[:MAX_THREAD_SHOWN])
    if message.pk not in {m.pk for m in messages}:
        messages = [*messages[: MAX_THREAD_SHOWN - 1], *thread_for_user(account, message, whole=False)]
    messages.sort(key=lambda m: (m.received_at, m.pk))
    return messages


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
