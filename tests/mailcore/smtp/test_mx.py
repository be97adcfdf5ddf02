"""The MX port: who may receive, limits, trace headers, with smtplib on real sockets."""

from __future__ import annotations

import logging
import smtplib

import pytest

from mailcore import store
from mailcore.models import Account, Blob, Message, OutboundRecipient
from mailcore.smtp.protocol import Role
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import StartServer, connect

pytestmark = pytest.mark.django_db(transaction=True)


def stored_bytes(account: Account) -> list[bytes]:
    return [bytes(Blob.objects.get(id=m.blob_id).data) for m in Message.objects.filter(account=account).order_by("id")]


def test_ehlo_advertises_extensions_and_starttls_but_never_auth(mx) -> None:
    client = connect(mx)
    code, text = client.ehlo()
    assert code == 250
    lines = text.decode().split("\n")
    assert lines[0] == "mx.test"
    assert lines[1:] == [
        "PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN", "STARTTLS"
    ]
    client.starttls()
    code, text = client.ehlo()
    assert "STARTTLS" not in text.decode()
    assert "AUTH" not in text.decode()
    assert client.docmd("AUTH", "PLAIN AGFsaWNlAHg=")[0] == 502
    client.quit()


def test_helo_still_works_and_delivers(mx, alice) -> None:
    client = connect(mx, ehlo=False)
    assert client.helo()[0] == 250
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}
    client.quit()
    assert Message.objects.filter(account=alice).count() == 1


def test_local_account_alias_and_catch_all_are_accepted_and_stored(mx, alice, bob, domain_b) -> None:
    store.alias_create(address="sales@a.test", destinations=["alice@a.test"])
    domain_b.catch_all = "bob@b.test"
    domain_b.save()
    client = connect(mx)
    refused = client.sendmail("carol@example.org", ["alice@a.test", "sales@a.test", "anything@b.test"], make_message())
    client.quit()
    assert refused == {}
    assert Message.objects.filter(account=alice).count() == 1  # alias and account collapse to one copy
    assert Message.objects.filter(account=bob).count() == 1


def test_every_reply_carries_an_enhanced_status_code(mx, alice) -> None:
    client = connect(mx)
    for verb, arg in (("NOOP", ""), ("MAIL", "FROM:<carol@example.org>"), ("RCPT", "TO:<alice@a.test>"), ("RSET", ""),
                      ("VRFY", "alice@a.test"), ("BOGUS", ""), ("RCPT", "TO:<alice@a.test>")):
        code, text = client.docmd(verb, arg)
        assert text.decode()[:1] == str(code)[0] and text.decode()[1:2] == ".", (verb, code, text)
    client.quit()


def test_rcpt_to_unknown_user_is_rejected_with_550_5_1_1(mx, alice) -> None:
    client = connect(mx)
    client.mail("carol@example.org")
    code, text = client.rcpt("nobody@a.test")
    assert (code, text[:5]) == (550, b"5.1.1")


@pytest.mark.parametrize(
    "recipient",
    [
        "bob@remote.test",
        "BOB@Remote.Test",
        "bob%remote.test@a.test",
        "remote.test!bob@a.test",
        "@a.test:bob@remote.test",
        "@a.test,@b.test:bob@remote.test",
        '"bob@remote.test"@a.test',
        '"bob%remote.test"@a.test',
        "bob@remote.test.",
        "alice@a.test.",
        "bob@[127.0.0.1]",
        "bob@bücher.example",
        "bob@xn--bcher-kva.example",
    ],
)
def test_relay_is_denied_under_every_spelling(mx, alice, recipient) -> None:
    client = connect(mx)
    client.mail("carol@example.org", ["SMTPUTF8"] if not recipient.isascii() else [])
    client.putcmd("RCPT", f"TO:<{recipient}>")
    code, text = client.getreply()
    assert code in (553, 554) and text[:5] in (b"5.7.1", b"5.1.3"), (recipient, code, text)
    if "remote" in recipient or "bücher" in recipient or "bcher" in recipient:
        assert (code, text[:5]) == (554, b"5.7.1"), (recipient, code, text)
    client.quit()
    assert OutboundRecipient.objects.count() == 0


def test_case_and_idn_variants_of_local_addresses_are_accepted(mx, tenant_a) -> None:
    store.domain_create(tenant=tenant_a, name="bücher.test")
    account = store.account_create(address="leser@bücher.test", password="x" * 12)
    client = connect(mx)
    refused = client.sendmail("carol@example.org", ["LESER@xn--bcher-kva.test"], make_message())
    refused2 = client.sendmail("carol@example.org", ["Leser@BÜCHER.test"], make_message(), mail_options=["SMTPUTF8"])
    client.quit()
    assert refused == {} and refused2 == {}
    assert Message.objects.filter(account=account).count() == 2


def test_full_mailbox_is_refused_at_rcpt_with_452_4_2_2(mx, alice) -> None:
    Account.objects.filter(pk=alice.pk).update(quota_bytes=100, used_bytes=100)
    client = connect(mx)
    client.mail("carol@example.org")
    code, text = client.rcpt("alice@a.test")
    assert (code, text[:5]) == (452, b"4.2.2")


def test_declared_size_over_the_limit_is_refused_at_mail_from_with_552(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, max_message_size=1000)
    client = connect(mx)
    code, text = client.mail("carol@example.org", ["SIZE=1001"])
    assert (code, text[:5]) == (552, b"5.3.4")


def test_undeclared_oversize_message_is_refused_at_end_of_data_with_552(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, max_message_size=1000)
    client = connect(mx)
    client.mail("carol@example.org")
    client.rcpt("alice@a.test")
    code, text = client.data(make_message(body="x" * 70 + "\r\n") * 20)
    assert (code, text[:5]) == (552, b"5.3.4")
    assert client.noop()[0] == 250  # the connection is still in step
    client.quit()
    assert Message.objects.count() == 0


def test_too_many_recipients_get_452_4_5_3(start_server: StartServer, alice) -> None:
    store.alias_create(address="sales@a.test", destinations=["alice@a.test"])
    store.alias_create(address="info@a.test", destinations=["alice@a.test"])
    mx = start_server(Role.MX, max_recipients=2)
    client = connect(mx)
    client.mail("carol@example.org")
    assert client.rcpt("alice@a.test")[0] == 250
    assert client.rcpt("sales@a.test")[0] == 250
    code, text = client.rcpt("info@a.test")
    assert (code, text[:5]) == (452, b"4.5.3")


def test_delivered_copy_has_return_path_received_and_authentication_results(mx, alice) -> None:
    client = connect(mx)
    client.starttls()
    client.ehlo()
    client.sendmail("carol@example.org", ["alice@a.test"], make_message())
    client.quit()
    (raw,) = stored_bytes(alice)
    head = raw.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("Return-Path: <carol@example.org>\r\nAuthentication-Results: mx.test;")
    assert "Received: from client.example (unknown [127.0.0.1])\r\n\tby mx.test (mailsystem) with ESMTPS id " in head
    assert "(using TLSv1.3 with cipher " in head
    assert "for <alice@a.test>;" in head
    assert "spf=none smtp.mailfrom=carol@example.org" in head


def test_message_with_more_than_50_received_headers_is_refused_as_a_loop(mx, alice) -> None:
    hops = "".join(f"Received: from hop{i} by hop{i + 1}; Sat, 28 Nov 2026 12:00:00 +0000\r\n" for i in range(51))
    client = connect(mx)
    client.mail("carol@example.org")
    client.rcpt("alice@a.test")
    code, text = client.data(hops.encode() + make_message())
    assert (code, text[:5]) == (554, b"5.4.6")
    client.quit()
    assert Message.objects.count() == 0


def test_alias_forward_to_a_remote_address_is_queued_with_the_local_copy(mx, alice) -> None:
    store.alias_create(address="team@a.test", destinations=["alice@a.test", "carol@remote.test"])
    client = connect(mx)
    assert client.sendmail("dave@example.org", ["team@a.test"], make_message()) == {}
    client.quit()
    assert Message.objects.filter(account=alice).count() == 1
    queued = OutboundRecipient.objects.get()
    assert queued.address == "carol@remote.test"
    relayed = bytes(queued.message.blob.data)
    assert not relayed.startswith(b"Return-Path:")  # only at final delivery
    assert queued.message.mail_from == "dave@example.org"


def test_null_sender_is_accepted_for_bounces(mx, alice) -> None:
    client = connect(mx)
    assert client.sendmail("<>", ["alice@a.test"], make_message()) == {}
    client.quit()
    (raw,) = stored_bytes(alice)
    assert raw.startswith(b"Return-Path: <>\r\n")


def test_bdat_chunks_are_assembled_and_stored(mx, alice) -> None:
    message = make_message()
    client = connect(mx)
    client.mail("carol@example.org")
    client.rcpt("alice@a.test")
    first, second = message[:50], message[50:]
    client.send(b"BDAT %d\r\n" % len(first) + first)
    assert client.getreply()[0] == 250
    client.send(b"BDAT %d LAST\r\n" % len(second) + second)
    code, text = client.getreply()
    assert (code, text[:5]) == (250, b"2.0.0")
    client.quit()
    (raw,) = stored_bytes(alice)
    assert raw.endswith(message)


def test_data_without_recipients_gets_503_and_after_refused_ones_554(mx, alice) -> None:
    client = connect(mx)
    client.mail("carol@example.org")
    code, text = client.docmd("DATA")
    assert (code, text[:5]) == (503, b"5.5.1")
    client.rcpt("nobody@a.test")
    code, text = client.docmd("DATA")
    assert (code, text[:5]) == (554, b"5.5.1")


def test_unknown_mail_parameter_gets_555(mx) -> None:
    client = connect(mx)
    code, text = client.docmd("MAIL", "FROM:<carol@example.org> FROBNICATE=1")
    assert (code, text[:5]) == (555, b"5.5.4")


def test_pipelined_transaction_gets_every_reply_in_order(mx, alice) -> None:
    from tests.mailcore.smtp.conftest import RawClient

    message = make_message().replace(b"\r\n.", b"\r\n..")
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        raw.send(b"MAIL FROM:<carol@example.org>\r\nRCPT TO:<nobody@a.test>\r\nRCPT TO:<alice@a.test>\r\nDATA\r\n")
        assert [raw.reply()[:9] for _ in range(4)] == [b"250 2.1.0", b"550 5.1.1", b"250 2.1.5", b"354 End d"]
        raw.send(message + b".\r\n")
        assert raw.reply()[:9] == b"250 2.0.0"
    assert Message.objects.filter(account=alice).count() == 1


def test_smtplib_raises_for_refused_sender_recipients(mx) -> None:
    client = connect(mx)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("carol@example.org", ["bob@remote.test"], make_message())
    client.quit()


def test_utf8_address_needs_smtputf8(mx, tenant_a) -> None:
    store.domain_create(tenant=tenant_a, name="bücher.test")
    account = store.account_create(address="lëser@bücher.test", password="x" * 12)
    from tests.mailcore.smtp.conftest import RawClient

    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        raw.command(b"MAIL FROM:<carol@example.org>")
        assert raw.command("RCPT TO:<lëser@bücher.test>".encode()).startswith(b"553 5.6.7")
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["lëser@bücher.test"], make_message(), mail_options=["SMTPUTF8"]) == {}
    client.quit()
    raw = bytes(Message.objects.get(account=account).blob.data)
    assert b"with UTF8SMTP id" in raw


def test_esmtp_parameters_after_helo_are_a_syntax_error(mx) -> None:
    client = connect(mx, ehlo=False)
    client.helo()
    code, text = client.docmd("MAIL", "FROM:<carol@example.org> SIZE=10")
    assert (code, text[:5]) == (501, b"5.5.4")


def test_an_unknown_recipient_is_looked_up_again_on_the_same_connection(mx, alice) -> None:
    """Accepted local recipients are remembered by the connection for a moment; refusals are not:
    a mailbox created after a 550 is reachable on the next RCPT of the same connection."""
    client = connect(mx)
    client.mail("carol@example.org")
    assert client.rcpt("newcomer@a.test")[0] == 550
    store.account_create(address="newcomer@a.test", password=None, quota_bytes=0)
    assert client.rcpt("newcomer@a.test")[0] == 250
    assert client.data(make_message())[0] == 250
    client.quit()
    assert Message.objects.filter(account__address="newcomer@a.test").count() == 1


def test_a_remembered_recipient_is_still_checked_at_delivery(mx, alice) -> None:
    """The second message to a mailbox on one connection reuses the first RCPT's lookup, but the
    delivery statement checks the quota again: a mailbox that filled up in between refuses the
    message with 452 and nothing of it is stored."""
    client = connect(mx)
    assert client.sendmail("carol@example.org", ["alice@a.test"], make_message(subject="first")) == {}
    alice.refresh_from_db()
    Account.objects.filter(pk=alice.pk).update(quota_bytes=alice.used_bytes + 10)
    client.mail("carol@example.org")
    assert client.rcpt("alice@a.test")[0] == 250  # remembered: the room it had a moment ago
    code, text = client.data(make_message(subject="second"))
    client.quit()
    assert (code, text[:5]) == (452, b"4.2.2"), text
    assert Message.objects.filter(account=alice).count() == 1
    assert Blob.objects.count() == 1


def test_an_accepted_message_is_logged_once_and_the_commands_are_not(mx, alice, caplog) -> None:
    from mailcore.smtp.handler import _loggable

    with caplog.at_level(logging.INFO):  # the root level; the loggers keep the project's levels
        client = connect(mx)
        assert client.sendmail("carol@example.org", ["alice@a.test"], make_message(to="alice@a.test")) == {}
        client.quit()
    accepted = [r.getMessage() for r in caplog.records if "accepted" in r.getMessage()]
    assert len(accepted) == 1
    queue_id = accepted[0].split(":", 1)[0]
    assert accepted[0] == (f"{queue_id}: accepted from=<carol@example.org> client=[127.0.0.1] "
                           f"helo=client.example size={accepted[0].split('size=')[1].split()[0]} "
                           "delivered=<alice@a.test> queued=-")
    assert not [r for r in caplog.records if r.name == "mail.log" and r.levelno < logging.WARNING]
    assert _loggable("evil\x1b[31m\nnext") == "evil\\x1b[31m\\nnext" and _loggable("ok é") == "ok é"
