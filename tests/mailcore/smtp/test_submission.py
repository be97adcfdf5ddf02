"""Submission (587 STARTTLS, 465 implicit TLS): AUTH, send-as, local delivery and queueing."""

from __future__ import annotations

import base64
import smtplib

import pytest

from mailcore import store
from mailcore.models import Message, OutboundRecipient
from mailcore.smtp.protocol import Role
from tests.conftest import PASSWORD, make_message
from tests.mailcore.smtp.conftest import (
    RawClient,
    StartServer,
    client_tls,
    connect,
    connect_starttls,
    connect_submission,
)

pytestmark = pytest.mark.django_db(transaction=True)


def auth_plain(client: smtplib.SMTP, login: str, password: str) -> tuple[int, bytes]:
    token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {token}")


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("authfail:*"):
        client.delete(key)
    client.close()


def test_submission_offers_starttls_first_and_auth_only_after_tls(submission) -> None:
    client = connect(submission)
    assert client.has_extn("starttls") and not client.has_extn("auth")
    assert client.docmd("AUTH", "PLAIN AGFsaWNlQGEudGVzdAB4")[0] == 530  # STARTTLS first
    client.starttls(context=client_tls())
    client.ehlo()
    assert not client.has_extn("starttls")
    assert client.esmtp_features["auth"].strip() == "PLAIN LOGIN"
    client.quit()


def test_mail_without_auth_is_refused_with_530(submission) -> None:
    client = connect_starttls(submission)
    code, text = client.mail("alice@a.test")
    assert (code, text[:5]) == (530, b"5.7.0")


@pytest.mark.parametrize("method", ["PLAIN", "LOGIN"])
def test_auth_with_the_account_password_lets_alice_send(submission, alice, bob, method) -> None:
    client = connect_starttls(submission)
    client.user, client.password = "alice@a.test", PASSWORD
    code, text = client.auth(method, getattr(client, f"auth_{method.lower()}"), initial_response_ok=method == "PLAIN")
    assert (code, text[:5]) == (235, b"2.7.0")
    assert client.sendmail("alice@a.test", ["bob@b.test"], make_message(sender="alice@a.test", to="bob@b.test")) == {}
    client.quit()
    assert Message.objects.filter(account=bob).count() == 1


def test_wrong_password_gets_535_and_the_connection_closes_after_three(submission, alice) -> None:
    client = connect_starttls(submission)
    for _ in range(2):
        code, text = auth_plain(client, "alice@a.test", "wrong password")
        assert (code, text[:5]) == (535, b"5.7.8")
    code, text = auth_plain(client, "alice@a.test", "wrong password")
    assert (code, text[:5]) == (421, b"4.7.0")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()


def test_auth_failures_are_throttled_per_account_across_connections(submission, alice, settings, redis_or_not) -> None:
    settings.AUTH_FAILURE_LIMIT = 2
    client = connect_starttls(submission)
    assert auth_plain(client, "alice@a.test", PASSWORD)[0] == 235  # with Redis or without
    client.close()
    for _ in range(2):
        client = connect_starttls(submission)
        assert auth_plain(client, "alice@a.test", "wrong password")[0] == 535
        client.close()
    client = connect_starttls(submission)
    code, text = auth_plain(client, "alice@a.test", PASSWORD)  # even the right one waits out the window
    assert (code, text[:5]) == (454, b"4.7.0")


def test_sender_not_owned_by_the_account_gets_553_5_7_1(submission, alice, mallory) -> None:
    client = connect_submission(submission, "mallory@a.test", PASSWORD)
    code, text = client.mail("alice@a.test")
    assert (code, text[:5]) == (553, b"5.7.1")
    code, text = client.mail("<>")
    assert (code, text[:5]) == (553, b"5.7.1")


def test_alias_owned_by_the_account_may_be_the_sender(submission, alice, bob) -> None:
    store.alias_create(address="sales@a.test", destinations=["alice@a.test"])
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    assert client.mail("Sales@A.test")[0] == 250


def test_local_recipients_are_delivered_and_remote_ones_queued_in_one_go(submission, alice, bob) -> None:
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    refused = client.sendmail(
        "alice@a.test", ["bob@b.test", "carol@remote.test", "dave@elsewhere.test"],
        make_message(sender="alice@a.test", to="bob@b.test"),
    )
    client.quit()
    assert refused == {}
    (copy,) = Message.objects.filter(account=bob)
    raw = bytes(copy.blob.data)
    assert raw.startswith(b"Return-Path: <alice@a.test>\r\nReceived: from client.example (unknown [127.0.0.1])")
    assert b"with ESMTPSA" in raw
    assert b"Authentication-Results" not in raw.split(b"\r\n\r\n")[0]  # only the MX port adds it
    queued = OutboundRecipient.objects.order_by("address")
    assert [q.address for q in queued] == ["carol@remote.test", "dave@elsewhere.test"]
    assert queued[0].message.account_id == alice.pk
    assert not bytes(queued[0].message.blob.data).startswith(b"Return-Path")


def test_unknown_local_recipient_gets_550_on_submission_too(submission, alice) -> None:
    client = connect_submission(submission, "alice@a.test", PASSWORD)
    client.mail("alice@a.test")
    code, text = client.rcpt("nobody@a.test")
    assert (code, text[:5]) == (550, b"5.1.1")


def test_implicit_tls_port_authenticates_and_sends(smtps, alice, bob) -> None:
    client = connect_submission(smtps, "alice@a.test", PASSWORD)
    assert not client.has_extn("starttls")
    assert client.sendmail("alice@a.test", ["bob@b.test"], make_message(sender="alice@a.test")) == {}
    client.quit()
    assert Message.objects.filter(account=bob).count() == 1


def test_auth_is_not_offered_in_plaintext_on_the_implicit_port_either(start_server: StartServer) -> None:
    smtps = start_server(Role.SUBMISSIONS)
    with RawClient(smtps, greet=False) as raw:
        raw.send(b"EHLO x\r\n")
        assert raw.is_closed(5)  # a TLS server does not speak plaintext


def test_auth_login_can_be_aborted_and_plain_refuses_a_foreign_authzid(submission, alice) -> None:
    client = connect_starttls(submission)
    assert client.docmd("AUTH", "LOGIN")[0] == 334
    code, text = client.docmd("*")
    assert (code, text[:5]) == (501, b"5.7.0")
    token = base64.b64encode(f"bob@b.test\0alice@a.test\0{PASSWORD}".encode()).decode()
    code, text = client.docmd("AUTH", f"PLAIN {token}")
    assert (code, text[:5]) == (535, b"5.7.8")
    assert client.docmd("AUTH", "CRAM-MD5")[0] == 504
    assert auth_plain(client, "alice@a.test", PASSWORD)[0] == 235
    assert auth_plain(client, "alice@a.test", PASSWORD)[0] == 503
