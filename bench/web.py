"""Web UI server times on a big mailbox: list pages (first and deep, keyset) and opening a message.

``python -m bench web [--quick] [--messages=N]``: fills one account's Inbox to N messages
(100,000 by default; 10,000 with --quick) in a database of its own (DATABASE_URL's name with
``_bench_web`` appended), then times requests through Django's test client (no network, no
browser: server time only) and prints p50/p95/max in milliseconds.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta

from bench.common import use_bench_database

ROUNDS = 200
DISTINCT = 200


def _fill(target: int) -> tuple[object, object]:
    from django.utils import timezone

    from mailcore import store
    from mailcore.models import Account, Domain, Folder, Tenant

    tenant = Tenant.objects.filter(name="bench").first() or store.tenant_create(name="bench")
    if not Domain.objects.filter(name="bench.test").exists():
        store.domain_create(tenant=tenant, name="bench.test")
    account = Account.objects.filter(address="reader@bench.test").first() or store.account_create(
        address="reader@bench.test", password=None, quota_bytes=0)
    inbox = Folder.objects.get(account=account, special_use=Folder.SpecialUse.INBOX)
    if inbox.total_count < DISTINCT:
        start = timezone.now() - timedelta(days=365)
        for i in range(DISTINCT):
            raw = (f"From: Sender {i} <s{i}@example.org>\r\nTo: reader@bench.test\r\nSubject: Report {i}\r\n"
                   f"Message-ID: <bench-{i}-{time.time_ns()}@example.org>\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n\r\n" + ("Some text of the message. " * 40) + "\r\n")
            store.message_append(account=account, folder=inbox, raw=raw.encode(),
                                 internal_date=start + timedelta(minutes=i * 7))
    inbox.refresh_from_db()
    while inbox.total_count < target:
        from mailcore.models import FolderEntry

        want = min(inbox.total_count, target - inbox.total_count)
        uids = list(FolderEntry.objects.filter(folder=inbox).order_by("uid").values_list("uid", flat=True)[:want])
        store.message_copy(account=account, source=inbox, uids=uids, target=inbox)
        inbox.refresh_from_db()
        print(f"  filled to {inbox.total_count} messages", flush=True)
    return account, inbox


THREAD_BLOCK = 60  # rows of the folder (newest to oldest ~5 hours) whose messages form ...
THREADS_PER_BLOCK = 20  # ... this many conversations: 3 messages each on average, interleaved
_SHAPE = """
WITH ordered AS (
    SELECT e.message_id, row_number() OVER (ORDER BY e.uid) - 1 AS r
    FROM mailcore_folderentry e WHERE e.folder_id = %(folder)s
)
UPDATE mailcore_message m
SET thread_id = 1000000000 + (o.r / %(block)s) * %(per)s + ((o.r * 2654435761) %% 4294967296) %% %(per)s,
    received_at = %(start)s + o.r * interval '5 minutes'
FROM ordered o WHERE m.id = o.message_id
"""


def _shape_threads(inbox: object) -> None:
    """Make the copies look like a real mailbox: one arrival every 5 minutes, and conversations
    of 1 to ~8 messages (3 on average) interleaved with each other, instead of 200 threads of
    500 copies that share their dates."""
    from django.db import connection
    from django.utils import timezone

    from mailcore.models import FolderEntry

    first = FolderEntry.objects.filter(folder=inbox).order_by("uid").values_list("message__thread_id", flat=True)[:1]
    if first and (first[0] or 0) >= 1_000_000_000:
        return  # already shaped
    start = timezone.now() - timedelta(days=400)
    with connection.cursor() as cursor:
        cursor.execute(_SHAPE, {"folder": inbox.pk, "block": THREAD_BLOCK,  # type: ignore[attr-defined]
                                "per": THREADS_PER_BLOCK, "start": start})
        cursor.execute("UPDATE mailcore_folderentry e SET received_at = m.received_at, thread_id = m.thread_id "
                       "FROM mailcore_message m "
                       "WHERE e.message_id = m.id AND e.folder_id = %s", [inbox.pk])  # type: ignore[attr-defined]
        cursor.execute("ANALYZE mailcore_message")
        cursor.execute("ANALYZE mailcore_folderentry")
    print("  shaped into conversations of ~3 messages", flush=True)


def _time(client: object, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        began = time.perf_counter()
        response = client.get(url)  # type: ignore[attr-defined]
        out.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return out


def _report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(f"  {name:<28} n={len(ordered):<4} p50={statistics.median(ordered):6.1f} ms  "
          f"p95={p95:6.1f} ms  max={ordered[-1]:6.1f} ms", flush=True)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    target = 10_000 if quick else 100_000
    for arg in argv:
        if arg.startswith("--messages="):
            target = int(arg.split("=", 1)[1])
    use_bench_database("_bench_web")
    from django.test import Client

    from mailcore.models import FolderEntry
    from webmail.selectors import Cursor

    account, inbox = _fill(target)
    _shape_threads(inbox)
    client = Client()
    client.force_login(account)  # type: ignore[arg-type]
    keys = list(FolderEntry.objects.filter(folder=inbox).order_by("-received_at", "-uid")
                .values_list("received_at", "uid", "message_id"))
    print(f"  mailbox: {len(keys)} messages, page size {account.page_size}", flush=True)  # type: ignore[attr-defined]
    rng = random.Random(7)
    rounds = ROUNDS // 4 if quick else ROUNDS
    _time(client, [f"/f/{inbox.pk}/"] * 5)  # warm caches and connections
    deep = [keys[rng.randrange(len(keys) - 1)] for _ in range(rounds)]
    last = keys[-60]

    def lists(mode: str) -> None:
        _report(f"{mode}, first page (full)", _time(client, [f"/f/{inbox.pk}/"] * rounds))
        _report(f"{mode}, first page (partial)", _time(client, [f"/f/{inbox.pk}/list/"] * rounds))
        _report(f"{mode}, random deep page", _time(client, [
            f"/f/{inbox.pk}/list/?after={Cursor(received_at=r, uid=u).encode()}" for r, u, _ in deep]))
        _report(f"{mode}, last page", _time(client, [
            f"/f/{inbox.pk}/list/?after={Cursor(received_at=last[0], uid=last[1]).encode()}"] * rounds))

    lists("conversations")
    opened = [keys[rng.randrange(len(keys))][2] for _ in range(rounds)]
    _report("open message (page)", _time(client, [f"/m/{m}/?folder={inbox.pk}" for m in opened]))
    _report("open message (body frame)", _time(client, [f"/m/{m}/body/" for m in opened]))
    account.conversation_view = False  # type: ignore[attr-defined]
    account.save(update_fields=["conversation_view"])  # type: ignore[attr-defined]
    try:
        _report("open message (no threads)", _time(client, [f"/m/{m}/?folder={inbox.pk}" for m in opened]))
        _time(client, [f"/f/{inbox.pk}/"] * 5)
        lists("messages")
    finally:
        account.conversation_view = True  # type: ignore[attr-defined]
        account.save(update_fields=["conversation_view"])  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
