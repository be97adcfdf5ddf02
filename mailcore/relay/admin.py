"""Admin for the outbound queue: per-recipient status, attempts, next attempt and last reply.

``register(site)`` adds the two model admins to an admin site (mailcore/admin.py calls it with
``admin.site``). Retry-now and cancel go through the queue services, never ``save()``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from mailcore.models import OutboundMessage, OutboundRecipient

from .queue import recipients_cancel, recipients_retry_now


class OutboundRecipientInline(admin.TabularInline):
    model = OutboundRecipient
    extra = 0
    can_delete = False
    fields = ["address", "status", "attempts", "next_attempt_at", "last_attempt_at", "last_reply"]
    readonly_fields = ["address", "status", "attempts", "next_attempt_at", "last_attempt_at", "last_reply"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OutboundMessageAdmin(admin.ModelAdmin):
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


@admin.action(description="Retry now (queued recipients)")
def retry_now(modeladmin: admin.ModelAdmin[OutboundRecipient], request: HttpRequest, queryset: QuerySet[OutboundRecipient]) -> None:
    count = recipients_retry_now(recipient_ids=list(queryset.values_list("id", flat=True)))
    modeladmin.message_user(request, f"{count} recipient(s) will be retried now.", messages.SUCCESS)


@admin.action(description="Cancel (queued recipients)")
def cancel(modeladmin: admin.ModelAdmin[OutboundRecipient], request: HttpRequest, queryset: QuerySet[OutboundRecipient]) -> None:
    count = recipients_cancel(recipient_ids=list(queryset.values_list("id", flat=True)))
    modeladmin.message_user(request, f"{count} recipient(s) cancelled.", messages.SUCCESS)


class OutboundRecipientAdmin(admin.ModelAdmin):
    list_display = ["address", "status", "attempts", "next_attempt_at", "last_attempt_at", "short_reply", "message_id"]
    list_filter = ["status", "domain"]
    search_fields = ["address", "domain", "message__mail_from"]
    ordering = ["next_attempt_at"]
    actions = [retry_now, cancel]
    readonly_fields = [
        "message", "address", "domain", "status", "attempts", "next_attempt_at", "lease_until", "claim",
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
    site.register(OutboundMessage, OutboundMessageAdmin)
    site.register(OutboundRecipient, OutboundRecipientAdmin)
