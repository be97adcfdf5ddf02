"""A folder deleted over IMAP while it has children stays as a \\Noselect placeholder: the web UI
shows it (its children hang below it) but never offers it as a place for messages."""

from __future__ import annotations

import pytest
from django.test import Client

from mailcore import store
from mailcore.models import Account, Folder
from tests.webmail.conftest import Deliver, folder_of

pytestmark = pytest.mark.django_db


def test_a_placeholder_is_listed_but_is_no_move_target(alice_client: Client, alice: Account,
                                                       deliver: Deliver) -> None:
    message = deliver()
    store.folder_create(account=alice, name="Work/Clients")
    store.folder_delete(account=alice, folder=Folder.objects.get(account=alice, name="Work"))
    placeholder = Folder.objects.get(account=alice, name="Work")
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    page = alice_client.get(f"/f/{inbox.pk}/").content.decode()
    assert '<span class="name">Work</span>' in page and '<span class="name">Clients</span>' in page
    assert f'<option value="{placeholder.pk}">' not in page
    assert f'<option value="{Folder.objects.get(account=alice, name="Work/Clients").pk}">' in page
    response = alice_client.post(f"/f/{inbox.pk}/act/", {"action": "move", "ids": [str(message.pk)],
                                                         "target": str(placeholder.pk)})
    assert response.status_code == 400
    assert inbox.entries.count() == 1


def test_a_target_gone_between_lookup_and_move_is_a_clear_404_and_nothing_moves(
    alice_client: Client, alice: Account, deliver: Deliver
) -> None:
    from django.db import connection

    message = deliver()
    gone = store.folder_create(account=alice, name="Gone")
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    # The folder is looked up, then deleted (or left \Noselect) by another session before the move
    # takes its UIDs: the database refuses it there, as for a row that no longer exists.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_folder_gone() RETURNS trigger AS $$ BEGIN"
            f" IF NEW.id = {gone.pk} THEN RETURN NULL; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute("CREATE TRIGGER test_folder_gone BEFORE UPDATE ON mailcore_folder"
                       " FOR EACH ROW EXECUTE FUNCTION test_folder_gone()")
    response = alice_client.post(f"/f/{inbox.pk}/act/", {"action": "move", "ids": [str(message.pk)],
                                                         "target": str(gone.pk)})
    assert response.status_code == 404 and b"nothing was changed" in response.content
    assert list(inbox.entries.values_list("message_id", flat=True)) == [message.pk]
    assert not gone.entries.exists()
