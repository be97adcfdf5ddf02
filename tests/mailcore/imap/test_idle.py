"""IDLE across processes: changes made through the store elsewhere reach an idling client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def idling(imap_port: int, alice: Account) -> Iterator[IMAPClient]:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="first"))
    store.message_append(account=alice, folder=inbox, raw=make_message(subject="second"))
    with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
        client.login("alice@a.test", PASSWORD)
        client.select_folder("INBOX")
        client.idle()
        time.sleep(0.2)  # the server has subscribed before the +; let the listener settle
        yield client
        client.idle_done()


def _wait_for(client: IMAPClient, predicate: object, limit: float = 1.0) -> list[tuple[object, ...]]:
    start = time.monotonic()
    seen: list[tuple[object, ...]] = []
    while time.monotonic() - start < limit:
        seen += client.idle_check(timeout=max(0.05, limit - (time.monotonic() - start)))
        if any(predicate(r) for r in seen):  # type: ignore[operator]
            return seen
    raise AssertionError(f"nothing arrived within {limit}s: {seen}")


def test_delivery_appears_as_exists_within_a_second(idling: IMAPClient) -> None:
    store.message_deliver(raw=make_message(subject="hot news"), recipients=["alice@a.test"])
    responses = _wait_for(idling, lambda r: r[1:] == (b"EXISTS",))
    assert (3, b"EXISTS") in responses


def test_flag_change_appears_as_fetch_flags(idling: IMAPClient, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.flags_store(account=alice, folder=inbox, uids=[2], mode="add", flags=["\\Flagged"])
    responses = _wait_for(idling, lambda r: len(r) > 1 and r[1] == b"FETCH")
    fetch = next(r for r in responses if r[1] == b"FETCH")
    assert fetch[0] == 2 and b"\\Flagged" in fetch[2][fetch[2].index(b"FLAGS") + 1]


def test_expunge_appears(idling: IMAPClient, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.folder_expunge(account=alice, folder=inbox, uids=[1], only_deleted=False)
    responses = _wait_for(idling, lambda r: r[1:] == (b"EXPUNGE",))
    assert (1, b"EXPUNGE") in responses
