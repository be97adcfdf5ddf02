from __future__ import annotations

import imaplib

import pytest

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import make_message

pytestmark = pytest.mark.django_db(transaction=True)


def test_select_fetch_roundtrip(client: imaplib.IMAP4, alice: Account) -> None:
    raw = make_message(subject="Smoke")
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=raw)
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = client.fetch("1", "(FLAGS BODY.PEEK[] ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK"
    print(data)
    assert data[0][1] == raw
