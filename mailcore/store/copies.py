"""Storing message copies: the shared core of deliver and append.

One transaction writes the blob once, the Message rows (one per account), their FolderEntry
rows with UIDs and MODSEQs allocated by ``UPDATE folder ... RETURNING``, the quota counters,
and the search vectors. Row locks are always taken in id order (accounts, then folders) so
that concurrent deliveries to overlapping recipients cannot deadlock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.utils import timezone

from mailcore.events import mail_changed, publish_on_commit
from mailcore.mime import ParsedMessage, parse_message
from mailcore.models import FolderEntry, Message

from .blobs import blob_acquire
from .threads import threads_for_accounts

MAX_INDEXED_TEXT = 256 * 1024
MAX_KEY_TEXT = 500  # values that sit in btree indexes (message-id, thread subject)

SEARCH_VECTOR_SQL = """
    setweight(to_tsvector('simple', coalesce(%s, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(%s, '')), 'B') ||
    setweight(to_tsvector('simple', coalesce(%s, '')), 'C') ||
    setweight(to_tsvector('simple', coalesce(%s, '')), 'D')
"""


@dataclass
class CopyTarget:
    account_id: int
    folder_id: int
    flags: Sequence[str] = ()
    received_at: datetime | None = None


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


def _allocate_message_ids(n: int) -> list[int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence('mailcore_message', 'id')) FROM generate_series(1, %s)", [n]
        )
        return [int(row[0]) for row in cur.fetchall()]


def reserve_quota(amounts: dict[int, int], *, enforce: bool = True) -> tuple[list[int], list[int]]:
    """Add each account's amount to its usage where it fits; returns (accepted, over quota).

    Locks the account rows in id order first, so concurrent writers cannot deadlock here.
    """
    ids = sorted(amounts)
    if not ids:
        return [], []
    sizes = [amounts[i] for i in ids]
    condition = "AND (a.quota_bytes = 0 OR a.used_bytes + d.n <= a.quota_bytes)" if enforce else ""
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM mailcore_account WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids])
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
            WHERE id = %s
            RETURNING uid_next - %s, highest_modseq
            """,
            [count, count, unseen, size, folder_id, count],
        )
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"folder {folder_id} does not exist")
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
        raise LookupError(f"folder {folder_id} does not exist")
    return int(row[0])


def set_search_vectors(message_ids: Sequence[int], parsed: ParsedMessage) -> None:
    if not message_ids:
        return
    names = " ".join(a.name for a in [*parsed.from_, *parsed.to, *parsed.cc] if a.name)
    emails = " ".join(a.email for a in [*parsed.from_, *parsed.to, *parsed.cc, *parsed.bcc] if a.email)
    attachment_names = " ".join(str(a.get("filename") or "") for a in parsed.attachments)
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE mailcore_message SET search_vector = v.vec FROM (SELECT {SEARCH_VECTOR_SQL} AS vec) v "  # noqa: S608
            "WHERE id = ANY(%s)",
            [parsed.subject, f"{names} {emails}", attachment_names, parsed.text[:MAX_INDEXED_TEXT], list(message_ids)],
        )


def store_copies(
    *,
    raw: bytes,
    targets: Sequence[CopyTarget],
    parsed: ParsedMessage | None = None,
    check_quota: bool = True,
) -> StoreOutcome:
    """Write one blob and a Message + FolderEntry per target. Call inside ``transaction.atomic``."""
    outcome = StoreOutcome()
    if not targets:
        return outcome
    parsed = parsed or parse_message(raw)
    size = len(raw)
    amounts: dict[int, int] = {}
    for t in targets:
        amounts[t.account_id] = amounts.get(t.account_id, 0) + size
    accepted_ids, outcome.over_quota = reserve_quota(amounts, enforce=check_quota)
    accepted = set(accepted_ids)
    chosen = [t for t in targets if t.account_id in accepted]
    if not chosen:
        return outcome

    blob_id = blob_acquire(raw=raw, refs=len(chosen), sha256=hashlib.sha256(raw).hexdigest())
    outcome.blob_id = blob_id
    message_ids = _allocate_message_ids(len(chosen))
    message_id_header = parsed.message_id[:MAX_KEY_TEXT]
    thread_subject = parsed.thread_subject[:MAX_KEY_TEXT]
    threads = threads_for_accounts(
        account_ids=sorted(accepted),
        message_id=message_id_header,
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        thread_subject=thread_subject,
        is_reply=bool(parsed.in_reply_to or parsed.references) or _looks_like_reply(parsed.subject),
    )
    now = timezone.now()
    first_from = parsed.from_[0] if parsed.from_ else None
    common = {
        "blob_id": blob_id,
        "size": size,
        "subject": parsed.subject,
        "thread_subject": thread_subject,
        "from_name": first_from.name if first_from else "",
        "from_email": first_from.email if first_from else "",
        "to_text": address_text(parsed.to),
        "cc_text": address_text(parsed.cc),
        "addresses": _addresses_json(parsed),
        "date": parsed.date,
        "message_id": message_id_header,
        "in_reply_to": [i[:MAX_KEY_TEXT] for i in parsed.in_reply_to],
        "references": [i[:MAX_KEY_TEXT] for i in parsed.references],
        "header_size": parsed.header_size,
        "envelope": parsed.envelope,
        "bodystructure": parsed.bodystructure,
        "attachments": parsed.attachments,
        "has_attachments": parsed.has_attachments,
        "preview": parsed.preview,
        "html_part": parsed.html_part or "",
        "text_part": parsed.text_part or "",
        "search_text": parsed.text[:MAX_INDEXED_TEXT],
    }
    messages = []
    thread_of_new: dict[int, int] = {}
    for target, pk in zip(chosen, message_ids, strict=True):
        flags, keywords = flag_fields(target.flags)
        thread_id = threads.get(target.account_id) or thread_of_new.setdefault(target.account_id, pk)
        messages.append(
            Message(
                id=pk,
                account_id=target.account_id,
                received_at=target.received_at or now,
                keywords=keywords,
                thread_id=thread_id,
                **flags,
                **common,
            )
        )
    Message.objects.bulk_create(messages)

    by_folder: dict[int, list[Message]] = {}
    for target, message in zip(chosen, messages, strict=True):
        by_folder.setdefault(target.folder_id, []).append(message)
    entries = []
    for folder_id in sorted(by_folder):
        batch = by_folder[folder_id]
        unseen = sum(1 for m in batch if not m.seen)
        first_uid, modseq = allocate_uids(folder_id, len(batch), unseen=unseen, size=size * len(batch))
        for offset, message in enumerate(batch):
            entries.append(
                FolderEntry(
                    folder_id=folder_id,
                    uid=first_uid + offset,
                    message_id=message.pk,
                    modseq=modseq,
                    recent=True,
                    received_at=message.received_at,
                )
            )
            outcome.stored.append(
                StoredCopy(
                    account_id=message.account_id,
                    folder_id=folder_id,
                    message_id=message.pk,
                    uid=first_uid + offset,
                    modseq=modseq,
                )
            )
        account_id = batch[0].account_id
        publish_on_commit(account_id, mail_changed(account_id, folder_id, "exists", modseq))
    FolderEntry.objects.bulk_create(entries)
    set_search_vectors(message_ids, parsed)
    return outcome


_REPLY_PREFIXES = ("re:", "aw:", "sv:", "vs:", "antw:", "r:")


def _looks_like_reply(subject: str) -> bool:
    return subject.strip().lower().startswith(_REPLY_PREFIXES)
