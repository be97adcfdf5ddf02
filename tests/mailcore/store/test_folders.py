from __future__ import annotations

import pytest

from mailcore import store
from mailcore.models import Folder, FolderEntry
from tests.conftest import make_message


def names(account) -> list[str]:
    return sorted(Folder.objects.filter(account=account).values_list("name", flat=True))


def test_create_makes_missing_parents(alice):
    store.folder_create(account=alice, name="Work/Projects/2026")
    assert {"Work", "Work/Projects", "Work/Projects/2026"} <= set(names(alice))


@pytest.mark.parametrize("bad", ["", "   ", "a//b", "/lead", "star*", "per%cent", "nul\x00l", "line\nbreak"])
def test_create_refuses_bad_names(alice, bad):
    with pytest.raises(store.FolderError):
        store.folder_create(account=alice, name=bad)


def test_inbox_is_case_insensitive_and_cannot_be_created_or_deleted(alice):
    with pytest.raises(store.FolderExists):
        store.folder_create(account=alice, name="inbox")
    child = store.folder_create(account=alice, name="inbox/child")
    assert child.name == "INBOX/child"
    with pytest.raises(store.FolderError):
        store.folder_delete(account=alice, folder=Folder.objects.get(account=alice, name="INBOX"))


def test_rename_moves_children_and_keeps_uids(alice):
    work = store.folder_create(account=alice, name="Work")
    store.folder_create(account=alice, name="Work/Old")
    store.message_append(account=alice, folder=work, raw=make_message())
    before = (work.uidvalidity, list(FolderEntry.objects.filter(folder=work).values_list("uid", flat=True)))
    store.folder_rename(account=alice, folder=work, new_name="Jobs/Current")
    assert {"Jobs", "Jobs/Current", "Jobs/Current/Old"} <= set(names(alice))
    assert "Work" not in names(alice) and "Work/Old" not in names(alice)
    work.refresh_from_db()
    assert (work.uidvalidity, list(FolderEntry.objects.filter(folder=work).values_list("uid", flat=True))) == before


def test_rename_refuses_existing_target_and_moving_inside_itself(alice):
    store.folder_create(account=alice, name="A")
    store.folder_create(account=alice, name="B")
    a = Folder.objects.get(account=alice, name="A")
    with pytest.raises(store.FolderExists):
        store.folder_rename(account=alice, folder=a, new_name="B")
    with pytest.raises(store.FolderError):
        store.folder_rename(account=alice, folder=a, new_name="A/inner")


def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(alice):
    for _ in range(3):
        store.message_deliver(raw=make_message(), recipients=[alice.address])
    inbox = Folder.objects.get(account=alice, name="INBOX")
    target = store.folder_rename(account=alice, folder=inbox, new_name="Old Inbox")
    inbox.refresh_from_db()
    target.refresh_from_db()
    assert inbox.total_count == 0 and target.total_count == 3
    assert FolderEntry.objects.filter(folder=target).count() == 3


def test_delete_releases_messages_and_a_recreated_name_gets_a_new_uidvalidity(alice):
    folder = store.folder_create(account=alice, name="Temp")
    store.message_append(account=alice, folder=folder, raw=make_message())
    old_validity = folder.uidvalidity
    store.folder_delete(account=alice, folder=folder)
    alice.refresh_from_db()
    assert alice.used_bytes == 0
    again = store.folder_create(account=alice, name="Temp")
    assert again.uidvalidity != old_validity


def test_recursive_delete_takes_children(alice):
    parent = store.folder_create(account=alice, name="P/Q/R")
    top = Folder.objects.get(account=alice, name="P")
    store.folder_delete(account=alice, folder=top, recursive=True)
    assert not any(n.startswith("P") for n in names(alice))
    assert parent.name == "P/Q/R"
