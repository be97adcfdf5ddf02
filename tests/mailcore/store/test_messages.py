from __future__ import annotations

import pytest
from django.db import connection

from mailcore import store
from mailcore.models import Folder, FolderChange, FolderEntry, Message
from mailcore.store.index import search_index_pending
from tests.conftest import make_message


def folder(account, name="INBOX") -> Folder:
    return Folder.objects.get(account=account, name=name)


def deliver(account, n=1, **kwargs):
    for _ in range(n):
        store.message_deliver(raw=make_message(**kwargs), recipients=[account.address])


def test_flags_set_add_remove_and_keywords(alice):
    deliver(alice, 2)
    inbox = folder(alice)
    start = inbox.highest_modseq
    r = store.flags_store(account=alice, folder=inbox, uids=[1, 2], mode="add", flags=["\\Seen", "$Important"])
    assert r.changed == [1, 2]
    assert r.entries[1][0] == ["\\Seen", "$Important"]
    inbox.refresh_from_db()
    assert inbox.unseen_count == 0 and inbox.highest_modseq == start + 1
    r = store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["$important"])
    assert r.changed == []  # keywords are case-insensitive: nothing changed, no new modseq
    r = store.flags_store(account=alice, folder=inbox, uids=[1], mode="remove", flags=["\\Seen", "$IMPORTANT"])
    assert r.entries[1][0] == []
    r = store.flags_store(account=alice, folder=inbox, uids=[2], mode="set", flags=["\\Flagged", "\\Recent"])
    assert r.entries[2][0] == ["\\Flagged"]
    inbox.refresh_from_db()
    assert inbox.unseen_count == 2
    kinds = list(FolderChange.objects.filter(folder=inbox).values_list("uid", "kind"))
    assert (1, "flags") in kinds and (2, "flags") in kinds


def test_unchanged_since_refuses_entries_modified_later(alice):
    deliver(alice, 2)
    inbox = folder(alice)
    first = store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Seen"])
    modseq_of_1 = first.entries[1][1]
    r = store.flags_store(account=alice, folder=inbox, uids=[1, 2], mode="add", flags=["\\Flagged"],
                          unchanged_since=modseq_of_1 - 1)
    assert r.failed == [1] and r.changed == [2]


def test_a_label_shares_flags_and_each_folder_gets_a_modseq(alice):
    deliver(alice)
    inbox, archive = folder(alice), folder(alice, "Archive")
    message = Message.objects.get(account=alice)
    assert store.label_add(account=alice, message_ids=[message.pk], folder=archive) == [1]
    assert store.label_add(account=alice, message_ids=[message.pk], folder=archive) == []
    archive.refresh_from_db()
    before = archive.highest_modseq
    store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Seen"])
    archive.refresh_from_db()
    assert archive.highest_modseq == before + 1 and archive.unseen_count == 0
    assert FolderEntry.objects.get(folder=archive).modseq == archive.highest_modseq


def test_copy_makes_an_independent_message_sharing_the_blob(alice):
    deliver(alice)
    inbox, archive = folder(alice), folder(alice, "Archive")
    store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Flagged"])
    search_index_pending()
    assert store.message_copy(account=alice, source=inbox, uids=[1], target=archive) == [(1, 1)]
    original, clone = Message.objects.filter(account=alice).order_by("pk")
    assert clone.blob_id == original.blob_id and clone.flagged
    assert clone.blob.refcount == 2
    store.flags_store(account=alice, folder=archive, uids=[1], mode="add", flags=["\\Seen"])
    original.refresh_from_db()
    assert not original.seen
    assert Message.objects.filter(pk=clone.pk, search_vector__isnull=False).exists()


def test_move_keeps_the_message_and_logs_an_expunge(alice):
    deliver(alice, 3)
    inbox, trash = folder(alice), folder(alice, "Trash")
    ids = set(Message.objects.filter(account=alice).values_list("pk", flat=True))
    assert store.message_move(account=alice, source=inbox, uids=[1, 3], target=trash) == [(1, 1), (3, 2)]
    assert set(Message.objects.filter(account=alice).values_list("pk", flat=True)) == ids
    inbox.refresh_from_db()
    trash.refresh_from_db()
    assert (inbox.total_count, trash.total_count, trash.unseen_count) == (1, 2, 2)
    assert sorted(FolderChange.objects.filter(folder=inbox, kind="expunge").values_list("uid", flat=True)) == [1, 3]


def test_move_into_the_same_folder_is_refused_and_loses_nothing(alice):
    deliver(alice, 2)
    inbox = folder(alice)
    with pytest.raises(store.StoreError):
        store.message_move(account=alice, source=inbox, uids=[1], target=inbox)
    assert FolderEntry.objects.filter(folder=inbox).count() == 2


def test_expunge_removes_only_deleted_and_honours_uid_set(alice):
    deliver(alice, 3)
    inbox = folder(alice)
    store.flags_store(account=alice, folder=inbox, uids=[1, 2], mode="add", flags=["\\Deleted"])
    assert store.folder_expunge(account=alice, folder=inbox, uids=[2, 3]) == [2]
    assert store.folder_expunge(account=alice, folder=inbox) == [1]
    assert list(FolderEntry.objects.filter(folder=inbox).values_list("uid", flat=True)) == [3]
    inbox.refresh_from_db()
    assert inbox.total_count == 1 and inbox.uid_next == 4


def test_append_keeps_flags_and_date_and_refuses_over_quota(alice):
    from datetime import UTC, datetime

    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    sent = folder(alice, "Sent")
    appended = store.message_append(account=alice, folder=sent, raw=make_message(), flags=["\\Seen"], internal_date=when)
    message = Message.objects.get(pk=appended.message_id)
    assert message.seen and message.received_at == when and appended.uid == 1
    alice.quota_bytes = alice.used_bytes + 10
    alice.save()
    with pytest.raises(store.QuotaExceeded):
        store.message_append(account=alice, folder=sent, raw=make_message(body="z" * 100))


def test_services_refuse_another_accounts_folder(alice, mallory):
    deliver(alice)
    with pytest.raises(store.StoreError):
        store.flags_store(account=mallory, folder=folder(alice), uids=[1], mode="add", flags=["\\Seen"])
    with pytest.raises(store.StoreError):
        store.folder_expunge(account=mallory, folder=folder(alice), only_deleted=False)
    assert FolderEntry.objects.filter(folder__account=alice).count() == 1


def test_a_reply_joins_the_thread_across_folders(alice):
    store.message_deliver(raw=make_message(subject="Plans", message_id="root@example.org"), recipients=[alice.address])
    reply = make_message(subject="Re: Plans", message_id="reply@a.test",
                         extra_headers="In-Reply-To: <root@example.org>\r\nReferences: <root@example.org>\r\n")
    store.message_append(account=alice, folder=folder(alice, "Sent"), raw=reply)
    other = make_message(subject="Something else")
    store.message_deliver(raw=other, recipients=[alice.address])
    root, sent, unrelated = Message.objects.filter(account=alice).order_by("pk")
    assert sent.thread_id == root.thread_id == root.pk
    assert unrelated.thread_id == unrelated.pk


def test_a_reply_arriving_before_its_parent_still_threads(alice):
    child = make_message(subject="Re: Early", message_id="child@x", extra_headers="References: <parent@x>\r\n")
    store.message_deliver(raw=child, recipients=[alice.address])
    store.message_deliver(raw=make_message(subject="Early", message_id="parent@x"), recipients=[alice.address])
    first, second = Message.objects.filter(account=alice).order_by("pk")
    assert second.thread_id == first.thread_id


def test_full_text_search_finds_subject_and_body(alice):
    store.message_deliver(raw=make_message(subject="Quarterly figures", body="The budget is attached.\r\n"),
                          recipients=[alice.address])
    store.message_deliver(raw=make_message(subject="Lunch"), recipients=[alice.address])
    search_index_pending()  # the index job beat runs every couple of seconds
    with connection.cursor() as cur:
        cur.execute("SELECT subject FROM mailcore_message WHERE account_id = %s AND search_vector @@ plainto_tsquery('simple', %s)",
                    [alice.pk, "budget"])
        assert [r[0] for r in cur.fetchall()] == ["Quarterly figures"]


def _statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


def test_store_is_four_statements_and_changes_every_standing(alice):
    from django.test.utils import CaptureQueriesContext

    deliver(alice, 3)
    inbox, archive = folder(alice), folder(alice, "Archive")
    message = FolderEntry.objects.get(folder=inbox, uid=2).message
    store.label_add(account=alice, message_ids=[message.pk], folder=archive)
    inbox.refresh_from_db()
    archive.refresh_from_db()
    with CaptureQueriesContext(connection) as captured:
        r = store.flags_store(account=alice, folder=inbox, uids=[1, 2, 3], mode="add", flags=["\\Seen", "$Work"])
    # account lock, folder locks, read (these three pipelined: one round trip), one write
    # (messages, MODSEQs, counters, change log)
    assert len(_statements(captured)) == 4, _statements(captured)
    assert r.changed == [1, 2, 3] and r.failed == []
    assert {uid: flags for uid, (flags, _) in r.entries.items()} == {u: ["\\Seen", "$Work"] for u in (1, 2, 3)}
    modseqs = {modseq for _, modseq in r.entries.values()}
    assert modseqs == {inbox.highest_modseq + 1}
    before_archive = archive.highest_modseq
    inbox.refresh_from_db()
    archive.refresh_from_db()
    assert (inbox.unseen_count, archive.unseen_count) == (0, 0)
    assert archive.highest_modseq == before_archive + 1
    assert FolderEntry.objects.get(folder=archive).modseq == archive.highest_modseq
    assert sorted(FolderChange.objects.filter(folder=inbox, kind="flags").values_list("uid", "modseq")) == [
        (u, inbox.highest_modseq) for u in (1, 2, 3)]
    assert list(FolderChange.objects.filter(folder=archive, kind="flags").values_list("uid", flat=True)) == [1]
    # Nothing to change: no write and no new MODSEQ.
    with CaptureQueriesContext(connection) as captured:
        r = store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Seen", "$work"])
    assert len(_statements(captured)) == 3 and r.changed == []
    # No entry at the named UIDs: the locks and the (empty) read, sent in one pipeline, no write.
    with CaptureQueriesContext(connection) as captured:
        r = store.flags_store(account=alice, folder=inbox, uids=[99], mode="add", flags=["\\Seen"])
    assert len(_statements(captured)) == 3 and r.entries == {}


def test_expunge_is_a_handful_of_statements_and_keeps_labelled_messages(alice):
    from django.test.utils import CaptureQueriesContext

    for n in range(3):
        deliver(alice, subject=f"m{n}")
    inbox, archive = folder(alice), folder(alice, "Archive")
    labelled = FolderEntry.objects.get(folder=inbox, uid=2).message
    store.label_add(account=alice, message_ids=[labelled.pk], folder=archive)
    store.flags_store(account=alice, folder=inbox, uids=[1, 2], mode="add", flags=["\\Deleted"])
    alice.refresh_from_db()
    used = alice.used_bytes
    alone = FolderEntry.objects.get(folder=inbox, uid=1).message
    inbox.refresh_from_db()
    with CaptureQueriesContext(connection) as captured:
        assert store.folder_expunge(account=alice, folder=inbox) == [1, 2]
    # account lock, folder lock, one statement for the rest, the freed blob's delete
    assert len(_statements(captured)) == 4, _statements(captured)
    assert not Message.objects.filter(pk=alone.pk).exists()
    assert Message.objects.filter(pk=labelled.pk).exists()
    alice.refresh_from_db()
    assert alice.used_bytes == used - alone.size
    from mailcore.models import Blob

    assert not Blob.objects.filter(pk=alone.blob_id).exists()
    assert Blob.objects.get(pk=labelled.blob_id).refcount == 1
    modseq = inbox.highest_modseq + 1
    inbox.refresh_from_db()
    assert (inbox.total_count, inbox.highest_modseq) == (1, modseq)
    assert sorted(FolderChange.objects.filter(folder=inbox, kind="expunge").values_list("uid", "modseq")) == [
        (1, modseq), (2, modseq)]
    with CaptureQueriesContext(connection) as captured:
        assert store.folder_expunge(account=alice, folder=inbox) == []
    assert len(_statements(captured)) == 3
    inbox.refresh_from_db()
    assert inbox.highest_modseq == modseq
