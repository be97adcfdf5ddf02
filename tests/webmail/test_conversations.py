"""The conversation list: one row per thread in the folder, keyset paged, actions on threads."""

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
from tests.webmail.conftest import folder_of
from webmail.conversations import participants, recipients_label

pytestmark = pytest.mark.django_db


def _thread(account: Account, folder: Folder, subject: str, senders: list[str], *, start: timezone.datetime,
            attach_at: int | None = None) -> list[Message]:
    """A thread of ``len(senders)`` messages, one a minute from ``start``, replying to each other."""
    out: list[Message] = []
    previous: list[str] = []
    for i, sender in enumerate(senders):
        mid = f"{subject.replace(' ', '-')}-{i}@example.org"
        headers = ""
        if previous:
            headers = f"In-Reply-To: <{previous[-1]}>\r\nReferences: {' '.join(f'<{p}>' for p in previous)}\r\n"
        raw = make_message(subject=("Re: " if i else "") + subject, sender=sender, message_id=mid,
                           body=f"message {i} of {subject}\r\n", extra_headers=headers)
        if attach_at == i:
            raw = raw.replace(b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
                              b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                              b"Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
                              b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
                              b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n") \
                .replace(f"message {i} of {subject}\r\n".encode(), b"")
        target = folder_of(account, Folder.SpecialUse.SENT) if sender == account.address else folder
        appended = store.message_append(account=account, folder=target, raw=raw,
                                        flags=["\\Seen"] if sender == account.address else [],
                                        internal_date=start + timedelta(minutes=i))
        out.append(Message.objects.get(pk=appended.message_id))
        previous.append(mid)
    return out


def _conversations(client: Client, folder: Folder, after: str = "") -> tuple[list, str]:
    response = client.get(f"/f/{folder.pk}/list/" + (f"?after={after}" if after else ""))
    return response.context["page"].conversations, response.context["next_after"]


def test_participants_name_people_once_oldest_first_with_me() -> None:
    own = {"alice@a.test"}
    assert participants([("Bob Stone", "bob@b.test")], own) == ["Bob Stone"]
    assert participants([("", "alice@a.test")], own) == ["me"]
    assert participants([("Bob Stone", "bob@b.test"), ("Alice", "ALICE@a.test"), ("Bob S", "bob@b.test")],
                        own) == ["Bob", "me"]
    many = [("Ann A", "a@x"), ("", "bea@x"), ("Cy C", "c@x"), ("Di D", "d@x"), ("Ed E", "e@x")]
    assert participants(many, own) == ["Ann", "…", "Di", "Ed"]
    assert participants([], own) == ["(unknown sender)"]


def test_sent_rows_name_the_recipients() -> None:
    assert recipients_label("Bob Stone <bob@b.test>") == ["To: Bob Stone"]
    assert recipients_label("Bob Stone <bob@b.test>, carol@x.test") == ["To: Bob, carol"]
    assert recipients_label("a@x, b@x, c@x, d@x") == ["To: a, b, c…"]
    assert recipients_label("") == ["To: (no recipient)"]


def test_a_thread_is_one_row_with_count_people_latest_preview_unread_star_and_attachment(
    alice_client: Client, alice: Account
) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    start = timezone.now() - timedelta(hours=2)
    lunch = _thread(alice, inbox, "Lunch plans", ["bob@b.test", "alice@a.test", "carol@example.org"],
                    start=start, attach_at=0)
    store.flags_store(account=alice, folder=inbox, uids=list(FolderEntry.objects.filter(
        folder=inbox, message=lunch[0]).values_list("uid", flat=True)), mode="add", flags=["\\Seen", "\\Flagged"])
    solo = _thread(alice, inbox, "Solo", ["dan@example.org"], start=start + timedelta(hours=1))
    store.flags_store(account=alice, folder=inbox, uids=list(FolderEntry.objects.filter(
        folder=inbox, message=solo[0]).values_list("uid", flat=True)), mode="add", flags=["\\Seen"])

    rows, _ = _conversations(alice_client, inbox)
    assert [r.message.pk for r in rows] == [solo[0].pk, lunch[2].pk]  # newest conversation first
    solo_row, lunch_row = rows
    assert (lunch_row.count, lunch_row.unread, lunch_row.flagged, lunch_row.attachments) == (3, True, True, True)
    assert lunch_row.names == ["Carol", "me", "Carol"]  # make_message names every sender "Carol"
    assert (solo_row.count, solo_row.unread, solo_row.flagged, solo_row.attachments) == (1, False, False, False)

    page = alice_client.get(f"/f/{inbox.pk}/").content.decode()
    assert page.count('name="ids"') == 2
    assert f'value="t{lunch[0].thread_id}"' in page
    assert '<span class="count" aria-label="3 messages">3</span>' in page
    assert "message 2 of Lunch plans" in page and "message 0 of Lunch plans" not in page
    row_start = page.rindex("<tr", 0, page.index(f'data-key="t{lunch[0].thread_id}"'))
    lunch_html = page[row_start: page.index("</tr>", row_start)]
    assert lunch_html.startswith('<tr class="unread"')
    assert "★" in lunch_html and "📎" in lunch_html and "Carol, me, Carol" in lunch_html


def test_participants_are_the_senders_in_order_with_me(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    _thread(alice, inbox, "Plans", ["bob@b.test", "alice@a.test", "carol@example.org"],
            start=timezone.now() - timedelta(hours=1))
    rows, _ = _conversations(alice_client, inbox)
    # make_message names every sender "Carol": first names, oldest first, once per address.
    assert rows[0].names == ["Carol", "me", "Carol"]


def test_conversation_view_off_lists_messages(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    _thread(alice, inbox, "Plans", ["bob@b.test", "carol@example.org"], start=timezone.now() - timedelta(hours=1))
    alice.conversation_view = False
    alice.save()
    response = alice_client.get(f"/f/{inbox.pk}/list/")
    assert response.context["page"].conversations is None
    assert len(response.context["page"].entries) == 2


def _many_threads(account: Account, folder: Folder, threads: int, per_thread: int) -> None:
    """Interleaved threads: message j of every thread, then message j+1 of every thread..."""
    start = timezone.now() - timedelta(days=2)
    n = 0
    for j in range(per_thread):
        for t in range(threads):
            headers = f"In-Reply-To: <t{t}-0@example.org>\r\nReferences: <t{t}-0@example.org>\r\n" if j else ""
            raw = make_message(subject=f"{'Re: ' if j else ''}topic {t}", message_id=f"t{t}-{j}@example.org",
                               extra_headers=headers)
            store.message_append(account=account, folder=folder, raw=raw,
                                 internal_date=start + timedelta(seconds=n // 2))  # ties on received_at
            n += 1


def test_keyset_pages_list_every_conversation_once_newest_first(alice_client: Client, alice: Account) -> None:
    alice.page_size = 4
    alice.save()
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    _many_threads(alice, inbox, threads=11, per_thread=3)
    seen: list[int] = []
    after = ""
    for _ in range(10):
        rows, after = _conversations(alice_client, inbox, after)
        seen += [r.message.thread_id for r in rows]
        assert all(r.count == 3 for r in rows)
        if not after:
            break
    threads = Message.objects.filter(account=alice).values_list("thread_id", flat=True).distinct()
    assert sorted(seen) == sorted(threads) and len(seen) == 11
    latest = {}
    for e in FolderEntry.objects.filter(folder=inbox).select_related("message").order_by("received_at", "uid"):
        latest[e.message.thread_id] = (e.received_at, e.uid)
    assert seen == sorted(latest, key=lambda t: latest[t], reverse=True)


def test_conversation_page_costs_a_constant_number_of_queries(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    _many_threads(alice, inbox, threads=2, per_thread=2)
    with CaptureQueriesContext(connection) as small:
        alice_client.get(f"/f/{inbox.pk}/")
    _many_threads(alice, inbox, threads=60, per_thread=3)
    with CaptureQueriesContext(connection) as big:
        response = alice_client.get(f"/f/{inbox.pk}/")
    assert len(response.context["page"].conversations) == 50
    assert len(big) == len(small)
    assert not any("OFFSET" in q["sql"].upper() for q in big.captured_queries)


def _act(client: Client, folder: Folder, action: str, *keys: str, **extra: str) -> object:
    return client.post(f"/f/{folder.pk}/act/", {"action": action, "ids": list(keys), **extra},
                       headers={"HX-Request": "true"})


def test_actions_apply_to_the_whole_conversation_in_the_folder(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    start = timezone.now() - timedelta(hours=3)
    talk = _thread(alice, inbox, "Talk", ["bob@b.test", "alice@a.test", "carol@example.org"], start=start)
    other = _thread(alice, inbox, "Other", ["dan@example.org", "erin@example.org"], start=start)
    key = f"t{talk[0].thread_id}"
    _act(alice_client, inbox, "read", key)
    assert Message.objects.filter(pk__in=[talk[0].pk, talk[2].pk], seen=True).count() == 2
    assert not Message.objects.filter(pk__in=[m.pk for m in other], seen=True).exists()
    _act(alice_client, inbox, "star", key)
    assert Message.objects.filter(pk__in=[talk[0].pk, talk[2].pk], flagged=True).count() == 2
    _act(alice_client, inbox, "archive", key, f"t{other[0].thread_id}")
    archive = folder_of(alice, Folder.SpecialUse.ARCHIVE)
    assert set(FolderEntry.objects.filter(folder=archive).values_list("message_id", flat=True)) == \
        {talk[0].pk, talk[2].pk, *(m.pk for m in other)}
    # The reply in Sent stays where it is: actions touch the conversation in this folder only.
    assert FolderEntry.objects.get(message=talk[1]).folder.special_use == Folder.SpecialUse.SENT


def test_move_delete_and_spam_of_conversations(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    start = timezone.now() - timedelta(hours=3)
    a = _thread(alice, inbox, "A", ["bob@b.test", "carol@example.org"], start=start)
    b = _thread(alice, inbox, "B", ["bob@b.test", "carol@example.org"], start=start)
    c = _thread(alice, inbox, "C", ["bob@b.test", "carol@example.org"], start=start)
    work = store.folder_create(account=alice, name="Work")
    _act(alice_client, inbox, "move", f"t{a[0].thread_id}", target=str(work.pk))
    _act(alice_client, inbox, "delete", f"t{b[0].thread_id}")
    _act(alice_client, inbox, "spam", f"t{c[0].thread_id}")
    where = {m.pk: FolderEntry.objects.get(message=m).folder.name for m in [*a, *b, *c]}
    assert [where[m.pk] for m in a] == ["Work"] * 2
    assert [where[m.pk] for m in b] == ["Trash"] * 2
    assert [where[m.pk] for m in c] == ["Junk"] * 2
    trash = folder_of(alice, Folder.SpecialUse.TRASH)
    rows, _ = _conversations(alice_client, trash)
    assert [r.count for r in rows] == [2]  # in Trash, only what is in Trash counts


def test_thread_keys_of_another_account_are_ignored(mallory_client: Client, mallory: Account, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    talk = _thread(alice, inbox, "Secret", ["bob@b.test", "carol@example.org"], start=timezone.now())
    mine = folder_of(mallory, Folder.SpecialUse.INBOX)
    store.message_append(account=mallory, folder=mine, raw=make_message(subject="mine"))
    _act(mallory_client, mine, "delete", f"t{talk[0].thread_id}", "t", "tx", "m", "t99999999999999999999")
    assert all(FolderEntry.objects.get(message=m).folder_id == inbox.pk for m in talk)
    assert FolderEntry.objects.filter(folder=mine).count() == 1


def test_drafts_stay_one_row_each(alice_client: Client, alice: Account) -> None:
    drafts = folder_of(alice, Folder.SpecialUse.DRAFTS)
    for i in range(2):
        store.message_append(account=alice, folder=drafts, raw=make_message(subject="Re: same", sender="alice@a.test",
                             message_id=f"d{i}@a.test", extra_headers="In-Reply-To: <x@example.org>\r\n"),
                             flags=["\\Draft", "\\Seen"])
    response = alice_client.get(f"/f/{drafts.pk}/list/")
    assert response.context["page"].conversations is None and len(response.context["page"].entries) == 2


def test_the_conversation_page_toolbar_acts_on_the_thread_in_its_folder(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    talk = _thread(alice, inbox, "Talk", ["bob@b.test", "alice@a.test", "carol@example.org"],
                   start=timezone.now() - timedelta(hours=1))
    page = alice_client.get(f"/m/{talk[2].pk}/?folder={inbox.pk}").content.decode()
    assert f'name="ids" value="t{talk[0].thread_id}"' in page
    response = alice_client.post(f"/f/{inbox.pk}/act/", {"action": "star", "ids": f"t{talk[0].thread_id}",
                                                         "message": str(talk[2].pk), "back": "message"})
    assert response.status_code == 302 and response["Location"] == f"/m/{talk[2].pk}/?folder={inbox.pk}"
    assert Message.objects.filter(pk__in=[talk[0].pk, talk[2].pk], flagged=True).count() == 2
    assert ">Remove star</button>" in alice_client.get(response["Location"]).content.decode()
    # Marking unread goes back to the list: showing the conversation would read it again.
    response = alice_client.post(f"/f/{inbox.pk}/act/", {"action": "unread", "ids": f"t{talk[0].thread_id}",
                                                         "message": str(talk[2].pk), "back": "message"})
    assert response["Location"] == f"/f/{inbox.pk}/"
    assert not Message.objects.filter(pk__in=[talk[0].pk, talk[2].pk], seen=True).exists()
    alice_client.post(f"/f/{inbox.pk}/act/", {"action": "archive", "ids": f"t{talk[0].thread_id}",
                                              "message": str(talk[2].pk), "back": "message"})
    assert {FolderEntry.objects.get(message=m).folder.name for m in (talk[0], talk[2])} == {"Archive"}
    assert FolderEntry.objects.get(message=talk[1]).folder.special_use == Folder.SpecialUse.SENT


def test_with_conversation_view_off_the_toolbar_acts_on_the_message(alice_client: Client, alice: Account) -> None:
    alice.conversation_view = False
    alice.save()
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    talk = _thread(alice, inbox, "Talk", ["bob@b.test", "carol@example.org"], start=timezone.now())
    page = alice_client.get(f"/m/{talk[1].pk}/?folder={inbox.pk}").content.decode()
    assert f'name="ids" value="{talk[1].pk}"' in page


def test_the_conversation_page_links_the_newer_and_older_rows_of_the_list(alice_client: Client, alice: Account) -> None:
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    start = timezone.now() - timedelta(hours=5)
    first = _thread(alice, inbox, "First", ["bob@b.test"], start=start)
    talk = _thread(alice, inbox, "Talk", ["bob@b.test", "carol@example.org", "dan@example.org"],
                   start=start + timedelta(minutes=30))
    last = _thread(alice, inbox, "Last", ["erin@example.org"], start=start + timedelta(hours=2))
    # Opened from any message of the thread, the neighbours are those of the thread's row.
    for message in talk:
        page = alice_client.get(f"/m/{message.pk}/?folder={inbox.pk}").content.decode()
        assert f'href="/m/{last[0].pk}/?folder={inbox.pk}" class="button newer"' in page
        assert f'href="/m/{first[0].pk}/?folder={inbox.pk}" class="button older"' in page
    page = alice_client.get(f"/m/{last[0].pk}/?folder={inbox.pk}").content.decode()
    assert 'class="button newer"' not in page and f'href="/m/{talk[2].pk}/?folder={inbox.pk}" class="button older"' in page
    alice.conversation_view = False
    alice.save()
    page = alice_client.get(f"/m/{talk[1].pk}/?folder={inbox.pk}").content.decode()
    assert f'href="/m/{talk[2].pk}/?folder={inbox.pk}" class="button newer"' in page
    assert f'href="/m/{talk[0].pk}/?folder={inbox.pk}" class="button older"' in page


def test_sent_conversation_rows_say_to_whom(alice_client: Client, alice: Account) -> None:
    alice_client.post("/compose/", {"to": "Dan Brown <dan@x.example>", "subject": "Hi", "body": "Hello"})
    sent = folder_of(alice, Folder.SpecialUse.SENT)
    rows, _ = _conversations(alice_client, sent)
    assert [r.names for r in rows] == [["To: Dan Brown"]]


def test_an_alias_of_another_tenant_pointing_at_alice_is_not_me(
    alice_client: Client, alice: Account, bob: Account
) -> None:
    # Bob's tenant runs b.test and may point any of its aliases at alice@a.test. That must not
    # make messages from that alias show as alice's own ("me"), nor turn a reply to it around
    # to the original's other recipients.
    store.alias_create(address="ceo@b.test", destinations=[alice.address])
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    raw = make_message(subject="Wire the money", sender="ceo@b.test", to="alice@a.test, victim@example.org")
    appended = store.message_append(account=alice, folder=inbox, raw=raw)
    rows, _ = _conversations(alice_client, inbox)
    assert [r.names for r in rows] == [["Carol"]]
    reply = alice_client.get(f"/compose/?reply={appended.message_id}")
    assert reply.context["form"].initial["to"] == "Carol <ceo@b.test>"


def test_a_conversation_counts_each_message_once_and_none_in_trash(alice_client: Client, alice: Account) -> None:
    """Counted: the thread's messages in this folder and in every other folder but Trash and Junk
    (a reply in Sent), each once however many folders it stands in."""
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    trash = folder_of(alice, Folder.SpecialUse.TRASH)
    talk = _thread(alice, inbox, "Budget", ["bob@b.test", "carol@example.org", "alice@a.test", "dan@example.org"],
                   start=timezone.now() - timedelta(hours=1))
    work = store.folder_create(account=alice, name="Work")
    store.label_add(account=alice, message_ids=[talk[0].pk], folder=work)
    store.message_move(account=alice, source=inbox, target=trash,
                       uids=[FolderEntry.objects.get(folder=inbox, message=talk[1]).uid])
    rows, _ = _conversations(alice_client, inbox)
    assert [(r.count, r.names) for r in rows] == [(3, ["Carol", "me", "Carol"])]  # bob, me (Sent), dan
    rows, _ = _conversations(alice_client, trash)
    assert [r.count for r in rows] == [1]


def _newest_of_each_thread(folder: Folder) -> list[int]:
    """The conversation list's rows by definition, from the messages' threads (what the page
    query joined to before the entries carried the thread): entry pks, newest first."""
    rows, listed = [], set()
    for entry in FolderEntry.objects.filter(folder=folder).select_related("message").order_by("-received_at", "-uid"):
        thread = entry.message.thread_id
        if thread is None or thread not in listed:
            rows.append(entry.pk)
            listed.add(thread)
    return rows


def test_the_page_query_lists_the_newest_entry_of_each_thread_at_every_cursor(alice: Account) -> None:
    """``folder_page``'s query and ``neighbours`` agree with the definition from the messages'
    threads on every page, from the top and from each row's cursor, and for every row's
    neighbours, with threads interleaved, lone messages, equal dates (the uid breaks the tie),
    and entries that COPY, MOVE and a label put there."""
    from webmail import selectors

    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    archive = store.folder_create(account=alice, name="Archive 2026")
    start = timezone.now() - timedelta(days=3)
    threads = [_thread(alice, inbox, f"topic {n}", ["carol@example.org", "dan@example.org"] * (n % 3 + 1),
                       start=start + timedelta(minutes=n * 2)) for n in range(4)]
    same = start + timedelta(hours=5)
    for i in range(3):
        store.message_append(account=alice, folder=inbox, raw=make_message(subject=f"lone {i}"), internal_date=same)
    # An IMAP COPY of an old message of topic 1 into the same folder: a new message of that
    # thread, with the date of the original and a newer uid.
    store.message_copy(account=alice, source=inbox, target=inbox,
                       uids=[FolderEntry.objects.get(folder=inbox, message=threads[1][0]).uid])
    # topic 3's newest message moved away and back, and topic 0's labelled into the Inbox from
    # the archive: the thread's rows come and go with them.
    newest = FolderEntry.objects.get(folder=inbox, message=threads[3][-1])
    store.message_move(account=alice, source=inbox, target=archive, uids=[newest.uid])
    store.message_move(account=alice, source=archive, target=inbox,
                       uids=[FolderEntry.objects.get(folder=archive, message=threads[3][-1]).uid])
    lone = store.message_append(account=alice, folder=archive, raw=make_message(
        subject="Re: topic 0", sender="carol@example.org", extra_headers="In-Reply-To: <topic-0-0@example.org>\r\n"),
        internal_date=start + timedelta(hours=1))
    store.label_add(account=alice, message_ids=[lone.message_id], folder=inbox)

    entries = list(FolderEntry.objects.filter(folder=inbox).order_by("-received_at", "-uid"))
    assert len(entries) == 19
    newest_of_thread = _newest_of_each_thread(inbox)
    assert len(newest_of_thread) == 7
    message_of = {e.pk: e.message_id for e in entries}
    for conversations in (True, False):
        listed = newest_of_thread if conversations else [e.pk for e in entries]
        for cursor in [None, *(selectors.Cursor(received_at=e.received_at, uid=e.uid) for e in entries)]:
            below = [e.pk for e in entries if cursor is None or (e.received_at, e.uid) < (cursor.received_at, cursor.uid)]
            want = [pk for pk in listed if pk in below][:4]
            page = selectors.folder_page(inbox, after=cursor, size=3, conversations=conversations)
            assert [e.pk for e in page.entries] == want[:3]
            assert (page.next_cursor is not None) == (len(want) == 4)
            assert all(e.message.pk == e.message_id for e in page.entries)
        # Opened from any message, the neighbours are those of its row (its thread's, listed).
        row_of = {}
        for entry in entries:
            thread = entry.message.thread_id if conversations else None
            row_of[entry.pk] = next(pk for pk in listed if pk == entry.pk or (
                thread is not None and FolderEntry.objects.get(pk=pk).message.thread_id == thread))
        for entry in entries:
            at = listed.index(row_of[entry.pk])
            newer = message_of[listed[at - 1]] if at > 0 else None
            older = message_of[listed[at + 1]] if at + 1 < len(listed) else None
            assert selectors.neighbours(inbox, entry.message, conversations=conversations) == (newer, older)


def test_a_thread_merged_into_another_is_one_conversation_row(alice_client: Client, alice: Account) -> None:
    """Nothing merges threads today; whatever does changes the messages' thread, and the
    entries follow in the same statement (entry_message_thread_fk ON UPDATE CASCADE)."""
    inbox = folder_of(alice, Folder.SpecialUse.INBOX)
    start = timezone.now() - timedelta(hours=2)
    first = _thread(alice, inbox, "Plans", ["bob@b.test", "carol@example.org"], start=start)
    second = _thread(alice, inbox, "Plans again", ["carol@example.org"] * 3, start=start + timedelta(minutes=30))
    rows, _ = _conversations(alice_client, inbox)
    assert [r.count for r in rows] == [3, 2]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE mailcore_message SET thread_id = %s WHERE account_id = %s AND thread_id = %s",
                       [first[0].thread_id, alice.pk, second[0].thread_id])
    rows, _ = _conversations(alice_client, inbox)
    assert [(r.count, r.message.pk, r.key) for r in rows] == [(5, second[-1].pk, f"t{first[0].thread_id}")]
