"""Shared fixtures: real PostgreSQL and Redis (see README), named people across the suite.

alice and bob have accounts in two domains of two tenants; mallory is the attacker.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mailcore.models import Account, Domain, Tenant


def _store() -> ModuleType:
    # Imported when a fixture runs, not with this file: suites that need no database
    # (tests/mailcore/mime) run with ``-p no:django`` and have no Django app registry.
    from mailcore import store

    return store


PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Servers under test run database work in their own threads, whose connections outlive
    the tests; end them before pytest-django drops the test database."""
    from django.db import connection

    yield
    with django_db_blocker.unblock(), connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fast_password_hashing(request: pytest.FixtureRequest) -> None:
    if not request.config.pluginmanager.hasplugin("django"):
        return  # run with -p no:django: no Django settings to change
    # Argon2 costs ~50 ms per check by design; the behaviour under test is the same with MD5.
    settings = request.getfixturevalue("settings")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tenant_a(db: None) -> Tenant:
    return _store().tenant_create(name="Tenant A")


@pytest.fixture
def tenant_b(db: None) -> Tenant:
    return _store().tenant_create(name="Tenant B")


@pytest.fixture
def domain_a(tenant_a: Tenant) -> Domain:
    return _store().domain_create(tenant=tenant_a, name="a.test")


@pytest.fixture
def domain_b(tenant_b: Tenant) -> Domain:
    return _store().domain_create(tenant=tenant_b, name="b.test")


@pytest.fixture
def alice(domain_a: Domain) -> Account:
    return _store().account_create(address="alice@a.test", password=PASSWORD, display_name="Alice Liddell")


@pytest.fixture
def bob(domain_b: Domain) -> Account:
    return _store().account_create(address="bob@b.test", password=PASSWORD, display_name="Bob Builder")


@pytest.fixture
def mallory(domain_a: Domain) -> Account:
    return _store().account_create(address="mallory@a.test", password=PASSWORD, display_name="Mallory")


@pytest.fixture
def redis_unreachable(settings: Any) -> Iterator[str]:
    """Point ``REDIS_URL`` at a closed port on 127.0.0.1: every Redis call fails (connection refused).
    Clears the login throttle's per-process fallback counts before and after."""
    import socket

    from mailcore.auth import LoginThrottle

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens once the socket is closed: connecting gets ECONNREFUSED at once.
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    LoginThrottle.local.clear()
    yield settings.REDIS_URL
    LoginThrottle.local.clear()


@pytest.fixture(params=["redis", "redis unreachable"])
def redis_or_not(request: pytest.FixtureRequest) -> str:
    """Runs a test twice: with Redis, then with Redis unreachable (``redis_unreachable``), for the
    login throttle, which must count in the process and never fail open without it."""
    if request.param == "redis unreachable":
        request.getfixturevalue("redis_unreachable")
    return str(request.param)


def make_message(
    subject: str = "Hello",
    body: str = "Hi there.\r\n",
    sender: str = "carol@example.org",
    to: str = "alice@a.test",
    message_id: str | None = None,
    extra_headers: str = "",
) -> bytes:
    import uuid

    mid = message_id or f"{uuid.uuid4()}@example.org"
    return (
        f"From: Carol <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{mid}>\r\n{extra_headers}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


__all__ = ["PASSWORD", "make_message"]
