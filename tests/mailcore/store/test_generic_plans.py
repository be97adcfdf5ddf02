"""The delivery statement gets a generic plan in the SMTP server's threads (``use_generic_plans``,
their pool's initializer): PostgreSQL would otherwise plan it afresh on every execution once the
tables have statistics (store/sql.py). Other threads keep PostgreSQL's default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from mailcore.models import Folder
from mailcore.store.copies import CopyTarget, store_copies
from mailcore.store.sql import use_generic_plans
from tests.conftest import make_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def generic_plans() -> Iterator[None]:
    use_generic_plans()
    connection.close()  # the next statement opens a connection, which the setting reaches
    yield
    use_generic_plans(False)
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


def test_other_threads_keep_postgresql_s_default(generic_plans) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def mode() -> str:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW plan_cache_mode")
                return str(cursor.fetchone()[0])
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as plain, ThreadPoolExecutor(1, initializer=use_generic_plans) as delivering:
        assert plain.submit(mode).result(10) == "auto"
        assert delivering.submit(mode).result(10) == "force_generic_plan"
