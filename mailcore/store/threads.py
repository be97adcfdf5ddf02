"""Conversation ids, computed once when a message is stored.

A message joins the thread of any earlier message of the same account that it references
(In-Reply-To / References), or of one that references it (a reply that arrived first). Failing
that, a reply ("Re: ...") joins the newest recent thread with the same normalised subject, but
only through a message that shares a participant with it (Gmail's rule): its sender must be in
the From/To/Cc of that message, or, for the account's own message, one of its recipients. The
account's own address never counts as the shared one (it is in every message it receives), so
a stranger who only knows a subject ("Re: Invoice") cannot put a message into a conversation.
Otherwise it starts a thread of its own, whose id is its own message id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

SUBJECT_FALLBACK_WINDOW = timedelta(days=60)

# The three lookups, strongest first; each yields (account, thread, strength, order key).
_BY_REFERENCED_ID = """
    SELECT account_id, thread_id, 1 AS strength, id::float8 AS key FROM mailcore_message
    WHERE account_id = ANY(%s) AND message_id = ANY(%s) AND thread_id IS NOT NULL
"""
# Through the GIN indexes on the reference lists whatever the account's size: the planner
# would otherwise walk the account's whole mailbox when its statistics are stale.
_BY_REFERENCING = """
    SELECT account_id, thread_id, 2 AS strength, id::float8 AS key FROM (
        SELECT account_id, thread_id, id FROM mailcore_message
        WHERE "references" @> %s::jsonb OR in_reply_to @> %s::jsonb OFFSET 0
    ) referencing
    WHERE account_id = ANY(%s) AND thread_id IS NOT NULL
"""
# The people of the new message to look for: its senders, or its recipients when the account
# itself sent it; found in the candidate's From/To/Cc, never as the account's own address.
_BY_SUBJECT = """
    SELECT m.account_id, m.thread_id, 3 AS strength, -extract(epoch FROM m.received_at)::float8 AS key
    FROM mailcore_message m JOIN mailcore_account a ON a.id = m.account_id
    WHERE m.account_id = ANY(%s) AND m.thread_subject = %s AND m.received_at >= %s AND m.thread_id IS NOT NULL
      AND EXISTS (
        SELECT 1 FROM jsonb_array_elements(
            coalesce(m.addresses->'from', '[]') || coalesce(m.addresses->'to', '[]') ||
            coalesce(m.addresses->'cc', '[]')
        ) AS p
        WHERE jsonb_typeof(p) = 'array' AND p->>1 <> '' AND lower(p->>1) <> lower(a.address)
          AND lower(p->>1) = ANY(CASE WHEN lower(a.address) = ANY(%s::text[]) THEN %s::text[] ELSE %s::text[] END)
      )
"""


def thread_lookup(
    *,
    account_ids: Sequence[int],
    message_id: str,
    in_reply_to: Sequence[str],
    references: Sequence[str],
    thread_subject: str,
    is_reply: bool,
    senders: Sequence[str],
    recipients: Sequence[str],
) -> tuple[str, list[Any]] | None:
    """The query mapping account → existing thread id, and its parameters; None when none applies.

    One statement: the lookups that apply, joined, and the strongest hit kept per account. It
    yields (account_id, thread_id) rows and may run alone or inside a larger statement.
    ``senders`` (From) and ``recipients`` (To, Cc) are addresses of the new message; without
    them the subject fallback does not apply.
    """
    accounts = list(account_ids)
    ids = [i for i in [*references, *in_reply_to] if i]
    parts: list[str] = []
    params: list[Any] = []
    if ids:
        parts.append(_BY_REFERENCED_ID)
        params += [accounts, ids]
    if message_id:
        parts.append(_BY_REFERENCING)
        params += [json.dumps([message_id]), json.dumps([message_id]), accounts]
    people = sorted({a.lower() for a in senders if a})
    to_people = sorted({a.lower() for a in recipients if a})
    if is_reply and thread_subject and people:
        parts.append(_BY_SUBJECT)
        since = timezone.now() - SUBJECT_FALLBACK_WINDOW
        params += [accounts, thread_subject, since, people, to_people, people]
    if not parts or not accounts:
        return None
    union = " UNION ALL ".join(parts)  # only the constants above
    sql = f"SELECT DISTINCT ON (account_id) account_id, thread_id FROM ({union}) hits ORDER BY account_id, strength, key"  # noqa: S608
    return sql, params
