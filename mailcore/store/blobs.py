"""Blob rows: verbatim bytes stored once per distinct content, with a reference count."""

from __future__ import annotations

import hashlib

from django.db import connection


def blob_acquire(*, raw: bytes, refs: int, sha256: str | None = None) -> int:
    """Insert the blob or add ``refs`` to its count; returns its id. Call inside a transaction."""
    digest = sha256 or hashlib.sha256(raw).hexdigest()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO mailcore_blob (sha256, size, data, refcount, created_at)
            VALUES (%s, %s, %s, %s, now())
            ON CONFLICT (sha256) DO UPDATE SET refcount = mailcore_blob.refcount + EXCLUDED.refcount
            RETURNING id
            """,
            [digest, len(raw), raw, refs],
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def blob_add_refs(*, blob_id: int, refs: int) -> None:
    with connection.cursor() as cur:
        cur.execute("UPDATE mailcore_blob SET refcount = refcount + %s WHERE id = %s", [refs, blob_id])


def blobs_release(*, blob_refs: dict[int, int]) -> list[int]:
    """Drop references; blobs that reach zero are deleted in the same transaction. Returns those ids."""
    if not blob_refs:
        return []
    ids = sorted(blob_refs)
    counts = [blob_refs[i] for i in ids]
    with connection.cursor() as cur:
        cur.execute(
            """
            UPDATE mailcore_blob b SET refcount = b.refcount - d.n
            FROM unnest(%s::bigint[], %s::int[]) AS d(id, n)
            WHERE b.id = d.id
            RETURNING b.id, b.refcount
            """,
            [ids, counts],
        )
        freed = [row[0] for row in cur.fetchall() if row[1] <= 0]
        if freed:
            # A blob still referenced by an outbound queue row is protected by its FK count too.
            cur.execute("DELETE FROM mailcore_blob WHERE id = ANY(%s) AND refcount <= 0", [freed])
    return freed
