"""Tenants, domains, accounts and aliases."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from mailcore.addresses import AddressError, normalize_address, normalize_domain
from mailcore.models import Account, Alias, Domain, Tenant

from .errors import StoreError
from .folders import folders_create_defaults


class AccountError(StoreError):
    pass


@transaction.atomic
def tenant_create(*, name: str) -> Tenant:
    name = name.strip()
    if not name:
        raise AccountError("a tenant needs a name")
    if len(name) > 100:
        raise AccountError("a tenant name is at most 100 characters")
    if Tenant.objects.filter(name__iexact=name).exists():
        raise AccountError(f"a tenant named {name!r} already exists")
    return Tenant.objects.create(name=name)


@transaction.atomic
def domain_create(*, tenant: Tenant, name: str, catch_all: str = "") -> Domain:
    try:
        canonical = normalize_domain(name)
        catch_all = normalize_address(catch_all) if catch_all else ""
    except AddressError as exc:
        raise AccountError(str(exc)) from None
    if Domain.objects.filter(name=canonical).exists():
        raise AccountError(f"the domain {name} is already served here")
    return Domain.objects.create(tenant=tenant, name=canonical, catch_all=catch_all)


@transaction.atomic
def account_create(
    *,
    address: str,
    password: str | None,
    quota_bytes: int | None = None,
    display_name: str = "",
    role: str = Account.Role.USER,
) -> Account:
    """Make a mailbox in one of our domains, with its six special folders."""
    try:
        canonical = normalize_address(address)
    except AddressError as exc:
        raise AccountError(str(exc)) from None
    domain_name = canonical.rpartition("@")[2]
    domain = Domain.objects.filter(name=domain_name).first()
    if domain is None:
        raise AccountError(f"the domain {domain_name} is not served here; create it first")
    if Account.objects.filter(address=canonical).exists():
        raise AccountError(f"the account {canonical} already exists")
    if Alias.objects.filter(address=canonical).exists():
        raise AccountError(f"{canonical} is already an alias")
    if quota_bytes is not None and quota_bytes < 0:
        raise AccountError("a quota cannot be negative")
    account = Account(
        address=canonical,
        domain=domain,
        tenant_id=domain.tenant_id,
        display_name=display_name,
        role=role,
        quota_bytes=settings.DEFAULT_QUOTA if quota_bytes is None else quota_bytes,
    )
    if password:
        account.set_password(password)
    else:
        account.set_unusable_password()
    account.save()
    folders_create_defaults(account=account)
    return account


@transaction.atomic
def account_set_password(*, account: Account, password: str) -> Account:
    if not password:
        raise AccountError("the password is empty")
    account.set_password(password)
    account.save(update_fields=["password"])
    return account


@transaction.atomic
def alias_create(*, address: str, destinations: Sequence[str]) -> Alias:
    try:
        canonical = normalize_address(address)
        targets = [normalize_address(d) for d in destinations]
    except AddressError as exc:
        raise AccountError(str(exc)) from None
    if not targets:
        raise AccountError("an alias needs at least one destination")
    domain = Domain.objects.filter(name=canonical.rpartition("@")[2]).first()
    if domain is None:
        raise AccountError(f"the domain of {canonical} is not served here")
    if Account.objects.filter(address=canonical).exists() or Alias.objects.filter(address=canonical).exists():
        raise AccountError(f"{canonical} is already in use")
    return Alias.objects.create(domain=domain, address=canonical, destinations=list(dict.fromkeys(targets)))


def account_send_as(account: Account) -> list[str]:
    """The envelope senders an account may use: its own address and aliases that reach it."""
    addresses = [account.address]
    if account.tenant_id is None:
        return addresses
    for alias in Alias.objects.filter(domain__tenant_id=account.tenant_id):
        if account.address in alias.destinations:
            addresses.append(alias.address)
    return addresses
