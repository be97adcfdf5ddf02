"""A message for one mailbox is stored from the event loop (mailcore.store.asyncsql) when its
SPF/DKIM/DMARC answers are cached; otherwise, and for every other case, a database thread
stores it. Either way the same message is stored, with the same headers, under the same rules."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailcore import dbthreads
from mailcore.models import Account, Blob, Message
from mailcore.smtp import resolver
from mailcore.smtp.authresults import spf_check
from mailcore.smtp.server import Listener, listener_stop
from tests.conftest import PASSWORD, make_message
from tests.mailcore.serving import kill_other_backends, other_backends
from tests.mailcore.smtp.conftest import (
    DnsZone,
    ServerThread,
    connect,
    connect_submission,
    folder_row_held,
    stop_while_storing,
)
from tests.mailcore.smtp.test_durability import _an_insert_kills_the_connection

pytestmark = pytest.mark.django_db(transaction=True)


def loop_statements(listener: Listener) -> int:
    assert listener.handler is not None
    return listener.handler.db.statements


def answered_from_loop(listener: Listener) -> int:
    assert listener.handler is not None
    return listener.handler.answered_from_loop


@pytest.fixture
def cached_dns(dns_zone: DnsZone) -> DnsZone:
    """Answers that may be cached (a TTL), with SPF and DMARC records for example.org."""
    dns_zone.ttl = 300
    dns_zone.negative_ttl = 300
    dns_zone.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    return dns_zone


def stored_headers(account: Account) -> list[bytes]:
    """Each stored message's header block, oldest first, without the lines that differ per message."""
    out = []
    for message in Message.objects.filter(account=account).order_by("id").select_related("blob"):
        head = bytes(message.blob.data).split(b"\r\n\r\n", 1)[0]
        out.append(b"\r\n".join(
            line for line in head.replace(b"\r\n\t", b" ").split(b"\r\n")
            if not line.lower().startswith((b"received:", b"message-id:", b"date:"))
        ))
    return out


def test_the_first_message_needs_dns_and_goes_to_a_thread_the_next_is_stored_from_the_loop(
    mx, alice, cached_dns: DnsZone
) -> None:
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message(message_id="one@example.org")) == {}
    assert loop_statements(mx) == 0  # the SPF and DMARC answers were not cached yet
    queries = len(cached_dns.queries)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message(message_id="one@example.org")) == {}
    assert loop_statements(mx) == 1
    assert len(cached_dns.queries) == queries  # no DNS from the loop
    client.quit()
    first, second = stored_headers(alice)
    assert b"spf=pass" in first and b"dmarc=pass" in first
    assert first == second  # the same Authentication-Results, Return-Path and all
    alice.refresh_from_db()
    assert alice.used_bytes == sum(m.size for m in Message.objects.filter(account=alice))


def test_dmarc_reject_from_the_loop_refuses_and_stores_nothing(mx, alice, cached_dns: DnsZone, settings) -> None:
    settings.SMTP_DMARC_ENFORCE = True
    cached_dns.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    forged = make_message(sender="ceo@bank.test")  # SPF passes for carol@example.org: not aligned
    client = connect(mx)
    for attempt in range(2):  # the first looks bank.test up from a thread, the second from the cache
        client.rset()
        client.mail("carol@example.org")
        assert client.rcpt("alice@a.test")[0] == 250
        code, text = client.data(forged)
        assert (code, text[:5]) == (550, b"5.7.1"), text
        assert answered_from_loop(mx) == attempt
    client.quit()
    assert loop_statements(mx) == 0
    assert Message.objects.count() == 0


def test_a_full_mailbox_found_by_the_loop_statement_gets_452_and_nothing_is_stored(
    mx, alice, cached_dns: DnsZone
) -> None:
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message(subject="first")) == {}
    alice.refresh_from_db()
    Account.objects.filter(pk=alice.pk).update(quota_bytes=alice.used_bytes + 10)
    client.mail("carol@example.org")
    assert client.rcpt("alice@a.test")[0] == 250  # remembered from the first RCPT
    code, text = client.data(make_message(subject="second"))
    client.quit()
    assert (code, text[:5]) == (452, b"4.2.2"), text
    assert loop_statements(mx) == 1
    assert Message.objects.filter(account=alice).count() == 1
    assert Blob.objects.count() == 1


def test_submission_to_a_local_mailbox_is_stored_from_the_loop(submission, alice, bob) -> None:
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    assert client.sendmail("alice@a.test", ["bob@b.test"], make_message(sender="alice@a.test", to="bob@b.test")) == {}
    client.quit()
    assert loop_statements(submission) == 1
    [message] = Message.objects.filter(account=bob)
    head = bytes(message.blob.data).split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"Return-Path: <alice@a.test>\r\nReceived: from client.example")
    assert b"Authentication-Results" not in head


def test_connection_lost_mid_statement_from_the_loop_gives_451_then_the_next_is_stored(submission, alice, bob) -> None:
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    message = make_message(sender="alice@a.test", to="bob@b.test")
    with _an_insert_kills_the_connection("mailcore_folderentry"):
        client.mail("alice@a.test")
        assert client.rcpt("bob@b.test")[0] == 250
        code, text = client.data(message)
        assert (code, text[:5]) == (451, b"4.3.0")
    assert loop_statements(submission) == 1
    assert Message.objects.count() == 0
    assert Blob.objects.count() == 0
    bob.refresh_from_db()
    assert bob.used_bytes == 0
    assert client.sendmail("alice@a.test", ["bob@b.test"], message) == {}
    assert loop_statements(submission) == 2
    client.quit()
    assert Message.objects.filter(account=bob).count() == 1


@pytest.mark.parametrize("check_interval, expected", [(10**9, [451, 250]), (0, [250])])
def test_killed_backends_cost_the_loop_at_most_one_message(
    smtp_servers: ServerThread, mx, alice, cached_dns: DnsZone, monkeypatch, check_interval: float,
    expected: list[int],
) -> None:
    """Without a check, the first statement meets a dead connection (451: the client retries)
    and makes the loop drop its other idle ones; with a check before use (CONN_HEALTH_CHECKS'
    interval at 0), no message meets one."""
    monkeypatch.setattr(dbthreads, "HEALTH_CHECK_INTERVAL", check_interval)
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}  # DNS now cached

    async def open_connections() -> None:  # several idle loop connections, as after a busy spell
        assert mx.handler is not None
        db = mx.handler.db
        conns = [await db._acquire() for _ in range(3)]
        db.idle.extend((c, time.monotonic()) for c in conns)

    asyncio.run_coroutine_threadsafe(open_connections(), smtp_servers.loop).result(10)
    kill_other_backends()
    lost = dbthreads.lost_connections()
    replies = []
    for _ in range(3):
        client.rset()
        client.mail("carol@example.org")
        assert client.rcpt("alice@a.test")[0] == 250  # remembered: no database
        replies.append(client.data(make_message())[0])
        if replies[-1] == 250:
            break
    client.quit()
    assert replies == expected
    assert dbthreads.lost_connections() > lost  # the threads were told too
    assert answered_from_loop(mx) == len(expected)
    assert Message.objects.filter(account=alice).count() == 2


def test_stopping_the_listener_closes_the_loop_connections(
    smtp_servers: ServerThread, submission, alice, bob
) -> None:
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    assert client.sendmail("alice@a.test", ["bob@b.test"], make_message(sender="alice@a.test", to="bob@b.test")) == {}
    client.quit()
    assert loop_statements(submission) == 1
    assert submission.handler is not None
    assert len(submission.handler.db.idle) == 1
    before = other_backends()
    asyncio.run_coroutine_threadsafe(listener_stop(submission, grace=1), smtp_servers.loop).result(10)
    assert submission.handler.db.idle == [] and submission.handler.db.closed
    deadline = time.monotonic() + 10
    while other_backends() != before - 1:  # the backend ends a moment after the connection closes
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_cache_only_lookups_raise_past_the_libraries_and_record_the_miss(cached_dns: DnsZone) -> None:
    with resolver.cache_only() as probe, pytest.raises(resolver.DnsNotCached):
        spf_check(ip="127.0.0.1", mail_from="carol@example.org", helo="client.example")
    assert probe.missed
    assert spf_check(ip="127.0.0.1", mail_from="carol@example.org", helo="client.example")[0] == "pass"
    with resolver.cache_only() as probe:
        assert spf_check(ip="127.0.0.1", mail_from="carol@example.org", helo="client.example")[0] == "pass"
    assert not probe.missed


def test_a_miss_that_pyspf_swallows_is_still_recorded(cached_dns: DnsZone) -> None:
    """pyspf fetches a failing policy's explanation (``exp=``) under a bare ``except:``: the
    lookup it needed is missed all the same, and the block's result must be thrown away."""
    cached_dns.records[("example.org", "TXT")] = ["v=spf1 -all exp=why.example.org"]
    cached_dns.add("why.example.org", "TXT", "not from here")
    resolver.lookup("example.org", "TXT")  # the policy is cached, the explanation is not
    with resolver.cache_only() as probe:
        result, _ = spf_check(ip="127.0.0.1", mail_from="carol@example.org", helo="client.example")
    assert result == "fail"  # no exception came out
    assert probe.missed


def test_a_message_over_the_loop_limit_is_stored_from_a_thread(submission, alice, bob) -> None:
    from mailcore.smtp.handler import LOOP_STORE_MAX_BYTES

    body = ("x" * 76 + "\r\n") * (LOOP_STORE_MAX_BYTES // 78 + 10)
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    small = make_message(sender="alice@a.test", to="bob@b.test")
    big = make_message(sender="alice@a.test", to="bob@b.test", body=body)
    assert len(big) > LOOP_STORE_MAX_BYTES
    assert client.sendmail("alice@a.test", ["bob@b.test"], big) == {}
    assert answered_from_loop(submission) == 0
    assert client.sendmail("alice@a.test", ["bob@b.test"], small) == {}
    assert answered_from_loop(submission) == 1
    client.quit()
    assert sorted(m.size for m in Message.objects.filter(account=bob))[1] > LOOP_STORE_MAX_BYTES


def test_the_loop_connections_plan_the_delivery_statement_once(
    smtp_servers: ServerThread, submission, alice, bob
) -> None:
    """Generic plans (store/sql.py): none of the executions is planned for its values."""
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    for n in range(7):
        message = make_message(sender="alice@a.test", to="bob@b.test", subject=f"n{n}")
        assert client.sendmail("alice@a.test", ["bob@b.test"], message) == {}
    client.quit()
    assert loop_statements(submission) == 7
    assert submission.handler is not None
    db = submission.handler.db
    assert len(db.idle) == 1  # one message at a time: one connection did them all
    rows = asyncio.run_coroutine_threadsafe(db.fetch_all(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
        ["%INSERT INTO mailcore_blob%"],
    ), smtp_servers.loop).result(10)
    assert rows == [(7, 0)]


def test_a_message_with_several_dkim_signatures_is_verified_from_a_thread(submission, alice, bob) -> None:
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    signed = "DKIM-Signature: v=1; d=a.test; s=x; b=AA\r\nDKIM-Signature: v=1; d=a.test; s=y; b=AA\r\n"
    message = make_message(sender="alice@a.test", to="bob@b.test", extra_headers=signed)
    assert client.sendmail("alice@a.test", ["bob@b.test"], message) == {}
    client.quit()
    assert answered_from_loop(submission) == 0
    assert Message.objects.filter(account=bob).count() == 1


def test_a_quarantine_verdict_of_the_loop_stands_in_the_thread_that_files_it(
    mx, alice, cached_dns: DnsZone, settings, monkeypatch
) -> None:
    """p=quarantine with pct=50: the loop draws once (in the sample: quarantine) and hands the
    message to a thread for the Junk folder; the thread must not draw again (out of the sample
    the second time, it would file it in INBOX: a skewed pct)."""
    import random

    from mailcore.models import Folder

    settings.SMTP_DMARC_ENFORCE = True
    cached_dns.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=quarantine; pct=50")
    draws = iter([10.0, 90.0])
    monkeypatch.setattr(random, "uniform", lambda a, b: next(draws))
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}  # warms the cache
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message(sender="ceo@bank.test")) == {}
    client.quit()
    assert next(draws) == 90.0  # one draw only
    junk = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.JUNK)
    assert Message.objects.filter(account=alice, entries__folder=junk).count() == 1


def test_a_message_being_stored_from_the_loop_at_shutdown_gets_its_250_then_421(
    smtp_servers: ServerThread, submission, alice, bob
) -> None:
    from mailcore.models import Folder

    inbox = Folder.objects.get(account=bob, special_use=Folder.SpecialUse.INBOX)
    with folder_row_held(inbox.pk):
        client = connect_submission(submission, "alice@a.test", PASSWORD)
        client.mail("alice@a.test")
        assert client.rcpt("bob@b.test")[0] == 250
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(make_message(sender="alice@a.test", to="bob@b.test") + b".\r\n")
        stopping = stop_while_storing(smtp_servers, submission)
    assert client.getreply()[0] == 250
    assert client.getreply()[0] == 421
    stopping.result(10)
    assert answered_from_loop(submission) == 1
    assert Message.objects.filter(account=bob).count() == 1
