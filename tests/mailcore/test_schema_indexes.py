"""Every index costs each insert a btree descent: the tables that every delivery writes keep
none that another index already provides (migration 0010 dropped Django's automatic copies)."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

# The tables a delivery inserts into or updates.
DELIVERY_TABLES = (
    "mailcore_blob",
    "mailcore_message",
    "mailcore_folderentry",
    "mailcore_folderchange",
    "mailcore_folder",
)

# Indexes of those tables: table, name, unique, partial, method, key columns in order, ...
INDEXES = """
    SELECT c.relname, i.relname, ix.indisunique, ix.indpred IS NOT NULL, am.amname,
           ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.n),
           ix.indnkeyatts, ix.indexprs IS NOT NULL
    FROM pg_index ix
    JOIN pg_class c ON c.oid = ix.indrelid
    JOIN pg_class i ON i.oid = ix.indexrelid
    JOIN pg_am am ON am.oid = i.relam
    WHERE c.relname = ANY(%s)
"""


def test_no_index_is_a_leading_prefix_of_another_on_the_same_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(INDEXES, [list(DELIVERY_TABLES)])
        rows = cursor.fetchall()
    plain = [
        (table, name, unique, columns)
        for table, name, unique, partial, method, columns, _keys, expressions in rows
        if method == "btree" and not partial and not expressions
    ]
    redundant = [
        (name, other)
        for table, name, unique, columns in plain
        if not unique
        for other_table, other, _u, other_columns in plain
        if other_table == table and other != name and other_columns[: len(columns)] == columns
    ]
    assert redundant == []


def test_no_pattern_ops_copy_of_the_blob_digest() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'mailcore_blob' ORDER BY 1")
        names = [name for (name,) in cursor.fetchall()]
    assert names == ["blob_unique_sha256", "mailcore_blob_pkey"]
