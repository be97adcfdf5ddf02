"""Browser journeys: Debian's Chromium driven by Playwright against the real ASGI app.

pytest-django's ``live_server`` is WSGI and has no websockets, so the app runs under daphne in
a subprocess on an ephemeral port, against the test database (tests here commit their data:
``django_db(transaction=True)``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import expect

from mailcore import store
from mailcore.models import Account
from tests.conftest import PASSWORD
from tests.webmail.daphne import daphne_serving

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are ordinary blocking calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
SERVER_START_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return {
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"],
    }


# Shared CI machines can be loaded several times over: expectations wait up to 15 s (Playwright's
# default is 5 s) before they fail. The assertions are unchanged; only the patience grows.
expect.set_options(timeout=15_000)


@pytest.fixture(autouse=True)
def _fast_password_hashing() -> None:
    """The server process checks passwords with the real hashers, so tests store real hashes."""


@pytest.fixture(scope="session")
def web_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """daphne serving webmail.asgi on 127.0.0.1 and an ephemeral port; yields its base URL."""
    with django_db_blocker.unblock():
        db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL, "DB_CONN_MAX_AGE": "0",
           "DJANGO_SETTINGS_MODULE": "webmail.settings"}
    with daphne_serving(env, start_timeout=SERVER_START_TIMEOUT) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def people(transactional_db: None) -> dict[str, Account]:
    tenant = store.tenant_create(name="Browser tenant")
    store.domain_create(tenant=tenant, name="a.test")
    store.domain_create(tenant=tenant, name="b.test")
    return {
        "alice": store.account_create(address="alice@a.test", password=PASSWORD, display_name="Alice Liddell"),
        "bob": store.account_create(address="bob@b.test", password=PASSWORD, display_name="Bob Builder"),
    }


def sign_in(page: Any, base: str, address: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Email address").fill(address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"))


def wait_live(page: Any) -> None:
    """The websocket is open and the catch-up refresh it triggers has been swapped in."""
    page.locator("#live-status.on").wait_for(timeout=10000)
    page.wait_for_load_state("networkidle")


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


__all__ = ["screenshot", "sign_in", "wait_live"]
