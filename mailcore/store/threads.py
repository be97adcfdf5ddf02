"""Conversation ids, computed once when a message is stored.

A message joins the thread of any earlier message of the same account that it references
(In-Reply-To / References), or of one that references it (a reply that arrived first). Failing
that, a reply ("Re: ...") joins the newest recent thread with the same normalised subject.
Otherwise it starts a thread of its own, whose id is its own message id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from mailcore.models import Message

SUBJECT_FALLBACK_WINDOW = timedelta(days=60)


def threads_for_accounts(
    *,
    account_ids: Sequence[int],
    message_id: str,
    in_reply_to: Sequence[str],
    references: Sequence[str],
    thread_subject: str,
    is_reply: bool,
) -> dict[int, int]:
    """Map account id → existing thread id for the accounts where one is found.

    The lookups run in order of strength; each asks only for the accounts still without one.
    """
    found: dict[int, int] = {}
    ids = [i for i in [*references, *in_reply_to] if i]
    lookups: list[tuple[bool, Q, str]] = [
        (bool(ids), Q(message_id__in=ids), "id"),
        (bool(message_id), Q(references__contains=[message_id]) | Q(in_reply_to__contains=[message_id]), "id"),
        (
            is_reply and bool(thread_subject),
            Q(thread_subject=thread_subject, received_at__gte=timezone.now() - SUBJECT_FALLBACK_WINDOW),
            "-received_at",
        ),
    ]
    for wanted, condition, order in lookups:
        missing = [a for a in account_ids if a not in found]
        if not (wanted and missing):
            continue
        rows = (
            Message.objects.filter(condition, account_id__in=missing, thread_id__isnull=False)
            .order_by("account_id", order)
            .values_list("account_id", "thread_id")
        )
        for account_id, thread_id in rows:
            if thread_id is not None:
                found.setdefault(account_id, thread_id)
    return found
