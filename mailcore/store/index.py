"""The full-text index, filled just after delivery instead of inside it.

``to_tsvector`` costs about 0.2 ms per KB of text here, more than everything else a delivery
does for a message over a few KB, so the store writes messages with ``search_vector`` NULL and
this job (run by Celery beat every couple of seconds, see ``SEARCH_INDEX_INTERVAL``) computes
the vectors from the stored columns in batches, as Dovecot's indexer does after delivery. A
partial index keeps finding the pending rows cheap; ``SKIP LOCKED`` lets several workers share
the backlog. The IMAP SEARCH text keys do not depend on it (they read ``search_text``).

Locks: only the batch's message rows, ``FOR NO KEY UPDATE SKIP LOCKED``, the weakest lock that
still keeps two workers off the same rows (it conflicts with itself). ``FOR UPDATE`` would also
conflict with the foreign-key share lock that filing an entry for an existing message takes
(move, label), making those writers wait for the whole batch while they hold their account lock,
and deliveries to that account behind them. The job takes no account or folder lock: it changes
no count, quota or standing (see ``locks.py``), and as it never waits for a row it cannot be
part of a lock cycle. A flag change on a message of the batch still waits for the batch to
commit (two UPDATEs of one row always do): one batch, not the backlog.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper

log = logging.getLogger(__name__)

# Subject (A), people (B), attachment names (C), body text (D), as the web search ranks them.
# Each text is cut at %s characters (the first parameter, four times).
_VECTOR_SQL = """
        setweight(to_tsvector('simple', left(coalesce(m.subject, ''), %s)), 'A') ||
        setweight(to_tsvector('simple', left(coalesce((
            SELECT string_agg(concat_ws(' ', p->>0, p->>1), ' ')
            FROM jsonb_array_elements(
                coalesce(m.addresses->'from', '[]') || coalesce(m.addresses->'to', '[]') ||
                coalesce(m.addresses->'cc', '[]') || coalesce(m.addresses->'bcc', '[]')
            ) AS p
            WHERE jsonb_typeof(p) = 'array'
        ), ''), %s)), 'B') ||
        setweight(to_tsvector('simple', left(coalesce((
            SELECT string_agg(a->>'filename', ' ') FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(m.attachments) = 'array' THEN m.attachments ELSE '[]' END
            ) AS a
        ), ''), %s)), 'C') ||
        setweight(to_tsvector('simple', left(coalesce(m.search_text, ''), %s)), 'D')
"""
_INDEX_SQL = f"""
    WITH pending AS (
        SELECT id FROM mailcore_message WHERE search_vector IS NULL
        ORDER BY id LIMIT %s FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE mailcore_message m SET search_vector = {_VECTOR_SQL}
    FROM pending WHERE m.id = pending.id
"""  # noqa: S608 (constant SQL)
_PENDING_SQL = "SELECT id FROM mailcore_message WHERE search_vector IS NULL ORDER BY id LIMIT %s FOR NO KEY UPDATE SKIP LOCKED"
_ONE_SQL = f"UPDATE mailcore_message m SET search_vector = {_VECTOR_SQL} WHERE m.id = %s"  # noqa: S608
_EMPTY_SQL = "UPDATE mailcore_message SET search_vector = ''::tsvector WHERE id = %s"

BATCH = 200
# PostgreSQL refuses a tsvector over 1 MB (ProgramLimitExceeded), which a few hundred KB of
# distinct words reach (the body text is capped at 256 KB, headers are not). A row that fails
# is indexed again with every text cut to this many characters, and failing that gets an empty
# vector: it must leave the backlog, or the job would fail on the same oldest rows forever.
UNCAPPED = 2**31 - 1
CAPPED = 25_000


def _index_row_by_row(cur: CursorWrapper, batch: int) -> int:
    cur.execute(_PENDING_SQL, [batch])
    ids = [row[0] for row in cur.fetchall()]
    for message_id in ids:
        for cap in (UNCAPPED, CAPPED):
            try:
                with transaction.atomic():
                    cur.execute(_ONE_SQL, [cap, cap, cap, cap, message_id])
                break
            except DatabaseError:
                continue
        else:
            log.warning("message %s cannot be indexed for search (its text overflows a tsvector)", message_id)
            cur.execute(_EMPTY_SQL, [message_id])
    return len(ids)


def search_index_pending(*, batch: int = BATCH, max_batches: int = 50) -> int:
    """Index up to ``batch * max_batches`` messages, one transaction per batch; returns how many."""
    done = 0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cur:
            try:
                with transaction.atomic():
                    cur.execute(_INDEX_SQL, [batch, UNCAPPED, UNCAPPED, UNCAPPED, UNCAPPED])
                    count = cur.rowcount
            except DatabaseError:
                count = _index_row_by_row(cur, batch)
        done += count
        if count < batch:
            break
    return done
