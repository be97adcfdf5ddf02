"""The full-text index, filled just after delivery instead of inside it.

``to_tsvector`` costs about 0.2 ms per KB of text here, more than everything else a delivery
does for a message over a few KB, so the store writes messages with ``search_vector`` NULL and
this job (run by Celery beat every couple of seconds, see ``SEARCH_INDEX_INTERVAL``) computes
the vectors from the stored columns in batches, as Dovecot's indexer does after delivery. A
partial index keeps finding the pending rows cheap; ``SKIP LOCKED`` lets several workers share
the backlog. The IMAP SEARCH text keys do not depend on it (they read ``search_text``).
"""

from __future__ import annotations

from django.db import connection, transaction

# Subject (A), people (B), attachment names (C), body text (D), as the web search ranks them.
_INDEX_SQL = """
    WITH pending AS (
        SELECT id FROM mailcore_message WHERE search_vector IS NULL
        ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
    )
    UPDATE mailcore_message m SET search_vector =
        setweight(to_tsvector('simple', coalesce(m.subject, '')), 'A') ||
        setweight(to_tsvector('simple', coalesce((
            SELECT string_agg(concat_ws(' ', p->>0, p->>1), ' ')
            FROM jsonb_array_elements(
                coalesce(m.addresses->'from', '[]') || coalesce(m.addresses->'to', '[]') ||
                coalesce(m.addresses->'cc', '[]') || coalesce(m.addresses->'bcc', '[]')
            ) AS p
            WHERE jsonb_typeof(p) = 'array'
        ), '')), 'B') ||
        setweight(to_tsvector('simple', coalesce((
            SELECT string_agg(a->>'filename', ' ') FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(m.attachments) = 'array' THEN m.attachments ELSE '[]' END
            ) AS a
        ), '')), 'C') ||
        setweight(to_tsvector('simple', coalesce(m.search_text, '')), 'D')
    FROM pending WHERE m.id = pending.id
"""

BATCH = 200


def search_index_pending(*, batch: int = BATCH, max_batches: int = 50) -> int:
    """Index up to ``batch * max_batches`` messages, one transaction per batch; returns how many."""
    done = 0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(_INDEX_SQL, [batch])
            count = cur.rowcount
        done += count
        if count < batch:
            break
    return done
