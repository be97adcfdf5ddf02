"""The store's one lock order: the account rows first, then the folders, each in id order.

Every writer that changes where an account's messages stand (delivery and append through the
quota update, copy, move, label, expunge, flags, folder-tree changes) takes its locks through
these two functions (or sends their statements, in this order, in one pipeline), so concurrent
writers never wait for each other in a cycle, and what a writer read after taking its account
lock stays true until it commits. NO KEY UPDATE conflicts with itself (and with the UPDATEs of
counters) but leaves foreign-key checks free.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

LOCK_ACCOUNTS_SQL = "SELECT id FROM mailcore_account WHERE id = ANY(%s::bigint[]) ORDER BY id FOR NO KEY UPDATE"
LOCK_FOLDERS_SQL = "SELECT id FROM mailcore_folder WHERE id = ANY(%s::bigint[]) ORDER BY id FOR NO KEY UPDATE"


def lock_accounts(account_ids: Iterable[int]) -> None:
    ids = sorted(set(account_ids))
    if ids:
        with connection.cursor() as cur:
            cur.execute(LOCK_ACCOUNTS_SQL, [ids])


def lock_folders(folder_ids: Iterable[int]) -> None:
    ids = sorted(set(folder_ids))
    if ids:
        with connection.cursor() as cur:
            cur.execute(LOCK_FOLDERS_SQL, [ids])
