"""The Django admin for operators (superusers) and tenant admins.

A tenant admin sees and changes only their own tenant's domains, accounts and aliases: every
queryset, every foreign-key choice and every save is scoped to ``request.user.tenant``.
Operators see everything. Accounts are created through the store, so they get their folders.
"""

from __future__ import annotations

import importlib
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from mailcore import store
from mailcore.addresses import AddressError, normalize_address
from mailcore.models import Account, Alias, Domain, Folder, Tenant

admin.site.site_header = "Mail administration"
admin.site.site_title = "Mail administration"
admin.site.unregister(Group)


def _tenant_id(request: HttpRequest) -> int | None:
    """None for operators (no restriction), the admin's tenant id otherwise."""
    user = request.user
    if getattr(user, "is_superuser", False):
        return None
    return getattr(user, "tenant_id", None) or -1


class TenantScopedAdmin(admin.ModelAdmin):
    """Tenant admins get full rights inside their tenant and nothing outside it."""

    tenant_path = "tenant"  # the lookup from the model to its tenant

    def _allowed(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(getattr(user, "is_superuser", False) or getattr(user, "is_tenant_admin", False))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request) and (obj is None or self._owns(request, obj))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def _owns(self, request: HttpRequest, obj: Any) -> bool:
        tenant_id = _tenant_id(request)
        return tenant_id is None or getattr(obj, "tenant_id", None) == tenant_id

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        tenant_id = _tenant_id(request)
        return qs if tenant_id is None else qs.filter(**{f"{self.tenant_path}_id": tenant_id})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        tenant_id = _tenant_id(request)
        if tenant_id is not None:
            if db_field.related_model is Domain:
                kwargs["queryset"] = Domain.objects.filter(tenant_id=tenant_id)
            elif db_field.related_model is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk=tenant_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    has_change_permission = has_view_permission
    has_delete_permission = has_view_permission

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))


@admin.register(Domain)
class DomainAdmin(TenantScopedAdmin):
    list_display = ["display_name", "name", "tenant", "catch_all", "created_at"]
    search_fields = ["name"]
    list_filter = ["tenant"]
    fields = ["tenant", "name", "catch_all", "dkim_selector", "dkim_dns_record"]
    readonly_fields = ["dkim_dns_record"]

    @admin.display(description="DKIM DNS record")
    def dkim_dns_record(self, obj: Domain) -> str:
        try:
            from mailcore.relay.dkim import dkim_dns_record
        except ImportError:
            return "—"
        try:
            return dkim_dns_record(obj) if obj.pk and obj.dkim_private_key else "No key yet: run manage.py dkimkey"
        except Exception as exc:  # noqa: BLE001 - a broken key must not break the page
            return f"The stored key cannot be read: {exc}"

    def save_model(self, request: HttpRequest, obj: Domain, form: Any, change: bool) -> None:
        tenant_id = _tenant_id(request)
        if tenant_id is not None and obj.tenant_id != tenant_id:
            raise PermissionDenied
        super().save_model(request, obj, form, change)


class AccountCreationForm(forms.ModelForm):
    password = forms.CharField(widget=forms.PasswordInput, help_text="The account's password for web and mail.")

    class Meta:
        model = Account
        fields = ["address", "display_name", "role", "quota_bytes", "is_active"]

    def clean_address(self) -> str:
        try:
            return normalize_address(self.cleaned_data["address"])
        except AddressError as exc:
            raise ValidationError(str(exc)) from None


class AccountChangeForm(forms.ModelForm):
    new_password = forms.CharField(
        widget=forms.PasswordInput, required=False, help_text="Leave empty to keep the current password."
    )

    class Meta:
        model = Account
        fields = ["display_name", "role", "quota_bytes", "is_active"]


@admin.register(Account)
class AccountAdmin(TenantScopedAdmin):
    list_display = ["address", "display_name", "role", "quota_bytes", "used_bytes", "is_active", "last_login"]
    list_filter = ["role", "is_active", "tenant"]
    search_fields = ["address", "display_name"]
    readonly_fields = ["used_bytes", "last_login", "created_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = AccountChangeForm if obj is not None else AccountCreationForm
        form = super().get_form(request, obj, change=change, **kwargs)
        if not getattr(request.user, "is_superuser", False) and "role" in form.base_fields:
            form.base_fields["role"].choices = [  # type: ignore[attr-defined]
                c for c in Account.Role.choices if c[0] != Account.Role.OPERATOR
            ]
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        if obj is None:
            return ["address", "password", "display_name", "role", "quota_bytes", "is_active"]
        return ["display_name", "role", "quota_bytes", "is_active", "new_password", "used_bytes", "last_login",
                "created_at"]

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        tenant_id = _tenant_id(request)
        if change:
            if tenant_id is not None and obj.tenant_id != tenant_id:
                raise PermissionDenied
            if tenant_id is not None and obj.role == Account.Role.OPERATOR:
                raise PermissionDenied
            super().save_model(request, obj, form, change)
            if form.cleaned_data.get("new_password"):
                store.account_set_password(account=obj, password=form.cleaned_data["new_password"])
            return
        domain = Domain.objects.filter(name=obj.address.rpartition("@")[2]).first()
        if domain is None or (tenant_id is not None and domain.tenant_id != tenant_id):
            raise PermissionDenied("That domain is not one of yours.")
        created = store.account_create(
            address=obj.address,
            password=form.cleaned_data["password"],
            quota_bytes=obj.quota_bytes,
            display_name=obj.display_name,
            role=obj.role,
        )
        obj.pk = created.pk
        obj.refresh_from_db()


class AliasForm(forms.ModelForm):
    destinations_text = forms.CharField(
        label="Destinations", widget=forms.Textarea(attrs={"rows": 3}), help_text="One address per line."
    )

    class Meta:
        model = Alias
        fields = ["domain", "address"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["destinations_text"].initial = "\n".join(self.instance.destinations)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        lines = [x.strip() for x in str(data.get("destinations_text", "")).replace(",", "\n").splitlines() if x.strip()]
        if not lines:
            self.add_error("destinations_text", "An alias needs at least one destination.")
            return data
        try:
            self.instance.destinations = [normalize_address(x) for x in lines]
        except AddressError as exc:
            self.add_error("destinations_text", str(exc))
        return data

    def _post_clean(self) -> None:
        if not self.errors:  # the model's own checks only once the form's have passed
            super()._post_clean()  # type: ignore[misc]


@admin.register(Alias)
class AliasAdmin(TenantScopedAdmin):
    form = AliasForm
    tenant_path = "domain__tenant"
    list_display = ["address", "destination_list", "domain"]
    search_fields = ["address"]

    @admin.display(description="Destinations")
    def destination_list(self, obj: Alias) -> str:
        return ", ".join(obj.destinations)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        tenant_id = _tenant_id(request)
        return qs if tenant_id is None else qs.filter(domain__tenant_id=tenant_id)

    def _owns(self, request: HttpRequest, obj: Any) -> bool:
        tenant_id = _tenant_id(request)
        return tenant_id is None or obj.domain.tenant_id == tenant_id

    def save_model(self, request: HttpRequest, obj: Alias, form: Any, change: bool) -> None:
        tenant_id = _tenant_id(request)
        if tenant_id is not None and obj.domain.tenant_id != tenant_id:
            raise PermissionDenied
        obj.full_clean()
        super().save_model(request, obj, form, change)


@admin.register(Folder)
class FolderAdmin(admin.ModelAdmin):
    """Read-only view for operators: folder state is changed only through the store."""

    list_display = ["name", "account", "special_use", "total_count", "unseen_count", "uid_next", "highest_modseq"]
    search_fields = ["account__address", "name"]
    list_select_related = ["account"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


try:  # the relay's queue admin (retry now, cancel) lives with the relay
    importlib.import_module("mailcore.relay.admin")
except ModuleNotFoundError as exc:
    if exc.name != "mailcore.relay.admin":
        raise
