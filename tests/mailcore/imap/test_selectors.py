"""The session's hot reads: one statement each, the same answers as before."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mailcore import store
from mailcore.imap import selectors
from mailcore.models import Account, Folder
from tests.conftest import make_message

pytestmark = pytest.mark.django_db


def _inbox(alice: Account, n: int) -> Folder:
    folder = Folder.objects.get(account=alice, name="INBOX")
    for i in range(n):
        store.message_append(account=alice, folder=folder, raw=make_message(subject=f"m{i}"),
                             flags=["$Work"] if i == 0 else [])
    folder.refresh_from_db()
    return folder


def test_snapshot_is_one_statement(alice: Account) -> None:
    inbox = _inbox(alice, 4)
    store.flags_store(account=alice, folder=inbox, uids=[1, 2], mode="add", flags=["\\Seen"])
    store.recent_clear(folder=inbox, uids=[1])
    inbox.refresh_from_db()
    with CaptureQueriesContext(connection) as captured:
        snap = selectors.folder_snapshot(inbox.pk)
    assert len(captured.captured_queries) == 1
    assert (snap.uidvalidity, snap.uid_next, snap.highest_modseq) == (
        inbox.uidvalidity, 5, inbox.highest_modseq)
    assert snap.uids == [1, 2, 3, 4] and snap.recent == [2, 3, 4]
    assert snap.first_unseen_uid == 3 and snap.keywords == ["$Work"]


def test_snapshot_of_an_empty_folder(alice: Account) -> None:
    trash = Folder.objects.get(account=alice, name="Trash")
    snap = selectors.folder_snapshot(trash.pk)
    assert snap.uids == [] and snap.first_unseen_uid is None and snap.keywords == []
    with pytest.raises(Folder.DoesNotExist):
        selectors.folder_snapshot(10**9)


def test_delta_is_one_statement(alice: Account) -> None:
    inbox = _inbox(alice, 4)
    since, known_uid_next = inbox.highest_modseq, inbox.uid_next
    with CaptureQueriesContext(connection) as captured:
        delta = selectors.folder_delta(inbox.pk, since, known_uid_next)
    assert len(captured.captured_queries) == 1
    assert delta is not None and (delta.expunged, delta.new, delta.changed) == ([], [], [])
    store.flags_store(account=alice, folder=inbox, uids=[2, 3], mode="add", flags=["\\Deleted", "$X"])
    store.folder_expunge(account=alice, folder=inbox, uids=[3])
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="new"))
    with CaptureQueriesContext(connection) as captured:
        delta = selectors.folder_delta(inbox.pk, since, known_uid_next)
    assert len(captured.captured_queries) == 1
    inbox.refresh_from_db()
    assert delta is not None
    assert delta.highest_modseq == inbox.highest_modseq and delta.uid_next == 6
    assert delta.expunged == [3] and delta.new == [(5, True)]
    assert [(uid, flags) for uid, flags, _ in delta.changed] == [(2, ["\\Deleted", "$X"])]
    assert selectors.folder_delta(10**9, 0, 1) is None


def test_fetch_rows_match_the_orm_and_take_one_statement_each(alice: Account) -> None:
    from mailcore.models import FolderEntry

    inbox = _inbox(alice, 3)
    store.flags_store(account=alice, folder=inbox, uids=[2], mode="add", flags=["\\Answered", "$Y"])
    with CaptureQueriesContext(connection) as captured:
        rows = selectors.fetch_rows(inbox.pk, [3, 1, 2, 9], structure=True, envelope=True, body=True)
    assert len(captured.captured_queries) == 1  # the blobs joined in
    columns = ["uid", "modseq", "received_at", "message__received_tz", "message_id", "message__size",
               "message__header_size", "message__blob_id", "message__seen", "message__answered",
               "message__flagged", "message__deleted", "message__draft", "message__keywords",
               "message__bodystructure", "message__envelope"]
    expected = list(FolderEntry.objects.filter(folder=inbox).order_by("uid").values(*columns))
    for row, want in zip(rows, expected, strict=True):
        assert {k: row[k] for k in columns} == want
        assert row["raw"] == bytes(FolderEntry.objects.get(folder=inbox, uid=row["uid"]).message.blob.data)
    assert [r["flags"] for r in rows] == [["$Work"], ["\\Answered", "$Y"], []]
    lean = selectors.fetch_rows(inbox.pk, [1], structure=False, envelope=False, body=False)
    assert "raw" not in lean[0] and "message__envelope" not in lean[0]
    assert lean[0]["received_at"] == expected[0]["received_at"]


def test_folder_lookups_are_one_statement_and_scoped_to_the_account(alice: Account, mallory: Account) -> None:
    archive = Folder.objects.get(account=alice, name="Archive")
    with CaptureQueriesContext(connection) as captured:
        found = selectors.folder_get(alice, "Archive")
    assert len(captured.captured_queries) == 1
    assert found is not None and found.pk == archive.pk
    assert {f.attname: getattr(found, f.attname) for f in Folder._meta.concrete_fields} == {
        f.attname: getattr(archive, f.attname) for f in Folder._meta.concrete_fields}
    assert not found._state.adding
    assert selectors.folder_get(alice, "Nope") is None
    assert selectors.folder_get(mallory, "Archive") != found
    assert selectors.folder_get_by_id(alice, archive.pk) == archive
    assert selectors.folder_get_by_id(mallory, archive.pk) is None


def test_folder_select_is_the_folder_and_its_snapshot_in_one_round_trip(alice: Account, mallory: Account) -> None:
    inbox = _inbox(alice, 3)
    with CaptureQueriesContext(connection) as captured:
        folder, snap = selectors.folder_select(alice, "INBOX")
    assert len(captured.captured_queries) == 2  # sent together, in one pipeline
    assert folder is not None and folder.pk == inbox.pk
    assert snap == selectors.folder_snapshot(inbox.pk)
    assert snap is not None and snap.uids == [1, 2, 3]
    store.folder_create(account=alice, name="Projects")
    assert selectors.folder_select(alice, "Projects")[0] is not None
    assert selectors.folder_select(mallory, "Projects") == (None, None)  # another account's folder
    assert selectors.folder_select(alice, "No/Such") == (None, None)
