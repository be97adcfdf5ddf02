from __future__ import annotations

import pytest
from django.test import Client

from mailcore import store
from mailcore.models import Account, Alias, Domain
from tests.conftest import PASSWORD


@pytest.fixture
def tenant_admin(domain_a) -> Account:
    return store.account_create(address="admin@a.test", password=PASSWORD, role=Account.Role.TENANT_ADMIN)


@pytest.fixture
def admin_client(tenant_admin) -> Client:
    client = Client()
    client.force_login(tenant_admin)
    return client


def test_tenant_admin_lists_only_their_own_tenant(admin_client, alice, bob):
    store.alias_create(address="sales@a.test", destinations=["alice@a.test"])
    store.alias_create(address="info@b.test", destinations=["bob@b.test"])
    accounts = admin_client.get("/admin/mailcore/account/").content.decode()
    assert "alice@a.test" in accounts and "bob@b.test" not in accounts
    domains = admin_client.get("/admin/mailcore/domain/").content.decode()
    assert "a.test" in domains and "b.test" not in domains
    aliases = admin_client.get("/admin/mailcore/alias/").content.decode()
    assert "sales@a.test" in aliases and "info@b.test" not in aliases
    assert admin_client.get("/admin/mailcore/tenant/").status_code == 403


def test_tenant_admin_cannot_open_or_change_another_tenants_objects(admin_client, bob, domain_b):
    for url in [f"/admin/mailcore/account/{bob.pk}/change/", f"/admin/mailcore/domain/{domain_b.pk}/change/"]:
        assert admin_client.get(url).status_code in (302, 403, 404)
    response = admin_client.post(f"/admin/mailcore/account/{bob.pk}/change/",
                                 {"display_name": "Hacked", "role": "user", "quota_bytes": 0, "is_active": "on"})
    assert response.status_code in (302, 403, 404)
    bob.refresh_from_db()
    assert bob.display_name == "Bob Builder"


def test_tenant_admin_creates_accounts_only_in_their_domains(admin_client, domain_b):
    ok = admin_client.post("/admin/mailcore/account/add/", {
        "address": "New.Person@A.test", "password": PASSWORD, "display_name": "New", "role": "user",
        "quota_bytes": 0, "is_active": "on"})
    assert ok.status_code == 302
    created = Account.objects.get(address="new.person@a.test")
    assert created.folders.count() == 6 and created.check_password(PASSWORD)
    refused = admin_client.post("/admin/mailcore/account/add/", {
        "address": "intruder@b.test", "password": PASSWORD, "display_name": "", "role": "user",
        "quota_bytes": 0, "is_active": "on"})
    assert refused.status_code == 403
    assert not Account.objects.filter(address="intruder@b.test").exists()


def test_tenant_admin_cannot_grant_operator_role(admin_client, alice):
    page = admin_client.get(f"/admin/mailcore/account/{alice.pk}/change/").content.decode()
    assert 'value="operator"' not in page


def test_alias_form_normalises_and_scopes_domains(admin_client, alice, domain_a, domain_b):
    page = admin_client.get("/admin/mailcore/alias/add/").content.decode()
    assert f'value="{domain_b.pk}"' not in page
    response = admin_client.post("/admin/mailcore/alias/add/", {
        "domain": domain_a.pk, "address": "Help@A.TEST", "destinations_text": "ALICE@a.test\nfriend@remote.example"})
    assert response.status_code == 302
    alias = Alias.objects.get()
    assert alias.address == "help@a.test" and alias.destinations == ["alice@a.test", "friend@remote.example"]
    bad = admin_client.post("/admin/mailcore/alias/add/", {
        "domain": domain_a.pk, "address": "x@a.test", "destinations_text": "not an address"})
    assert bad.status_code == 200 and "name@domain" in bad.content.decode()


def test_plain_users_cannot_use_the_admin(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/admin/").status_code == 302


def test_operator_sees_every_tenant(alice, bob):
    operator = Account.objects.create_superuser("root@ops.example", PASSWORD)
    client = Client()
    client.force_login(operator)
    page = client.get("/admin/mailcore/account/").content.decode()
    assert "alice@a.test" in page and "bob@b.test" in page
    assert Domain.objects.count() == 2
