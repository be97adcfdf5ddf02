"""Conversations by subject: a "Re:" without references joins a thread only through a shared
participant, so mallory cannot slip a message into alice's conversation by its subject alone."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry, Message
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


# The thread copied onto each folder entry (FolderEntry.thread_id, migration 0011), which the
# conversation list reads: every writer sets it, and the database keeps it equal to the message's.


def _entry_threads(account: Account) -> dict[tuple[str, int], tuple[int | None, int | None]]:
    """(folder name, uid) → (the entry's thread, its message's thread)."""
    rows = FolderEntry.objects.filter(folder__account=account).values_list(
        "folder__name", "uid", "thread_id", "message__thread_id")
    return {(name, uid): (entry, message) for name, uid, entry, message in rows}


def _uid(folder: Folder, message_id: int) -> int:
    return FolderEntry.objects.get(folder=folder, message_id=message_id).uid


def test_every_writer_gives_an_entry_its_messages_thread(alice: Account, invoice: Message) -> None:
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    sent = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.SENT)
    archive = store.folder_create(account=alice, name="Archive 2026")
    keep = store.folder_create(account=alice, name="Keep")
    # A reply that arrives before what it answers: the late original joins the reply's thread.
    early = deliver(make_message(subject="Re: Lunch", sender="bob@b.test",
                                 extra_headers="In-Reply-To: <lunch@b.test>\r\n"))
    late = deliver(make_message(subject="Lunch", sender="bob@b.test", message_id="lunch@b.test"))
    assert late.thread_id == early.thread_id == early.pk
    reply = deliver(make_message(subject="Re: Invoice", sender="bob@b.test",
                                 extra_headers="In-Reply-To: <invoice@b.test>\r\n"))
    own = store.message_append(account=alice, folder=sent, raw=make_message(
        subject="Re: Invoice", sender="alice@a.test", to="bob@b.test",
        extra_headers="In-Reply-To: <invoice@b.test>\r\n"))
    copied = store.message_copy(account=alice, source=inbox, uids=[_uid(inbox, invoice.pk)], target=archive)
    store.label_add(account=alice, message_ids=[own.message_id, late.pk], folder=keep)
    moved = store.message_move(account=alice, source=inbox, uids=[_uid(inbox, reply.pk)], target=archive)

    threads = _entry_threads(alice)
    assert len(threads) == 8
    assert all(entry == message is not None for entry, message in threads.values()), threads
    invoice_thread, lunch_thread = invoice.thread_id, early.thread_id
    assert threads["Archive 2026", copied[0][1]][0] == invoice_thread  # IMAP COPY: a new message
    assert threads["Archive 2026", moved[0][1]][0] == invoice_thread  # MOVE: a new standing
    assert threads["Sent", own.uid][0] == invoice_thread  # APPEND
    assert sorted(thread for (name, _), (thread, _) in threads.items() if name == "Keep") == sorted(
        [invoice_thread, lunch_thread])  # label


def test_the_database_refuses_an_entry_whose_thread_is_missing_or_not_its_messages(invoice: Message) -> None:
    for wrong in ("thread_id + 1", "NULL"):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE mailcore_folderentry SET thread_id = {wrong} WHERE message_id = %s",  # noqa: S608
                           [invoice.pk])
    assert FolderEntry.objects.get(message=invoice).thread_id == invoice.thread_id


def test_a_thread_merged_into_another_carries_every_entry_along(alice: Account, invoice: Message) -> None:
    """Nothing merges threads today; whatever does (one UPDATE of the messages) moves their
    entries in every folder in the same statement (entry_message_thread_fk ON UPDATE CASCADE)."""
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    keep = store.folder_create(account=alice, name="Keep")
    other = deliver(make_message(subject="Invoice, second copy", sender="bob@b.test"))
    store.label_add(account=alice, message_ids=[other.pk], folder=keep)
    assert other.thread_id != invoice.thread_id
    with connection.cursor() as cursor:
        cursor.execute("UPDATE mailcore_message SET thread_id = %s WHERE account_id = %s AND thread_id = %s",
                       [invoice.thread_id, alice.pk, other.thread_id])
    assert set(FolderEntry.objects.filter(message=other).values_list("folder_id", "thread_id")) == {
        (inbox.pk, invoice.thread_id), (keep.pk, invoice.thread_id)}
