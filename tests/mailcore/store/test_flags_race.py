"""flags_store against a concurrent move: the folders a message stands in are read under the
account lock every writer takes first, so the folder it has just been moved to gets its MODSEQ
and its unseen count."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from mailcore import store
from mailcore.models import Folder, FolderEntry, Message
from tests.conftest import make_message

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_locks() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
        return int(cur.fetchone()[0])


def test_seen_set_while_the_message_moves_between_its_other_folders_reaches_the_new_one(alice) -> None:
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    work = store.folder_create(account=alice, name="Work")
    later = store.folder_create(account=alice, name="Later")
    store.message_deliver(raw=make_message(), recipients=[store.recipient_resolve("alice@a.test")])
    message = Message.objects.get(account=alice)
    store.label_add(account=alice, message_ids=[message.pk], folder=work)
    [work_uid] = FolderEntry.objects.filter(folder=work).values_list("uid", flat=True)
    errors: list[BaseException] = []

    def mark_seen() -> None:
        try:
            store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Seen"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    marker = threading.Thread(target=mark_seen)
    with transaction.atomic():
        # The mover holds the account and Work (every writer locks the account first, then
        # folders) while flags_store waits; the move commits before flags_store reads anything.
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM mailcore_account WHERE id = %s FOR UPDATE", [alice.pk])
            cur.execute("SELECT id FROM mailcore_folder WHERE id = %s FOR UPDATE", [work.pk])
        marker.start()
        deadline = time.monotonic() + 20
        while _waiting_on_locks() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _waiting_on_locks() == 1, errors
        store.message_move(account=alice, source=work, uids=[work_uid], target=later)
    marker.join(30)
    assert errors == []
    message.refresh_from_db()
    assert message.seen
    for folder in (inbox, work, later):
        folder.refresh_from_db()
        unseen = FolderEntry.objects.filter(folder=folder, message__seen=False).count()
        assert folder.unseen_count == unseen, folder.name
    [entry] = FolderEntry.objects.filter(folder=later)
    assert entry.modseq == later.highest_modseq  # the flag change is visible to CONDSTORE there


def test_label_added_while_seen_is_being_set_counts_the_flag_that_commits(alice) -> None:
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    later = store.folder_create(account=alice, name="Later")
    store.message_deliver(raw=make_message(), recipients=[store.recipient_resolve("alice@a.test")])
    message = Message.objects.get(account=alice)
    marked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def mark_seen() -> None:
        try:
            with transaction.atomic():
                store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Seen"])
                marked.set()
                release.wait(20)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def label() -> None:
        try:
            store.label_add(account=alice, message_ids=[message.pk], folder=later)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    marker, labeller = threading.Thread(target=mark_seen), threading.Thread(target=label)
    marker.start()
    try:
        assert marked.wait(20), errors
        labeller.start()
        deadline = time.monotonic() + 5
        while labeller.is_alive() and _waiting_on_locks() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        release.set()
    marker.join(30)
    labeller.join(30)
    assert errors == []
    for folder in (inbox, later):
        folder.refresh_from_db()
        assert folder.unseen_count == FolderEntry.objects.filter(folder=folder, message__seen=False).count(), folder.name
