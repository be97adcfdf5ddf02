"""PROXY protocol on SMTP listeners: the client address comes from the balancer's header."""

from __future__ import annotations

import pytest

from mailcore.models import Message
from mailcore.net.proxy import build_v1, build_v2
from mailcore.smtp.protocol import Role
from tests.conftest import make_message
from tests.mailcore.smtp.conftest import RawClient, StartServer, client_tls

pytestmark = pytest.mark.django_db(transaction=True)


def send_one(raw: RawClient) -> None:
    assert raw.command(b"EHLO client.example").startswith(b"250")
    raw.command(b"MAIL FROM:<carol@example.org>")
    raw.command(b"RCPT TO:<alice@a.test>")
    raw.command(b"DATA")
    raw.send(make_message() + b".\r\n")
    assert raw.reply().startswith(b"250 2.0.0")


@pytest.mark.parametrize("header", [build_v1(("192.0.2.44", 5555), ("127.0.0.1", 25)), build_v2(("2001:db8::44", 5555))])
def test_received_header_shows_the_proxied_client_address(start_server: StartServer, alice, header) -> None:
    mx = start_server(Role.MX, proxy_protocol=True)
    with RawClient(mx, greet=False) as raw:
        raw.send(header)
        assert raw.reply().startswith(b"220 ")
        send_one(raw)
    stored = bytes(Message.objects.get().blob.data)
    expected = "192.0.2.44" if b"TCP4" in header else "IPv6:2001:db8::44"
    assert f"Received: from client.example (unknown [{expected}])".encode() in stored


def test_connection_without_a_proxy_header_is_closed(start_server: StartServer) -> None:
    mx = start_server(Role.MX, proxy_protocol=True)
    with RawClient(mx, greet=False) as raw:
        raw.send(b"EHLO client.example\r\n")
        assert raw.is_closed()


def test_proxy_header_then_implicit_tls_in_one_segment(start_server: StartServer) -> None:
    smtps = start_server(Role.SUBMISSIONS, proxy_protocol=True)
    with RawClient(smtps, greet=False) as raw:
        raw.send(build_v2(("192.0.2.44", 1)))
        tls = client_tls().wrap_socket(raw.sock, server_hostname="mx.test")
        raw.sock = tls
        assert raw.reply().startswith(b"220 ")
        assert b"AUTH PLAIN LOGIN" in raw.command(b"EHLO client.example")
        tls.close()
