"""The store's prepared statements get generic plans in the mail servers (``use_generic_plans``):
PostgreSQL would otherwise plan the delivery statement afresh on every execution once the tables
have statistics (store/sql.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from mailcore.models import Folder
from mailcore.store.copies import CopyTarget, store_copies
from mailcore.store.sql import stop_generic_plans, use_generic_plans
from tests.conftest import make_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def generic_plans() -> Iterator[None]:
    use_generic_plans()
    connection.close()  # the next statement opens a connection, which the setting reaches
    yield
    stop_generic_plans()
    connection.close()


def test_the_delivery_statement_is_never_planned_for_its_values(generic_plans, alice) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # statistics, as a production database has
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)
    inbox = Folder.objects.get(account=alice, special_use=Folder.SpecialUse.INBOX)
    for n in range(8):
        store_copies(raw=make_message(subject=f"n{n}"), targets=[CopyTarget(alice.pk, inbox.pk)], alone=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%INSERT INTO mailcore_blob%"],
        )
        assert cursor.fetchall() == [(8, 0)]


def test_without_it_connections_keep_postgresql_s_default() -> None:
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("auto",)
