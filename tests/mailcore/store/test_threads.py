"""Conversations by subject: a "Re:" without references joins a thread only through a shared
participant, so mallory cannot slip a message into alice's conversation by its subject alone."""

from __future__ import annotations

import pytest

from mailcore import store
from mailcore.models import Folder, Message
from tests.conftest import make_message

pytestmark = pytest.mark.django_db


def deliver(raw: bytes) -> Message:
    result = store.message_deliver(raw=raw, recipients=["alice@a.test"])
    return Message.objects.get(pk=result.recipients[0].message_ids[0])


@pytest.fixture
def invoice(alice) -> Message:  # type: ignore[no-untyped-def]
    """bob's "Invoice" to alice, carol in Cc."""
    return deliver(
        make_message(
            subject="Invoice",
            sender="bob@b.test",
            to="alice@a.test",
            message_id="invoice@b.test",
            extra_headers="Cc: Carol <carol@example.org>\r\n",
        )
    )


def test_a_stranger_with_the_same_subject_starts_a_thread_of_its_own(invoice: Message) -> None:
    lure = deliver(make_message(subject="Re: Invoice", sender="mallory@evil.test", to="alice@a.test"))
    assert lure.thread_id == lure.pk != invoice.thread_id


def test_a_stranger_forging_the_accounts_own_address_does_not_join_either(invoice: Message) -> None:
    lure = deliver(make_message(subject="Re: Invoice", sender="alice@a.test", to="alice@a.test"))
    assert lure.thread_id == lure.pk


def test_the_sender_of_the_thread_replying_without_references_joins(invoice: Message) -> None:
    reply = deliver(make_message(subject="RE: invoice", sender="BOB@b.test", to="alice@a.test"))
    assert reply.thread_id == invoice.thread_id


def test_someone_in_cc_replying_without_references_joins(invoice: Message) -> None:
    reply = deliver(make_message(subject="Re: Invoice", sender="carol@example.org", to="alice@a.test"))
    assert reply.thread_id == invoice.thread_id


def test_the_accounts_own_reply_to_a_participant_joins(alice, invoice: Message) -> None:  # type: ignore[no-untyped-def]
    sent = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.SENT)
    raw = make_message(subject="Re: Invoice", sender="alice@a.test", to="bob@b.test")
    store.message_append(account=alice, folder=sent, raw=raw)
    own = Message.objects.filter(account=alice).order_by("-pk").first()
    assert own is not None and own.thread_id == invoice.thread_id


def test_the_accounts_own_message_to_a_stranger_with_the_subject_does_not_join(
    alice, invoice: Message
) -> None:  # type: ignore[no-untyped-def]
    sent = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.SENT)
    raw = make_message(subject="Re: Invoice", sender="alice@a.test", to="dave@example.net")
    store.message_append(account=alice, folder=sent, raw=raw)
    own = Message.objects.filter(account=alice).order_by("-pk").first()
    assert own is not None and own.thread_id == own.pk


def test_a_stranger_that_references_the_thread_still_joins_it(invoice: Message) -> None:
    # References carry a Message-ID the stranger had to be sent: joining by them is fine.
    reply = deliver(
        make_message(
            subject="Re: Invoice",
            sender="mallory@evil.test",
            extra_headers="In-Reply-To: <invoice@b.test>\r\n",
        )
    )
    assert reply.thread_id == invoice.thread_id
