from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from mailcore import store
from mailcore.models import Account, Blob, Folder, FolderEntry, Message
from tests.conftest import PASSWORD, make_message


def inbox(account: Account) -> Folder:
    return Folder.objects.get(account=account, name="INBOX")


def test_new_account_gets_the_six_special_folders(alice):
    folders = dict(Folder.objects.filter(account=alice).values_list("name", "special_use"))
    assert folders == {
        "INBOX": "\\Inbox", "Sent": "\\Sent", "Drafts": "\\Drafts",
        "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive",
    }
    assert len(set(Folder.objects.filter(account=alice).values_list("uidvalidity", flat=True))) == 6


def test_delivery_gives_a_result_per_recipient(alice, bob):
    result = store.message_deliver(
        raw=make_message(), recipients=["alice@a.test", "bob@b.test", "nobody@a.test", "x@remote.example", "not an address"]
    )
    assert [r.status for r in result.recipients] == [
        store.DeliveryStatus.DELIVERED, store.DeliveryStatus.DELIVERED, store.DeliveryStatus.UNKNOWN,
        store.DeliveryStatus.NOT_LOCAL, store.DeliveryStatus.UNKNOWN,
    ]
    folder = inbox(alice)
    assert (folder.total_count, folder.unseen_count, folder.uid_next) == (1, 1, 2)
    alice.refresh_from_db()
    assert alice.used_bytes == len(make_message()) or alice.used_bytes > 0


def test_quarantined_delivery_is_filed_in_junk_or_inbox_without_one(alice, bob):
    Folder.objects.filter(account=bob, special_use="\\Junk").update(special_use="")
    result = store.message_deliver(raw=make_message(), recipients=["alice@a.test", "bob@b.test"], junk=True)
    assert all(r.ok for r in result.recipients)
    assert FolderEntry.objects.get(message__account=alice).folder.special_use == "\\Junk"
    assert inbox(alice).total_count == 0
    assert FolderEntry.objects.get(message__account=bob).folder.name == "INBOX"


def test_login_style_variants_reach_the_same_mailbox(alice):
    result = store.message_deliver(raw=make_message(), recipients=["ALICE@A.TEST", "<alice@a.test>"])
    assert all(r.ok for r in result.recipients)
    # one account, one copy, even when named twice
    assert Message.objects.filter(account=alice).count() == 1


def test_internationalised_domain_is_matched_in_either_form(tenant_a):
    store.domain_create(tenant=tenant_a, name="bücher.example")
    account = store.account_create(address="Jürgen@BÜCHER.example", password=PASSWORD)
    assert account.address == "jürgen@xn--bcher-kva.example"
    for spelling in ["jürgen@bücher.example", "JÜRGEN@xn--bcher-kva.example"]:
        assert store.recipient_resolve(spelling).account_ids == [account.pk]


def test_fifty_local_recipients_share_one_blob_released_after_expunge(tenant_a, domain_a):
    accounts = [store.account_create(address=f"user{i}@a.test", password=PASSWORD) for i in range(50)]
    raw = make_message(subject="To everyone")
    result = store.message_deliver(raw=raw, recipients=[a.address for a in accounts])
    assert all(r.ok for r in result.recipients)
    assert Blob.objects.count() == 1
    blob = Blob.objects.get()
    assert blob.refcount == 50 and bytes(blob.data) == raw
    for account in accounts:
        folder = inbox(account)
        store.flags_store(account=account, folder=folder, uids=[1], mode="add", flags=["\\Deleted"])
        assert store.folder_expunge(account=account, folder=folder) == [1]
    assert Blob.objects.count() == 0
    assert Message.objects.count() == 0
    assert all(a.used_bytes == 0 for a in Account.objects.filter(pk__in=[a.pk for a in accounts]))


def test_over_quota_recipient_is_refused_while_others_succeed(alice, bob):
    raw = make_message(body="x" * 5000)
    Account.objects.filter(pk=bob.pk).update(quota_bytes=1000)
    result = store.message_deliver(raw=raw, recipients=["alice@a.test", "bob@b.test"])
    assert result.recipients[0].ok
    assert result.recipients[1].status is store.DeliveryStatus.OVER_QUOTA
    assert "full" in result.recipients[1].reason
    assert Message.objects.filter(account=bob).count() == 0
    bob.refresh_from_db()
    assert bob.used_bytes == 0
    assert Blob.objects.get().refcount == 1


def test_every_recipient_over_quota_stores_nothing(alice, bob):
    raw = make_message(body="z" * 5000)
    Account.objects.filter(pk__in=[alice.pk, bob.pk]).update(quota_bytes=1000)
    result = store.message_deliver(raw=raw, recipients=["alice@a.test", "bob@b.test"])
    assert [r.status for r in result.recipients] == [store.DeliveryStatus.OVER_QUOTA] * 2
    assert result.blob_id is None
    assert not Blob.objects.exists() and not Message.objects.exists() and not FolderEntry.objects.exists()
    assert set(Account.objects.filter(pk__in=[alice.pk, bob.pk]).values_list("used_bytes", flat=True)) == {0}
    assert Folder.objects.get(account=alice, name="INBOX").uid_next == 1


def test_quota_usage_is_exact_through_deliver_copy_and_expunge(alice):
    raw = make_message(body="y" * 1000)
    store.message_deliver(raw=raw, recipients=["alice@a.test"])
    store.message_deliver(raw=raw, recipients=["alice@a.test"])
    alice.refresh_from_db()
    assert alice.used_bytes == 2 * len(raw)
    assert Blob.objects.get().refcount == 2  # identical bytes, stored once
    archive = Folder.objects.get(account=alice, name="Archive")
    store.message_copy(account=alice, source=inbox(alice), uids=[1, 2], target=archive)
    alice.refresh_from_db()
    assert alice.used_bytes == 4 * len(raw)
    store.folder_expunge(account=alice, folder=archive, only_deleted=False)
    alice.refresh_from_db()
    assert alice.used_bytes == 2 * len(raw)


def test_alias_with_several_destinations_and_remote_forward(alice, mallory, bob):
    store.alias_create(address="team@a.test", destinations=["alice@a.test", "mallory@a.test", "friend@remote.example"])
    result = store.message_deliver(raw=make_message(), recipients=["team@a.test"])
    (outcome,) = result.recipients
    assert outcome.ok and len(outcome.message_ids) == 2
    assert result.forwards == ["friend@remote.example"]
    assert Message.objects.filter(account__in=[alice, mallory]).count() == 2


def test_alias_loop_terminates(alice):
    store.alias_create(address="loop1@a.test", destinations=["loop2@a.test"])
    store.alias_create(address="loop2@a.test", destinations=["loop1@a.test", "alice@a.test"])
    assert store.recipient_resolve("loop1@a.test").account_ids == [alice.pk]


def test_catch_all_receives_unknown_names(alice, domain_a):
    assert store.recipient_resolve("whoever@a.test").kind is store.RecipientKind.UNKNOWN
    domain_a.catch_all = "alice@a.test"
    domain_a.save()
    resolution = store.recipient_resolve("whoever@a.test")
    assert resolution.kind is store.RecipientKind.LOCAL and resolution.account_ids == [alice.pk]


def test_inactive_account_does_not_receive(alice):
    Account.objects.filter(pk=alice.pk).update(is_active=False)
    assert store.recipient_resolve("alice@a.test").kind is store.RecipientKind.UNKNOWN


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_unique_uids_in_commit_order():
    tenant = store.tenant_create(name="Concurrency")
    store.domain_create(tenant=tenant, name="c.test")
    account = store.account_create(address="target@c.test", password=PASSWORD)
    folder_id = inbox(account).pk
    writers, per_writer = 8, 200
    errors: list[BaseException] = []
    gaps: list[tuple[int, int]] = []
    done = threading.Event()

    def writer(n: int) -> None:
        try:
            for i in range(per_writer):
                store.message_deliver(raw=make_message(subject=f"w{n} m{i}", body=f"{n}/{i}\r\n"),
                                      recipients=["target@c.test"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    def watcher() -> None:
        # If a higher UID ever became visible before a lower one, a reader would see a gap.
        try:
            while not done.is_set():
                uids = list(FolderEntry.objects.filter(folder_id=folder_id).values_list("uid", flat=True))
                if uids and (max(uids) != len(uids)):
                    gaps.append((len(uids), max(uids)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    observer = threading.Thread(target=watcher)
    observer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    done.set()
    observer.join(timeout=30)
    assert not errors, errors[:3]
    assert not gaps, gaps[:5]
    total = writers * per_writer
    uids = sorted(FolderEntry.objects.filter(folder_id=folder_id).values_list("uid", flat=True))
    assert uids == list(range(1, total + 1))
    folder = Folder.objects.get(pk=folder_id)
    assert folder.uid_next == total + 1
    assert folder.total_count == total and folder.unseen_count == total
    account.refresh_from_db()
    sizes = sum(Message.objects.filter(account=account).values_list("size", flat=True))
    assert account.used_bytes == sizes == folder.total_size
    connection.close()


def test_the_single_statement_write_fills_every_message_column():
    from mailcore.store.copies import MESSAGE_INSERT_COLUMNS

    # All but the search vector, which the index job fills (mailcore/store/index.py).
    assert {f.column for f in Message._meta.concrete_fields} - {"search_vector"} == MESSAGE_INSERT_COLUMNS


def test_single_recipient_delivery_is_a_handful_of_statements(alice):
    from django.test.utils import CaptureQueriesContext

    store.message_deliver(raw=make_message(), recipients=["alice@a.test"])
    raw = make_message(subject="Second")
    with CaptureQueriesContext(connection) as captured:
        result = store.message_deliver(raw=raw, recipients=["alice@a.test"])
    statements = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 2, statements  # resolve, then one write (quota, thread lookup included)
    assert result.recipients[0].ok
    entry = FolderEntry.objects.get(message_id=result.recipients[0].message_ids[0])
    message = entry.message
    assert (entry.uid, entry.folder.name, message.thread_id) == (2, "INBOX", message.pk)
    assert message.search_vector is None and message.subject == "Second"  # indexed just after
    assert message.blob.refcount == 1 and bytes(message.blob.data) == raw


def test_a_reply_joins_the_thread_of_what_it_references(alice):
    first = store.message_deliver(
        raw=make_message(subject="Plans", message_id="plans@x.test"), recipients=["alice@a.test"]
    )
    reply = store.message_deliver(
        raw=make_message(subject="Re: Plans", extra_headers="In-Reply-To: <plans@x.test>\r\n"),
        recipients=["alice@a.test"],
    )
    ids = [first.recipients[0].message_ids[0], reply.recipients[0].message_ids[0]]
    threads = set(Message.objects.filter(id__in=ids).values_list("thread_id", flat=True))
    assert threads == {ids[0]}


def test_the_delivery_statements_are_prepared_once_per_connection(alice):
    """Django opens connections with prepare_threshold=None, which makes psycopg ignore
    prepare=True: the lookup and the delivery statement must still be server-side prepared
    (parsed and planned once), and Django's own statements must not be."""
    for _ in range(3):
        store.message_deliver(raw=make_message(), recipients=["alice@a.test"])
    with connection.cursor() as cur:
        cur.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cur.fetchall()]
    assert any("mailcore_alias" in s for s in prepared)  # the recipient lookup
    assert any("INSERT INTO mailcore_blob" in s for s in prepared)  # the delivery statement
    assert len([s for s in prepared if "INSERT INTO mailcore_blob" in s]) == 1
    assert not any("pg_prepared_statements" in s for s in prepared)


def test_one_recipient_statement_stores_what_the_several_recipient_one_does(alice, bob):
    """One target goes through the statement with scalar parameters, several through its array
    form: each column of the copies must come out the same either way, quota and folder
    counters included."""
    from mailcore.store.copies import MESSAGE_INSERT_COLUMNS

    raw = make_message(subject="Same either way", extra_headers="Cc: Dan <dan@example.org>\r\n")
    alone = store.message_deliver(raw=raw, recipients=["alice@a.test"]).recipients[0].message_ids[0]
    both = store.message_deliver(raw=raw, recipients=["alice@a.test", "bob@b.test"])
    pair = both.recipients[0].message_ids[0]
    skip = {"id", "thread_id", "received_at"}  # per copy by nature
    columns = sorted(MESSAGE_INSERT_COLUMNS - skip)
    one_row = Message.objects.filter(id=alone).values(*columns).get()
    pair_row = Message.objects.filter(id=pair).values(*columns).get()
    assert one_row == pair_row
    assert one_row["account_id"] == alice.id and one_row["size"] == len(raw)
    entries = FolderEntry.objects.filter(message_id__in=[alone, pair]).order_by("uid")
    assert [(e.uid, e.recent, e.folder.name) for e in entries] == [(1, True, "INBOX"), (2, True, "INBOX")]
    alice.refresh_from_db()
    inbox = Folder.objects.get(account=alice, name="INBOX")
    assert alice.used_bytes == 2 * len(raw) == inbox.total_size
    assert (inbox.total_count, inbox.unseen_count, inbox.uid_next) == (2, 2, 3)
