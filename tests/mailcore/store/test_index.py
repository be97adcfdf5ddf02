from __future__ import annotations

import pytest
from django.db import connection

from mailcore import store
from mailcore.models import Message
from mailcore.store.index import search_index_pending
from mailcore.tasks import search_index
from tests.conftest import make_message

pytestmark = pytest.mark.django_db

WITH_ATTACHMENT = (
    b"From: Zoe Quartermaine <zoe@example.org>\r\nTo: Alice <alice@a.test>\r\nCc: Bob Bitterly <bob@b.test>\r\n"
    b"Subject: Quarterly figures\r\nMessage-ID: <q@example.org>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
    b"The pangolin numbers are attached.\r\n--b\r\nContent-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="ledger-2026.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    b"JVBERi0xLjQK\r\n--b--\r\n"
)


def matches(query: str) -> list[int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM mailcore_message WHERE search_vector @@ plainto_tsquery('simple', %s) ORDER BY id", [query]
        )
        return [row[0] for row in cur.fetchall()]


def test_delivery_leaves_the_vector_to_the_index_job_which_covers_every_field(alice):
    result = store.message_deliver(raw=WITH_ATTACHMENT, recipients=["alice@a.test"])
    message_id = result.recipients[0].message_ids[0]
    assert Message.objects.get(pk=message_id).search_vector is None
    assert matches("pangolin") == []

    assert search_index_pending() == 1
    for word in ["quarterly", "quartermaine", "zoe@example.org", "bitterly", "ledger-2026.pdf", "pangolin"]:
        assert matches(word) == [message_id], word
    assert matches("absent") == []
    assert search_index_pending() == 0  # nothing left


def test_the_subject_weighs_more_than_the_body(alice):
    in_subject = store.message_deliver(raw=make_message(subject="Walrus", body="nothing\r\n"), recipients=["alice@a.test"])
    in_body = store.message_deliver(raw=make_message(subject="Other", body="a walrus\r\n"), recipients=["alice@a.test"])
    search_index_pending()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM mailcore_message WHERE search_vector @@ to_tsquery('simple', 'walrus') "
            "ORDER BY ts_rank(search_vector, to_tsquery('simple', 'walrus')) DESC"
        )
        ranked = [row[0] for row in cur.fetchall()]
    assert ranked == [in_subject.recipients[0].message_ids[0], in_body.recipients[0].message_ids[0]]


def test_beat_runs_the_index_task_every_few_seconds(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["search-index"]
    assert entry["task"] == search_index.name and 0 < float(entry["schedule"]) <= 10


def test_a_backlog_is_worked_off_in_batches_and_copies_are_indexed_too(alice):
    for n in range(7):
        store.message_deliver(raw=make_message(subject=f"Batch {n}"), recipients=["alice@a.test"])
    assert search_index_pending(batch=3) == 7
    inbox = alice.folders.get(name="INBOX")
    archive = alice.folders.get(name="Archive")
    store.message_copy(account=alice, source=inbox, uids=[1, 2], target=archive)
    assert Message.objects.filter(account=alice, search_vector__isnull=True).count() == 0  # copied with the vector
    assert len(matches("batch")) == 9


def test_a_message_with_odd_parsed_fields_still_gets_a_vector(alice):
    raw = b"Subject: \r\n\r\n"  # no From, no To, no body to speak of
    result = store.message_deliver(raw=raw, recipients=["alice@a.test"])
    assert search_index_pending() == 1
    assert Message.objects.get(pk=result.recipients[0].message_ids[0]).search_vector is not None


def test_one_message_whose_text_overflows_a_tsvector_does_not_stop_the_index_for_everyone(alice):
    # PostgreSQL refuses a tsvector over 1 MB. The store caps the body text, but a header
    # (here the subject, folded over many lines) can carry megabytes of distinct words. That
    # one message must not keep every later message out of the index (the job takes the
    # oldest pending rows first, so a batch that fails fails again on every run).
    words = " ".join(f"w{i:06d}" for i in range(150_000))
    folded = "\r\n ".join(words[i:i + 900] for i in range(0, len(words), 900))
    hostile = make_message(subject=folded)
    first = store.message_deliver(raw=hostile, recipients=["alice@a.test"]).recipients[0].message_ids[0]
    later = store.message_deliver(raw=make_message(subject="Wombat census"), recipients=["alice@a.test"])
    later_id = later.recipients[0].message_ids[0]

    search_index_pending()
    search_index_pending()
    assert matches("wombat") == [later_id]
    assert Message.objects.filter(search_vector__isnull=True).count() == 0
    assert matches("w000001") in ([], [first])  # indexed as far as it fits, or left unsearchable
