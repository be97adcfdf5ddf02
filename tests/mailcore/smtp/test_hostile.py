"""Hostile input: SMTP smuggling, STARTTLS injection, line breaks in addresses, every limit."""

from __future__ import annotations

import ssl
import time

import pytest

from mailcore.models import Message
from mailcore.smtp.protocol import Role
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import RawClient, StartServer, client_tls, connect, connect_starttls

pytestmark = pytest.mark.django_db(transaction=True)

SMUGGLED = b"MAIL FROM:<admin@a.test>\r\nRCPT TO:<alice@a.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"


def open_transaction(raw: RawClient) -> None:
    assert raw.command(b"EHLO client.example").startswith(b"250")
    assert raw.command(b"MAIL FROM:<carol@example.org>")[:3] == b"250"
    assert raw.command(b"RCPT TO:<alice@a.test>")[:3] == b"250"
    assert raw.command(b"DATA")[:3] == b"354"


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\r\n"])
def test_bare_cr_or_lf_in_data_refuses_the_message_and_smuggles_nothing(mx, alice, fake_end) -> None:
    with RawClient(mx) as raw:
        open_transaction(raw)
        raw.send(b"Subject: hello\r\n\r\nfirst part" + fake_end + SMUGGLED + b".\r\n")
        reply = raw.reply()
        assert reply.startswith(b"550 5.6.0"), reply
        assert raw.command(b"NOOP").startswith(b"250 2.0.0")  # still in step: nothing was injected
        assert raw.command(b"QUIT").startswith(b"221 2.0.0")
    assert Message.objects.count() == 0


def test_bare_lf_inside_bdat_content_is_refused_too(mx, alice) -> None:
    body = b"Subject: x\r\n\r\nline\n.\nMAIL FROM:<x@y.test>\r\n"
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        raw.command(b"MAIL FROM:<carol@example.org>")
        raw.command(b"RCPT TO:<alice@a.test>")
        reply = bdat(raw, b"BDAT %d LAST\r\n" % len(body) + body)
        assert reply.startswith(b"550 5.6.0"), reply
    assert Message.objects.count() == 0


def test_dot_stuffed_lines_are_unstuffed_and_a_lone_dot_line_ends_data(mx, alice) -> None:
    with RawClient(mx) as raw:
        open_transaction(raw)
        # A From: field, as every message needs on the MX port (DMARC, RFC 7489 §6.6.1).
        raw.send(b"From: carol@example.org\r\nSubject: dots\r\n\r\n..leading dot\r\n...\r\n.\r\n")
        assert raw.reply().startswith(b"250 2.0.0")
    raw_stored = bytes(Message.objects.get().blob.data)
    assert raw_stored.endswith(b"\r\n\r\n.leading dot\r\n..\r\n")


def test_plaintext_pipelined_after_starttls_is_discarded(mx, alice) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        raw.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<alice@a.test>\r\n")
        assert raw.reply().startswith(b"220")
        assert raw.buffer == b""
        tls = client_tls().wrap_socket(raw.sock, server_hostname="mx.test")
        raw.sock = tls
        reply = raw.command(b"EHLO client.example")
        assert reply.startswith(b"250-mx.test"), reply
        # Had the injected MAIL survived, this would be "503 nested MAIL".
        assert raw.command(b"MAIL FROM:<carol@example.org>").startswith(b"250 2.1.0")
        raw.command(b"QUIT")
        tls.close()


@pytest.mark.parametrize("command", [b"MAIL FROM:<carol@exam\rple.org>", b"MAIL FROM:<carol\r@example.org>"])
def test_cr_inside_an_envelope_address_is_refused(mx, command) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        reply = raw.command(command)
        assert reply[:1] == b"5" and reply[4:5] == b"5", reply


def test_line_break_smuggled_into_rcpt_is_refused(mx, alice) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        raw.command(b"MAIL FROM:<carol@example.org>")
        reply = raw.command(b"RCPT TO:<alice@a.test>\rDATA")
        assert reply.startswith(b"501 5.5.4"), reply


def test_overlong_command_line_gets_500(start_server: StartServer) -> None:
    mx = start_server(Role.MX, command_line_length=100)
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        reply = raw.command(b"NOOP " + b"x" * 200)
        assert reply.startswith(b"500 5.5.2"), reply


def test_overlong_data_line_refuses_the_message_with_500_5_5_6(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, data_line_length=200)
    with RawClient(mx) as raw:
        open_transaction(raw)
        raw.send(b"Subject: long\r\n\r\n" + b"y" * 300 + b"\r\n.\r\n")
        assert raw.reply().startswith(b"500 5.5.6")
        assert raw.command(b"NOOP").startswith(b"250")
    assert Message.objects.count() == 0


def test_too_many_errors_close_the_connection(start_server: StartServer) -> None:
    mx = start_server(Role.MX, max_errors_per_connection=3)
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        assert raw.command(b"RCPT TO:<a@b.test>")[:3] == b"503"
        assert raw.command(b"RCPT TO:<a@b.test>")[:3] == b"503"
        raw.send(b"RCPT TO:<a@b.test>\r\n")
        assert raw.reply()[:3] == b"503"
        assert raw.reply().startswith(b"421 4.7.0")
        assert raw.is_closed()


def test_too_many_messages_close_the_connection(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, max_messages_per_connection=2)
    client = connect(mx)
    for _ in range(2):
        assert client.sendmail("carol@example.org", ["alice@a.test"], make_message()) == {}
    code, text = client.mail("carol@example.org")
    assert (code, text[:5]) == (421, b"4.7.0")
    assert Message.objects.count() == 2


def test_idle_connection_is_closed_after_the_timeout(start_server: StartServer) -> None:
    mx = start_server(Role.MX, idle_timeout=0.5)
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        started = time.monotonic()
        assert raw.reply().startswith(b"421 4.4.2")
        assert raw.is_closed()
        assert time.monotonic() - started < 5


def test_commands_and_data_keep_a_connection_past_the_idle_timeout_then_idleness_ends_it(
    start_server: StartServer, alice
) -> None:
    """The idle deadline moves with every command and every piece of DATA (the connection's one
    timer re-arms itself for what is left); once the client stops, it fires on time."""
    mx = start_server(Role.MX, idle_timeout=0.6)
    with RawClient(mx) as raw:
        assert raw.command(b"EHLO client.example").startswith(b"250")
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # 2.5 timeouts of commands, each well inside one
            assert raw.command(b"NOOP").startswith(b"250")
            time.sleep(0.2)
        assert raw.command(b"MAIL FROM:<carol@example.org>").startswith(b"250")
        assert raw.command(b"RCPT TO:<alice@a.test>").startswith(b"250")
        assert raw.command(b"DATA").startswith(b"354")
        raw.send(b"From: carol@example.org\r\nSubject: slow\r\n\r\n")
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # DATA trickling in: each piece counts as activity
            raw.send(b"line\r\n")
            time.sleep(0.2)
        raw.send(b".\r\n")
        assert raw.reply().startswith(b"250")
        idle_from = time.monotonic()
        assert raw.reply().startswith(b"421 4.4.2")
        waited = time.monotonic() - idle_from
        assert raw.is_closed()
        assert 0.5 < waited < 3
    assert Message.objects.filter(subject="slow").count() == 1


def test_unknown_commands_are_limited(mx) -> None:
    with RawClient(mx) as raw:
        replies = [raw.command(b"FROB") for _ in range(4)]
        assert all(r.startswith(b"500 5.5.2") for r in replies)
        assert raw.command(b"FROB").startswith(b"502 5.5.1")
        assert raw.is_closed()


def test_bdat_with_a_bad_size_closes_the_connection(mx) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        assert raw.command(b"BDAT lots").startswith(b"501 5.5.4")
        assert raw.is_closed()


def test_tls_handshake_garbage_on_the_implicit_port_is_dropped(start_server: StartServer) -> None:
    smtps = start_server(Role.SUBMISSIONS)
    with RawClient(smtps, greet=False) as raw:
        raw.send(b"\x16\x03\x01\x00\x05hello")
        assert raw.is_closed()
    assert ssl  # the module is used by client_tls in the harness


def bdat(raw: RawClient, data: bytes) -> bytes:
    raw.send(data)
    return raw.reply()


def test_bdat_without_a_transaction_is_read_and_refused_keeping_the_stream_in_step(mx) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        reply = bdat(raw, b"BDAT 10\r\nNOOP NOOP!")
        assert reply.startswith(b"503 5.5.1"), reply
        assert raw.command(b"NOOP").startswith(b"250")


def test_bdat_over_the_size_limit_is_refused_at_last(start_server: StartServer, alice) -> None:
    mx = start_server(Role.MX, max_message_size=100)
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        raw.command(b"MAIL FROM:<carol@example.org>")
        raw.command(b"RCPT TO:<alice@a.test>")
        assert bdat(raw, b"BDAT 80\r\n" + b"x" * 80).startswith(b"250")
        assert bdat(raw, b"BDAT 80\r\n" + b"x" * 80).startswith(b"552 5.3.4")
        assert bdat(raw, b"BDAT 5 LAST\r\n" + b"x" * 5).startswith(b"552 5.3.4")
        assert raw.command(b"MAIL FROM:<carol@example.org>").startswith(b"250")  # transaction reset
    assert Message.objects.count() == 0


def test_data_after_bdat_is_refused(mx, alice) -> None:
    with RawClient(mx) as raw:
        raw.command(b"EHLO client.example")
        raw.command(b"MAIL FROM:<carol@example.org>")
        raw.command(b"RCPT TO:<alice@a.test>")
        bdat(raw, b"BDAT 3\r\nabc")
        assert raw.command(b"DATA").startswith(b"503 5.5.1")


def test_starttls_twice_is_refused(mx) -> None:
    client = connect_starttls(mx)
    code, text = client.docmd("STARTTLS")
    assert (code, text[:5]) == (503, b"5.5.1")
