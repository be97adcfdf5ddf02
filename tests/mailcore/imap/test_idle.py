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


def test_a_later_session_of_the_account_gets_events_too(imap_port: int, alice: Account) -> None:
    """The listener keeps the account's subscription after a LOGOUT; the next login uses it."""
    for _ in range(2):
        with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
            client.login("alice@a.test", PASSWORD)
            client.select_folder("INBOX")
            client.idle()
            time.sleep(0.2)
            store.message_deliver(raw=make_message(subject="again"), recipients=["alice@a.test"])
            assert _wait_for(client, lambda r: r[1:] == (b"EXISTS",))
            client.idle_done()


def test_events_arrive_again_after_the_redis_connection_drops(idling: IMAPClient, settings) -> None:  # type: ignore[no-untyped-def]
    import redis

    from mailcore.imap.notify import CLIENT_NAME

    admin = redis.Redis.from_url(settings.REDIS_URL)
    db = admin.connection_pool.connection_kwargs.get("db", 0)
    mine = [c for c in admin.client_list() if c.get("name") == CLIENT_NAME and int(c.get("db", -1)) == db]
    assert mine, "the listener's pub/sub connection"
    for c in mine:
        admin.client_kill_filter(_id=c["id"])
    admin.close()
    time.sleep(0.3)  # the loss is seen; the notifier reconnects within RECONNECT_SECONDS
    store.message_deliver(raw=make_message(subject="after the drop"), recipients=["alice@a.test"])
    responses = _wait_for(idling, lambda r: r[1:] == (b"EXISTS",), limit=3.0)
    assert (3, b"EXISTS") in responses
