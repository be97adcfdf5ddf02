"""\\Recent for IMAP sessions: the first session to see an entry takes it (RFC 3501 §2.3.2)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from mailcore.models import Folder


@transaction.atomic
def recent_claim(*, folder: Folder | int, uids: Sequence[int] | None = None) -> list[int]:
    """Clear \\Recent on the given entries (all when ``uids`` is None); returns the UIDs this
    call cleared, which are the ones the calling session reports as \\Recent.

    The folder row is locked first, as every other writer of entries does (APPEND, STORE,
    EXPUNGE, MOVE): taking entry row locks alone, in scan order, could deadlock with them.
    One UPDATE ... RETURNING decides who gets each entry: a concurrent claimer waits for the
    folder lock and then finds the rows already cleared.
    """
    folder_id = folder if isinstance(folder, int) else folder.pk
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM mailcore_folder WHERE id = %s FOR NO KEY UPDATE", [folder_id])
        if cur.fetchone() is None:
            return []
        if uids is None:
            cur.execute("UPDATE mailcore_folderentry SET recent = false WHERE folder_id = %s AND recent "
                        "RETURNING uid", [folder_id])
        else:
            cur.execute("UPDATE mailcore_folderentry SET recent = false WHERE folder_id = %s AND recent "
                        "AND uid = ANY(%s) RETURNING uid", [folder_id, list(uids)])
        return sorted(int(row[0]) for row in cur.fetchall())
