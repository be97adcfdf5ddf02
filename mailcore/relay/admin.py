"""Admin for the outbound queue: per-recipient status, attempts, next attempt and last reply.

Importing this module registers the two model admins on ``admin.site`` (mailcore/admin.py
imports it); ``register(site)`` does the same for another site. The queue spans tenants, so
only operators (superusers) see it. Retry-now and cancel go through the queue services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from mailcore.models import OutboundMessage, OutboundRecipient

from .queue import recipients_cancel, recipients_retry_now


class OperatorOnly:
    """The queue holds every tenant's mail: operators only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))


class OutboundRecipientInline(OperatorOnly, admin.TabularInline):
    model = OutboundRecipient
    extra = 0
    can_delete = False
    fields = ["address", "status", "attempts", "next_attempt_at", "last_attempt_at", "last_reply"]
    readonly_fields = ["address", "status", "attempts", "next_attempt_at", "last_attempt_at", "last_reply"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OutboundMessageAdmin(OperatorOnly, admin.ModelAdmin):
    list_display = ["id", "mail_from", "account", "created_at", "recipient_count"]
    search_fields = ["mail_from", "recipients__address"]
    readonly_fields = ["account", "blob", "mail_from", "dsn_ret", "dsn_envid", "smtputf8", "created_at"]
    inlines = [OutboundRecipientInline]
    list_select_related = ["account"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboundMessage]:
        from django.db.models import Count

        return super().get_queryset(request).annotate(_recipients=Count("recipients"))

    @admin.display(description="recipients", ordering="_recipients")
    def recipient_count(self, obj: Any) -> int:
        return int(getattr(obj, "_recipients", 0))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.action(description="Retry now (queued recipients)", permissions=["change"])
def retry_now(modeladmin: admin.ModelAdmin[OutboundRecipient], request: HttpRequest, queryset: QuerySet[OutboundRecipient]) -> None:
    count = recipients_retry_now(recipient_ids=list(queryset.values_list("id", flat=True)))
    modeladmin.message_user(request, f"{count} recipient(s) will be retried now.", messages.SUCCESS)


@admin.action(description="Cancel (queued recipients)", permissions=["change"])
def cancel(modeladmin: admin.ModelAdmin[OutboundRecipient], request: HttpRequest, queryset: QuerySet[OutboundRecipient]) -> None:
    count = recipients_cancel(recipient_ids=list(queryset.values_list("id", flat=True)))
    modeladmin.message_user(request, f"{count} recipient(s) cancelled.", messages.SUCCESS)


class OutboundRecipientAdmin(OperatorOnly, admin.ModelAdmin):
    list_display = ["address", "status", "attempts", "interruptions", "next_attempt_at", "last_attempt_at", "short_reply",
                    "message_id"]
    list_filter = ["status", "domain"]
    search_fields = ["address", "domain", "message__mail_from"]
    ordering = ["next_attempt_at"]
    actions = [retry_now, cancel]
    readonly_fields = [
        "message", "address", "domain", "status", "attempts", "interruptions", "next_attempt_at", "lease_until", "claim",
        "last_attempt_at", "last_reply", "notify", "orcpt", "delay_warned", "created_at",
    ]

    @admin.display(description="last reply")
    def short_reply(self, obj: OutboundRecipient) -> str:
        return obj.last_reply[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def register(site: admin.AdminSite) -> None:
    if not site.is_registered(OutboundMessage):
        site.register(OutboundMessage, OutboundMessageAdmin)
    if not site.is_registered(OutboundRecipient):
        site.register(OutboundRecipient, OutboundRecipientAdmin)


register(admin.site)
