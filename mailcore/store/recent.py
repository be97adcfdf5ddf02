"""\\Recent for IMAP sessions: the first session to see an entry takes it (RFC 3501 §2.3.2)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from mailcore.models import Folder, FolderEntry


@transaction.atomic
def recent_claim(*, folder: Folder | int, uids: Sequence[int] | None = None) -> list[int]:
    """Clear \\Recent on the given entries (all when ``uids`` is None); returns the UIDs this
    call cleared, which are the ones the calling session reports as \\Recent."""
    folder_id = folder if isinstance(folder, int) else folder.pk
    qs = FolderEntry.objects.select_for_update(skip_locked=False).filter(folder_id=folder_id, recent=True)
    if uids is not None:
        qs = qs.filter(uid__in=list(uids))
    claimed = sorted(qs.values_list("uid", flat=True))
    if claimed:
        FolderEntry.objects.filter(folder_id=folder_id, uid__in=claimed).update(recent=False)
    return claimed
