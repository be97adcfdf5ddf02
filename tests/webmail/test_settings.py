from __future__ import annotations

import pytest
from django.test import Client

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message
from tests.webmail.conftest import folder_of

pytestmark = pytest.mark.django_db


def test_preferences_are_saved(alice_client: Client, alice: Account) -> None:
    response = alice_client.post("/settings/", {"display_name": "Alice L.", "signature": "Cheers, A.",
                                                "page_size": "25", "time_zone": "Europe/Paris"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.display_name, alice.signature, alice.page_size, alice.conversation_view, alice.time_zone) == (
        "Alice L.", "Cheers, A.", 25, False, "Europe/Paris")


def test_signature_is_prefilled_in_new_messages(alice_client: Client, alice: Account) -> None:
    alice.signature = "Cheers, A."
    alice.save()
    assert "-- \nCheers, A." in alice_client.get("/compose/").content.decode()


def test_bad_preferences_are_refused(alice_client: Client, alice: Account) -> None:
    response = alice_client.post("/settings/", {"page_size": "100000", "time_zone": "Mars/Olympus"})
    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.page_size == 50


def test_password_change_keeps_the_session(alice_client: Client, alice: Account) -> None:
    response = alice_client.post("/settings/password/", {"current": PASSWORD, "new": "a much newer secret",
                                                         "again": "a much newer secret"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a much newer secret")
    assert alice_client.get("/settings/").status_code == 200


def test_password_change_needs_the_current_password(alice_client: Client, alice: Account) -> None:
    response = alice_client.post("/settings/password/", {"current": "wrong", "new": "a much newer secret",
                                                         "again": "a much newer secret"})
    assert response.status_code == 400 and b"not your current password" in response.content


def test_folders_are_created_nested_renamed_and_deleted(alice_client: Client, alice: Account) -> None:
    alice_client.post("/settings/folders/", {"name": "Work"})
    work = Folder.objects.get(account=alice, name="Work")
    alice_client.post("/settings/folders/", {"name": "Clients", "parent": str(work.pk)})
    assert Folder.objects.filter(account=alice, name="Work/Clients").exists()
    alice_client.post(f"/settings/folders/{work.pk}/rename/", {"name": "Job"})
    assert set(Folder.objects.filter(account=alice, special_use="").values_list("name", flat=True)) == {"Job", "Job/Clients"}
    store.message_append(account=alice, folder=Folder.objects.get(account=alice, name="Job/Clients"), raw=make_message())
    alice_client.post(f"/settings/folders/{work.pk}/delete/")
    assert not Folder.objects.filter(account=alice, special_use="").exists()


def test_duplicate_folder_gets_a_clear_message(alice_client: Client, alice: Account) -> None:
    store.folder_create(account=alice, name="Work")
    response = alice_client.post("/settings/folders/", {"name": "Work"})
    assert response.status_code == 400 and b"already exists" in response.content


def test_special_folders_cannot_be_deleted(alice_client: Client, alice: Account) -> None:
    trash = folder_of(alice, Folder.SpecialUse.TRASH)
    alice_client.post(f"/settings/folders/{trash.pk}/delete/")
    assert Folder.objects.filter(pk=trash.pk).exists()


def test_another_accounts_folder_cannot_be_renamed_or_deleted(mallory_client: Client, alice: Account) -> None:
    work = store.folder_create(account=alice, name="Work")
    assert mallory_client.post(f"/settings/folders/{work.pk}/rename/", {"name": "Pwned"}).status_code == 404
    assert mallory_client.post(f"/settings/folders/{work.pk}/delete/").status_code == 404
    assert Folder.objects.filter(pk=work.pk, name="Work").exists()


def test_dates_are_shown_in_the_accounts_time_zone(alice_client: Client, alice: Account) -> None:
    store.message_deliver(raw=make_message(), recipients=["alice@a.test"])
    alice.time_zone = "Asia/Tokyo"
    alice.save()
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    entry = inbox.entries.get()
    from zoneinfo import ZoneInfo

    local = entry.received_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M")
    assert local in alice_client.get(f"/f/{inbox.pk}/").content.decode()


def test_keyboard_shortcuts_setting_decides_whether_the_script_and_help_are_served(alice_client: Client,
                                                                                    alice: Account) -> None:
    page = alice_client.get("/settings/").content.decode()
    assert "webmail/keys.js" in page and 'id="shortcuts-help"' in page and "checked" in page.split(
        'name="keyboard_shortcuts"')[0][-40:] + page.split('name="keyboard_shortcuts"')[1][:60]
    alice_client.post("/settings/", {"display_name": "", "signature": "", "page_size": "50", "time_zone": "UTC",
                                     "conversation_view": "on"})
    alice.refresh_from_db()
    assert alice.keyboard_shortcuts is False and alice.conversation_view is True
    page = alice_client.get("/settings/").content.decode()
    assert "webmail/keys.js" not in page and 'id="shortcuts-help"' not in page
    alice_client.post("/settings/", {"display_name": "", "signature": "", "page_size": "50", "time_zone": "UTC",
                                     "keyboard_shortcuts": "on"})
    alice.refresh_from_db()
    assert alice.keyboard_shortcuts is True
