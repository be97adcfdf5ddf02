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


def test_delete_of_a_parent_leaves_a_noselect_placeholder_without_its_messages(alice):
    parent = store.folder_create(account=alice, name="Work")
    store.folder_create(account=alice, name="Work/Clients")
    store.message_append(account=alice, folder=parent, raw=make_message())
    store.folder_delete(account=alice, folder=parent)
    placeholder = Folder.objects.get(account=alice, name="Work")
    assert placeholder.noselect and placeholder.pk != parent.pk and placeholder.uidvalidity > parent.uidvalidity
    assert placeholder.total_count == 0 and not FolderEntry.objects.filter(folder=placeholder).exists()
    alice.refresh_from_db()
    assert alice.used_bytes == 0
    assert Folder.objects.filter(account=alice, name="Work/Clients", noselect=False).exists()


def test_a_placeholder_takes_no_messages(alice):
    store.folder_create(account=alice, name="P/C")
    p = Folder.objects.get(account=alice, name="P")
    store.folder_delete(account=alice, folder=p)
    placeholder = Folder.objects.get(account=alice, name="P")
    inbox = Folder.objects.get(account=alice, name="INBOX")
    with pytest.raises(store.FolderNotFound):
        store.message_append(account=alice, folder=placeholder, raw=make_message())
    entry = store.message_append(account=alice, folder=inbox, raw=make_message())
    for service in (store.message_copy, store.message_move):
        with pytest.raises(store.FolderNotFound):
            service(account=alice, source=inbox, uids=[entry.uid], target=placeholder)
    with pytest.raises(store.FolderNotFound):
        store.label_add(account=alice, message_ids=[entry.message_id], folder=placeholder)
    assert FolderEntry.objects.filter(folder=inbox).count() == 1
    assert Folder.objects.get(pk=inbox.pk).total_count == 1


def test_a_placeholder_with_children_cannot_be_deleted_and_goes_with_its_last_child(alice):
    store.folder_create(account=alice, name="P/A/B")
    store.folder_create(account=alice, name="P/C")
    store.folder_delete(account=alice, folder=Folder.objects.get(account=alice, name="P"))
    store.folder_delete(account=alice, folder=Folder.objects.get(account=alice, name="P/A"))
    with pytest.raises(store.FolderHasChildren):
        store.folder_delete(account=alice, folder=Folder.objects.get(account=alice, name="P"))
    store.folder_delete(account=alice, folder=Folder.objects.get(account=alice, name="P/A/B"))
    # P/A had only P/A/B: it goes, and P stays for P/C.
    assert [n for n in names(alice) if n.startswith("P")] == ["P", "P/C"]
    store.folder_rename(account=alice, folder=Folder.objects.get(account=alice, name="P/C"), new_name="Q")
    assert not any(n.startswith("P") for n in names(alice))


def test_create_of_a_placeholder_name_revives_it_with_a_new_uidvalidity(alice):
    store.folder_create(account=alice, name="R/S")
    old = Folder.objects.get(account=alice, name="R")
    store.folder_delete(account=alice, folder=old)
    placeholder = Folder.objects.get(account=alice, name="R")
    revived = store.folder_create(account=alice, name="R")
    assert revived.pk == placeholder.pk and not revived.noselect
    assert revived.uidvalidity > placeholder.uidvalidity > old.uidvalidity
    store.message_append(account=alice, folder=revived, raw=make_message())
    assert Folder.objects.get(pk=revived.pk).total_count == 1
    with pytest.raises(store.FolderExists):
        store.folder_create(account=alice, name="R")


def test_subscriptions_are_names_kept_by_delete_and_moved_by_rename(alice):
    from mailcore.models import Subscription

    def subscribed() -> set[str]:
        return set(Subscription.objects.filter(account=alice).values_list("name", flat=True))

    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= subscribed()
    store.folder_subscribe(account=alice, name="Not/There", subscribed=True)
    folder = store.folder_create(account=alice, name="Old/Inner")
    assert "Old/Inner" in subscribed() and "Old" not in subscribed()
    store.folder_rename(account=alice, folder=Folder.objects.get(account=alice, name="Old"), new_name="New")
    assert "New/Inner" in subscribed() and "Old/Inner" not in subscribed()
    folder.refresh_from_db()
    store.folder_delete(account=alice, folder=folder)
    assert "New/Inner" in subscribed() and "Not/There" in subscribed()
    assert store.folder_subscribe(account=alice, name="inbox", subscribed=False)
    assert "INBOX" not in subscribed()
    assert not store.folder_subscribe(account=alice, name="INBOX", subscribed=False)

