from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from mailcore.models import Account
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_sign_in_page_has_labelled_fields_and_button(client: Client) -> None:
    page = client.get("/login/").content.decode()
    assert ">Email address</label>" in page and ">Password</label>" in page
    assert ">Sign in</button>" in page


def test_mailbox_requires_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_sign_in_with_full_address_any_case_lands_in_inbox(client: Client, alice: Account) -> None:
    response = client.post("/login/", {"address": "ALICE@a.test", "password": PASSWORD})
    assert response.status_code == 302
    inbox = client.get("/", follow=True)
    assert inbox.status_code == 200 and b"Inbox" in inbox.content


def test_wrong_password_is_refused_with_a_message(client: Client, alice: Account) -> None:
    response = client.post("/login/", {"address": "alice@a.test", "password": "nope"})
    assert response.status_code == 400
    assert b"do not match" in response.content
    assert "_auth_user_id" not in client.session


def test_repeated_failures_are_throttled(client: Client, alice: Account, settings: object) -> None:
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # type: ignore[attr-defined]
    for _ in range(settings.AUTH_FAILURE_LIMIT):  # type: ignore[attr-defined]
        client.post("/login/", {"address": "alice@a.test", "password": "nope"})
    response = client.post("/login/", {"address": "alice@a.test", "password": PASSWORD})
    assert response.status_code == 400 and b"Too many" in response.content
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # type: ignore[attr-defined]


def test_sign_in_needs_csrf_token(alice: Account) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"address": "alice@a.test", "password": PASSWORD})
    assert response.status_code == 403


def test_sign_out_ends_the_session(alice_client: Client) -> None:
    alice_client.post("/logout/")
    assert alice_client.get("/").status_code == 302


def test_open_redirect_after_sign_in_is_refused(client: Client, alice: Account) -> None:
    response = client.post(
        "/login/?next=https://evil.example/", {"address": "alice@a.test", "password": PASSWORD}
    )
    assert response["Location"] == "/"


def test_sessions_expire_after_session_cookie_age(client: Client, alice: Account) -> None:
    client.post("/login/", {"address": "alice@a.test", "password": PASSWORD})
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_expired_session_under_htmx_redirects_the_whole_page(client: Client, alice: Account) -> None:
    response = client.get("/sidebar/", headers={"HX-Request": "true"})
    assert response.status_code == 401 and response["HX-Redirect"].startswith("/login/?next=")


def test_failures_are_throttled_when_redis_is_unreachable(
    client: Client, alice: Account, settings: object, redis_unreachable: str
) -> None:
    for _ in range(settings.AUTH_FAILURE_LIMIT):  # type: ignore[attr-defined]
        response = client.post("/login/", {"address": "alice@a.test", "password": "nope"})
        assert response.status_code == 400 and b"do not match" in response.content
    response = client.post("/login/", {"address": "alice@a.test", "password": PASSWORD})
    assert response.status_code == 400 and b"Too many" in response.content
    assert "_auth_user_id" not in client.session
