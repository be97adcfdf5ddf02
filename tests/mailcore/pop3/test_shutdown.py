"""Closing the POP3 service closes the database connection of every thread its pool started,
busy ones included: none is left open for the garbage collector to find (a ResourceWarning,
fatal under ``filterwarnings = error``, in some later and unrelated test)."""

from __future__ import annotations

import poplib
import threading
import time

import pytest
from django.db import transaction

from mailcore import store
from mailcore.models import Account
from tests.conftest import make_message
from tests.mailcore.serving import other_backends

from .conftest import ServerThread, connect, login

pytestmark = pytest.mark.django_db(transaction=True)


def _quit_cut_short(client: poplib.POP3) -> None:
    # The service closes the session before its UPDATE state ends.
    with pytest.raises((poplib.error_proto, OSError)):
        client.quit()


def test_a_pool_thread_busy_at_shutdown_still_has_its_connection_closed(alice: Account) -> None:
    store.message_deliver(raw=make_message(), recipients=["alice@a.test"])
    server = ServerThread()
    running = server.start(allow_plaintext_on_loopback=True, leave_on_server=False)
    first = login(running.port)
    first.dele(1)
    closing = threading.Thread(target=server.close)
    with transaction.atomic():
        # QUIT's expunge waits for this lock in a pool thread; a second login meanwhile makes
        # the pool start another thread.
        Account.objects.select_for_update().get(pk=alice.pk)
        quitting = threading.Thread(target=_quit_cut_short, args=(first,))
        quitting.start()
        time.sleep(0.5)
        second = connect(running.port)
        second.user("nobody@a.test")
        with pytest.raises(poplib.error_proto):
            second.pass_("wrong")
        second.close()
        closing.start()  # waits for the QUIT, gives up on it after its grace period
        time.sleep(7)
    closing.join(30)
    quitting.join(10)
    first.close()
    deadline = time.monotonic() + 5
    while other_backends() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other_backends() == 0
