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
    """Map account id → existing thread id for the accounts where one is found."""
    found: dict[int, int] = {}
    ids = [i for i in [*references, *in_reply_to] if i]
    if ids:
        rows = (
            Message.objects.filter(account_id__in=account_ids, message_id__in=ids, thread_id__isnull=False)
            .order_by("account_id", "id")
            .values_list("account_id", "thread_id")
        )
        for account_id, thread_id in rows:
            if thread_id is not None:
                found.setdefault(account_id, thread_id)
    missing = [a for a in account_ids if a not in found]
    if missing and message_id:
        rows = (
            Message.objects.filter(
                Q(references__contains=[message_id]) | Q(in_reply_to__contains=[message_id]),
                account_id__in=missing,
                thread_id__isnull=False,
            )
            .order_by("account_id", "id")
            .values_list("account_id", "thread_id")
        )
        for account_id, thread_id in rows:
            if thread_id is not None:
                found.setdefault(account_id, thread_id)
    missing = [a for a in account_ids if a not in found]
    if missing and is_reply and thread_subject:
        since = timezone.now() - SUBJECT_FALLBACK_WINDOW
        rows = (
            Message.objects.filter(account_id__in=missing, thread_subject=thread_subject, received_at__gte=since)
            .order_by("account_id", "-received_at")
            .values_list("account_id", "thread_id")
        )
        for account_id, thread_id in rows:
            if thread_id is not None:
                found.setdefault(account_id, thread_id)
    return found
