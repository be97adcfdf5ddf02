from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry, Message
from tests.conftest import make_message
from tests.webmail.conftest import Deliver, folder_of
from webmail.selectors import Cursor

pytestmark = pytest.mark.django_db


def test_list_shows_sender_subject_preview_and_bold_unread(alice_client: Client, deliver: Deliver) -> None:
    deliver(subject="Quarterly numbers", body="The numbers are in.\r\n")
    inbox = folder_of(Account.objects.get(address="alice@a.test"), Folder.SpecialUse.INBOX)
    page = alice_client.get(f"/f/{inbox.pk}/").content.decode()
    assert "Quarterly numbers" in page and "Carol" in page and "The numbers are in." in page
    assert 'class="unread"' in page
    assert '<span class="count" aria-label="1 unread">1</span>' in page


def test_folders_are_listed_special_first_then_nested(alice_client: Client, alice: Account) -> None:
    store.folder_create(account=alice, name="Work/Clients")
    store.folder_create(account=alice, name="Apples")
    page = alice_client.get("/", follow=True).content.decode()
    order = [page.index(f'<span class="name">{n}</span>') for n in ("Inbox", "Sent", "Archive", "Apples", "Work", "Clients")]
    assert order == sorted(order)


def test_another_accounts_folder_is_404(mallory_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    assert mallory_client.get(f"/f/{inbox.pk}/").status_code == 404
    assert mallory_client.get(f"/f/{inbox.pk}/list/").status_code == 404
    assert mallory_client.post(f"/f/{inbox.pk}/act/", {"action": "delete"}).status_code == 404


def _fill(account: Account, count: int) -> Folder:
    inbox = folder_of(account, Folder.SpecialUse.INBOX)
    start = timezone.now() - timedelta(days=1)
    for i in range(count):
        store.message_append(account=account, folder=inbox, raw=make_message(subject=f"msg {i:03d}"),
                             internal_date=start + timedelta(seconds=i // 3))  # ties on received_at
    return inbox


def test_keyset_pages_cover_every_message_once_in_order(alice_client: Client, alice: Account) -> None:
    alice.page_size = 10
    alice.save()
    inbox = _fill(alice, 35)
    seen: list[int] = []
    url = f"/f/{inbox.pk}/list/"
    for _ in range(10):
        response = alice_client.get(url)
        seen += [e.message_id for e in response.context["page"].entries]
        nxt = response.context["next_after"]
        if not nxt:
            break
        url = f"/f/{inbox.pk}/list/?after={nxt}"
    expected = list(FolderEntry.objects.filter(folder=inbox).order_by("-received_at", "-uid").values_list("message_id", flat=True))
    assert seen == expected and len(seen) == 35


def test_list_page_costs_a_constant_number_of_queries(alice_client: Client, alice: Account) -> None:
    inbox = _fill(alice, 5)
    with CaptureQueriesContext(connection) as small:
        alice_client.get(f"/f/{inbox.pk}/")
    _fill(alice, 45)
    with CaptureQueriesContext(connection) as big:
        response = alice_client.get(f"/f/{inbox.pk}/")
    assert len(response.context["page"].entries) == 50
    assert len(big) == len(small)
    assert not any("OFFSET" in q["sql"].upper() for q in big.captured_queries)


def test_list_page_query_budget(alice_client: Client, alice: Account, django_assert_max_num_queries: object) -> None:
    inbox = _fill(alice, 60)
    cursor = FolderEntry.objects.filter(folder=inbox).order_by("-received_at", "-uid")[20]
    with django_assert_max_num_queries(6):  # type: ignore[operator]
        alice_client.get(f"/f/{inbox.pk}/list/?after={Cursor(cursor.received_at, cursor.uid).encode()}")


def _act(client: Client, folder: Folder, action: str, *ids: int, htmx: bool = False, **extra: object) -> object:
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(f"/f/{folder.pk}/act/", {"action": action, "ids": [str(i) for i in ids], **extra},
                       headers=headers)


def test_mark_read_unread_and_star(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    m = deliver()
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    _act(alice_client, inbox, "read", m.pk)
    m.refresh_from_db()
    assert m.seen
    _act(alice_client, inbox, "unread", m.pk)
    _act(alice_client, inbox, "star", m.pk)
    m.refresh_from_db()
    assert not m.seen and m.flagged
    inbox.refresh_from_db()
    assert inbox.unseen_count == 1


def test_archive_delete_spam_and_move_go_through_the_store(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    a, b, c, d = (deliver(subject=s) for s in "abcd")
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    work = store.folder_create(account=alice, name="Work")
    _act(alice_client, inbox, "archive", a.pk)
    _act(alice_client, inbox, "delete", b.pk)
    _act(alice_client, inbox, "spam", c.pk)
    _act(alice_client, inbox, "move", d.pk, target=str(work.pk))
    where = {m: FolderEntry.objects.get(message_id=m).folder.name for m in (a.pk, b.pk, c.pk, d.pk)}
    assert where == {a.pk: "Archive", b.pk: "Trash", c.pk: "Junk", d.pk: "Work"}


def test_bulk_action_on_a_selection(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    ids = [deliver(subject=f"s{i}").pk for i in range(3)]
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    response = _act(alice_client, inbox, "read", *ids, htmx=True)
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert Message.objects.filter(pk__in=ids, seen=True).count() == 3


def test_delete_in_trash_is_forever_and_empty_trash(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    a, b, c = (deliver(subject=s) for s in "abc")
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    trash = folder_of(alice, Folder.SpecialUse.TRASH)
    _act(alice_client, inbox, "delete", a.pk, b.pk, c.pk)
    _act(alice_client, trash, "delete", a.pk)
    assert not Message.objects.filter(pk=a.pk).exists()
    alice_client.post(f"/f/{trash.pk}/empty/")
    assert not Message.objects.filter(pk__in=[b.pk, c.pk]).exists()
    trash.refresh_from_db()
    assert trash.total_count == 0


def test_empty_is_refused_outside_trash_and_junk(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    assert alice_client.post(f"/f/{inbox.pk}/empty/").status_code == 400


def test_actions_ignore_another_accounts_message_ids(mallory_client: Client, mallory: Account, alice: Account, deliver: Deliver) -> None:
    m = deliver()
    inbox = folder_of(mallory, Folder.SpecialUse.INBOX)
    _act(mallory_client, inbox, "delete", m.pk)
    assert FolderEntry.objects.get(message=m).folder.account_id == alice.pk


def test_move_to_another_accounts_folder_is_404(mallory_client: Client, mallory: Account, alice: Account) -> None:
    mine = folder_of(mallory, Folder.SpecialUse.INBOX)
    theirs = folder_of(alice, Folder.SpecialUse.ARCHIVE)
    assert _act(mallory_client, mine, "move", 1, target=str(theirs.pk)).status_code == 404  # type: ignore[attr-defined]


def test_actions_need_csrf(alice: Account) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    assert client.post(f"/f/{inbox.pk}/act/", {"action": "read"}).status_code == 403
