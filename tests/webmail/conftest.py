"""Fixtures of the web UI tests: signed-in clients and mail in alice's folders."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from mailcore import store
from mailcore.models import Account, Folder, Message
from tests.conftest import PASSWORD, make_message


def folder_of(account: Account, special_use: str) -> Folder:
    return Folder.objects.get(account=account, special_use=special_use)


@pytest.fixture
def alice_client(alice: Account) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def mallory_client(mallory: Account) -> Client:
    client = Client()
    client.force_login(mallory)
    return client


Deliver = Callable[..., Message]


@pytest.fixture
def deliver() -> Deliver:
    """Deliver a message to a local address through the store, as SMTP would; returns alice's copy."""

    def _deliver(raw: bytes | None = None, to: str = "alice@a.test", **kwargs: str) -> Message:
        raw = raw or make_message(to=to, **kwargs)
        result = store.message_deliver(raw=raw, recipients=[store.recipient_resolve(to)])
        assert result.recipients[0].ok, result
        account = Account.objects.get(address=to)
        return Message.objects.filter(account=account).order_by("-pk").first()  # type: ignore[return-value]

    return _deliver


__all__ = ["PASSWORD", "folder_of"]
