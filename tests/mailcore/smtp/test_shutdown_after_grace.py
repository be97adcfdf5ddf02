"""``listener_stop``: a message being stored when the grace period ends still gets its 250 (its
commit cannot be stopped; a 421 instead would make the client send it again: a duplicate)."""

from __future__ import annotations

import pytest

from mailcore.models import Folder, Message
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import (
    RawClient,
    ServerThread,
    StartServer,
    folder_row_held,
    stop_while_storing,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_message_still_being_stored_after_the_grace_gets_its_250_then_421(
    smtp_servers: ServerThread, start_server: StartServer, alice
) -> None:
    mx = start_server()
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    with folder_row_held(inbox.pk):  # the delivery's UID allocation waits on it
        client = RawClient(mx)
        assert client.command(b"EHLO client.example")[:3] == b"250"
        assert client.command(b"MAIL FROM:<dave@example.org>")[:3] == b"250"
        assert client.command(b"RCPT TO:<alice@a.test>")[:3] == b"250"
        assert client.command(b"DATA")[:3] == b"354"
        client.send(make_message(sender="dave@example.org") + b".\r\n")
        stopping = stop_while_storing(smtp_servers, mx)
    assert client.reply()[:3] == b"250"
    assert client.reply()[:3] == b"421"
    stopping.result(10)
    assert Message.objects.filter(account=alice).count() == 1
