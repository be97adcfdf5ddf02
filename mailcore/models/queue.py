from __future__ import annotations

from django.db import models

from .mail import Blob
from .tenants import Account


class OutboundMessage(models.Model):
    """A message waiting to be relayed to remote recipients (see mailcore.relay)."""

    account = models.ForeignKey(Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="outbound")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="outbound")
    # Envelope sender; empty for the null sender <> (bounces), which never get a DSN back.
    mail_from = models.CharField(max_length=320, blank=True)
    # RFC 3461 parameters: RET=FULL|HDRS and ENVID.
    dsn_ret = models.CharField(max_length=4, blank=True)
    dsn_envid = models.CharField(max_length=100, blank=True)
    smtputf8 = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"outbound {self.pk} from <{self.mail_from}>"


class OutboundRecipient(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320)
    domain = models.CharField(max_length=253, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    # Token of the claim that set SENDING; results are recorded only under the same token, so a
    # worker whose lease expired cannot overwrite what a later claim decided (mailcore.relay.queue).
    claim = models.CharField(max_length=32, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_reply = models.TextField(blank=True)
    # RFC 3461 NOTIFY (comma-separated, empty = default FAILURE,DELAY) and ORCPT ("addr-type;xtext").
    notify = models.CharField(max_length=40, blank=True)
    orcpt = models.CharField(max_length=500, blank=True)  # RFC 3461 §4.2: up to 500 characters
    delay_warned = models.BooleanField(default=False)
    # Claims of this row whose worker vanished before recording an outcome (lease expired): a
    # message that crashes the worker every time fails after RELAY_MAX_INTERRUPTIONS of them.
    interruptions = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outrcpt_due")]

    def __str__(self) -> str:
        return f"{self.address} ({self.status})"
