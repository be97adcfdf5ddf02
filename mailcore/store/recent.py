"""\\Recent for IMAP sessions: the first session to see an entry takes it (RFC 3501 §2.3.2)."""

from __future__ import annotations

from collections.abc import Sequence

from mailcore.models import Folder

from .sql import fetch_all

# One statement, so one round trip and no transaction of its own. The folder row is locked
# first, as every other writer of entries does (APPEND, STORE, EXPUNGE, MOVE): taking entry
# row locks alone, in scan order, could deadlock with them. The uncorrelated subquery is an
# InitPlan that PostgreSQL runs once, before the index scan it parameterises returns a row, so
# the folder lock is held before any entry is locked; a concurrent claimer waits for it and then
# finds the rows already cleared. A folder that is gone matches no entry (NULL folder id).
_CLAIM_SQL = """
UPDATE mailcore_folderentry SET recent = false
WHERE folder_id = (SELECT id FROM mailcore_folder WHERE id = %s FOR NO KEY UPDATE)
  AND recent AND (%s::boolean OR uid = ANY(%s::bigint[]))
RETURNING uid
"""


def recent_claim(*, folder: Folder | int, uids: Sequence[int] | None = None) -> list[int]:
    """Clear \\Recent on the given entries (all when ``uids`` is None); returns the UIDs this
    call cleared, which are the ones the calling session reports as \\Recent."""
    folder_id = folder if isinstance(folder, int) else folder.pk
    rows = fetch_all(_CLAIM_SQL, [folder_id, uids is None, list(uids or ())])
    return sorted(int(row[0]) for row in rows)
