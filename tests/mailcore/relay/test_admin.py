"""The queue in the admin: columns and the retry-now and cancel actions, as an operator."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from mailcore.models import Account, OutboundRecipient
from mailcore.relay.admin import register
from mailcore.relay.queue import Outcome, OutcomeKind, outcomes_record, recipients_claim
from mailcore.relay.submit import message_submit
from tests.conftest import make_message

Status = OutboundRecipient.Status


@pytest.fixture
def site() -> admin.AdminSite:
    register(admin.site)  # a no-op when mailcore/admin.py imported the module already
    return admin.site


@pytest.fixture
def operator_client(db: None) -> Client:
    operator = Account.objects.create_superuser("root@ops.test", "operator password 1")
    client = Client()
    client.force_login(operator)
    return client


def deferred_row(alice: Account) -> OutboundRecipient:
    message_submit(raw=make_message(sender="alice@a.test"), mail_from="alice@a.test", recipients=["carol@remote.test"])
    [batch] = recipients_claim()
    outcomes_record(claim=batch.claim, outcomes=[Outcome(batch.recipient_ids[0], OutcomeKind.DEFERRED, "mx[127.0.0.1] said: 451 4.3.0 later")])
    return OutboundRecipient.objects.get()


def test_queue_list_shows_status_attempts_next_attempt_and_last_reply(site: admin.AdminSite, operator_client: Client, alice: Account) -> None:
    deferred_row(alice)
    response = operator_client.get("/admin/mailcore/outboundrecipient/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "carol@remote.test" in body and "451 4.3.0 later" in body
    for column in ("status", "attempts", "next attempt", "last reply"):
        assert column in body.lower()


def test_retry_now_and_cancel_actions(site: admin.AdminSite, operator_client: Client, alice: Account) -> None:
    row = deferred_row(alice)
    url = "/admin/mailcore/outboundrecipient/"
    response = operator_client.post(url, {"action": "retry_now", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.status == Status.QUEUED
    assert len(recipients_claim()) == 1  # due now
    OutboundRecipient.objects.filter(pk=row.pk).update(status=Status.QUEUED, claim="")
    operator_client.post(url, {"action": "cancel", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == Status.CANCELLED


def test_tenant_admins_do_not_see_the_queue(site: admin.AdminSite, alice: Account) -> None:
    alice.role = Account.Role.TENANT_ADMIN
    alice.save(update_fields=["role"])
    client = Client()
    client.force_login(alice)
    assert client.get("/admin/mailcore/outboundrecipient/").status_code == 403
