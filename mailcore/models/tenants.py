from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from mailcore.addresses import AddressError, domain_to_unicode, normalize_address, normalize_domain


class Tenant(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Domain(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="domains")
    # Canonical A-label, lower case (mailcore.addresses.normalize_domain).
    name = models.CharField(max_length=253, unique=True)
    # Where mail to unknown local parts goes; empty means "reject with 550 5.1.1".
    catch_all = models.CharField(max_length=320, blank=True)
    dkim_selector = models.CharField(max_length=63, blank=True, default="mail")
    dkim_private_key = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return domain_to_unicode(self.name)

    def clean(self) -> None:
        try:
            self.name = normalize_domain(self.name)
        except AddressError as exc:
            raise ValidationError({"name": str(exc)}) from None
        if self.catch_all:
            try:
                self.catch_all = normalize_address(self.catch_all)
            except AddressError as exc:
                raise ValidationError({"catch_all": str(exc)}) from None


class AccountManager(BaseUserManager["Account"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> Account:
        try:
            address = normalize_address(username or "")
        except AddressError:
            raise self.model.DoesNotExist from None
        return self.get(address=address)

    def create_user(self, address: str, password: str | None = None, **extra: Any) -> Account:
        # Mail accounts are made by mailcore.store.account_create (folders, quota); this path
        # exists for Django's own tooling (createsuperuser) and makes an operator login.
        account = self.model(address=normalize_address(address), **extra)
        account.set_password(password)
        account.save(using=self._db)
        return account

    def create_superuser(self, address: str, password: str | None = None, **extra: Any) -> Account:
        extra.setdefault("is_superuser", True)
        extra.setdefault("role", Account.Role.OPERATOR)
        return self.create_user(address, password, **extra)


class Account(AbstractBaseUser, PermissionsMixin):
    class Role(models.TextChoices):
        USER = "user", "User"
        TENANT_ADMIN = "tenant_admin", "Tenant admin"
        OPERATOR = "operator", "Operator"

    # Canonical form (mailcore.addresses.normalize_address); logins are normalised the same way,
    # which makes them case-insensitive and IDN-consistent.
    address = models.CharField(max_length=320, unique=True)
    # Null only for operator logins that own no mailbox.
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="accounts", null=True, blank=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="accounts", null=True, blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.USER)
    is_active = models.BooleanField(default=True)
    quota_bytes = models.BigIntegerField(default=0, help_text="0 means unlimited.")
    used_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    # Preferences of the web UI.
    signature = models.TextField(blank=True)
    page_size = models.PositiveSmallIntegerField(default=50)
    conversation_view = models.BooleanField(default=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    keyboard_shortcuts = models.BooleanField(default=True)

    objects = AccountManager()

    USERNAME_FIELD = "address"
    EMAIL_FIELD = "address"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["address"]
        indexes = [models.Index(Lower("address"), name="account_address_lower")]

    def __str__(self) -> str:
        return self.display_address

    @property
    def display_address(self) -> str:
        local, _, domain = self.address.rpartition("@")
        return f"{local}@{domain_to_unicode(domain)}"

    @property
    def is_staff(self) -> bool:  # type: ignore[override]
        return self.is_active and (self.is_superuser or self.role == self.Role.TENANT_ADMIN)

    @property
    def is_tenant_admin(self) -> bool:
        return self.role == self.Role.TENANT_ADMIN

    def has_quota_for(self, size: int) -> bool:
        return self.quota_bytes == 0 or self.used_bytes + size <= self.quota_bytes

    def clean(self) -> None:
        try:
            self.address = normalize_address(self.address)
        except AddressError as exc:
            raise ValidationError({"address": str(exc)}) from None
        if self.domain is not None:
            domain_name = self.address.rpartition("@")[2]
            if self.domain.name != domain_name:
                raise ValidationError({"address": f"The address must be in the domain {self.domain.display_name}."})
            self.tenant_id = self.domain.tenant_id


class Alias(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="aliases")
    address = models.CharField(max_length=320, unique=True)
    # Canonical addresses, local or remote.
    destinations = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return f"{self.address} → {', '.join(self.destinations)}"

    def clean(self) -> None:
        try:
            self.address = normalize_address(self.address)
        except AddressError as exc:
            raise ValidationError({"address": str(exc)}) from None
        if self.domain_id is not None and self.address.rpartition("@")[2] != self.domain.name:
            raise ValidationError({"address": f"The alias must be in the domain {self.domain.display_name}."})
        if not self.destinations:
            raise ValidationError("An alias needs at least one destination.")
        cleaned = []
        for item in self.destinations:
            try:
                cleaned.append(normalize_address(str(item)))
            except AddressError as exc:
                raise ValidationError(f"Destination: {exc}") from None
        self.destinations = cleaned

