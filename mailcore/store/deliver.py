"""Final delivery to local mailboxes: recipient resolution and ``message_deliver``."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from mailcore.addresses import AddressError, normalize_address
from mailcore.mime import ParsedMessage, parse_message
from mailcore.models import Account, Alias, Domain, Folder

from .copies import CopyTarget, store_copies

MAX_ALIAS_DEPTH = 8


class RecipientKind(enum.Enum):
    LOCAL = "local"  # one or more local accounts (and maybe remote forwards, for aliases)
    REMOTE = "remote"  # not a domain of ours
    UNKNOWN = "unknown"  # our domain, no such mailbox
    INVALID = "invalid"  # not an address at all


@dataclass
class Resolution:
    address: str  # canonical when valid, else as given
    kind: RecipientKind
    account_ids: list[int] = field(default_factory=list)
    forwards: list[str] = field(default_factory=list)  # remote destinations of aliases
    reason: str = ""


def recipient_resolve(address: str) -> Resolution:
    """Where mail to ``address`` goes: local accounts (aliases and catch-all expanded) or not."""
    try:
        canonical = normalize_address(address)
    except AddressError as exc:
        return Resolution(address=address, kind=RecipientKind.INVALID, reason=str(exc))
    domain_name = canonical.rpartition("@")[2]
    domain = Domain.objects.filter(name=domain_name).first()
    if domain is None:
        return Resolution(address=canonical, kind=RecipientKind.REMOTE)
    accounts: set[int] = set()
    forwards: list[str] = []
    found = _expand(canonical, accounts, forwards, depth=0, seen=set())
    if not found and domain.catch_all:
        found = _expand(domain.catch_all, accounts, forwards, depth=1, seen={canonical})
    if not found or (not accounts and not forwards):
        return Resolution(address=canonical, kind=RecipientKind.UNKNOWN, reason="no such mailbox here")
    return Resolution(
        address=canonical, kind=RecipientKind.LOCAL, account_ids=sorted(accounts), forwards=forwards
    )


def _expand(address: str, accounts: set[int], forwards: list[str], *, depth: int, seen: set[str]) -> bool:
    if address in seen or depth > MAX_ALIAS_DEPTH:
        return False
    seen.add(address)
    account = Account.objects.filter(address=address, is_active=True, domain__isnull=False).values_list("id", flat=True)
    account_id = next(iter(account), None)
    if account_id is not None:
        accounts.add(account_id)
        return True
    alias = Alias.objects.filter(address=address).values_list("destinations", flat=True).first()
    if alias is None:
        domain_name = address.rpartition("@")[2]
        if not Domain.objects.filter(name=domain_name).exists():
            if address not in forwards:
                forwards.append(address)
            return True
        return False
    hit = False
    for destination in alias:
        hit = _expand(str(destination), accounts, forwards, depth=depth + 1, seen=seen) or hit
    return hit


class DeliveryStatus(enum.Enum):
    DELIVERED = "delivered"
    OVER_QUOTA = "over_quota"
    UNKNOWN = "unknown"
    NOT_LOCAL = "not_local"


@dataclass
class RecipientResult:
    address: str
    status: DeliveryStatus
    reason: str = ""
    message_ids: list[int] = field(default_factory=list)
    forwards: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is DeliveryStatus.DELIVERED


@dataclass
class DeliveryResult:
    recipients: list[RecipientResult]
    blob_id: int | None = None

    @property
    def forwards(self) -> list[str]:
        out: list[str] = []
        for r in self.recipients:
            out.extend(f for f in r.forwards if f not in out)
        return out


@transaction.atomic
def message_deliver(
    *,
    raw: bytes,
    recipients: Sequence[str | Resolution],
    parsed: ParsedMessage | None = None,
    received_at: datetime | None = None,
    junk: bool = False,
) -> DeliveryResult:
    """Deliver ``raw`` to the INBOX of every local recipient: one blob, one Message per account.

    With ``junk`` (a quarantine verdict, e.g. DMARC ``p=quarantine``) each copy is filed in the
    account's \\Junk folder instead, or in INBOX for an account that has none.

    Recipients whose mailbox is full are refused with a reason while the others succeed;
    each recipient gets its own result. Remote destinations of aliases come back in
    ``RecipientResult.forwards`` for the caller to queue (mailcore.relay).
    """
    resolutions = [r if isinstance(r, Resolution) else recipient_resolve(r) for r in recipients]
    account_ids = sorted({a for r in resolutions if r.kind is RecipientKind.LOCAL for a in r.account_ids})
    inboxes = dict(
        Folder.objects.filter(account_id__in=account_ids, name=Folder.INBOX).values_list("account_id", "id")
    )
    if junk:
        inboxes.update(
            Folder.objects.filter(
                account_id__in=account_ids, special_use=Folder.SpecialUse.JUNK
            ).values_list("account_id", "id")
        )
    targets = [CopyTarget(account_id=a, folder_id=inboxes[a], received_at=received_at) for a in account_ids if a in inboxes]
    outcome = store_copies(raw=raw, targets=targets, parsed=parsed or parse_message(raw))
    message_of = {c.account_id: c.message_id for c in outcome.stored}
    over = set(outcome.over_quota)

    results = []
    for r in resolutions:
        if r.kind is RecipientKind.REMOTE:
            results.append(RecipientResult(r.address, DeliveryStatus.NOT_LOCAL, "not a local domain"))
        elif r.kind is not RecipientKind.LOCAL:
            results.append(RecipientResult(r.address, DeliveryStatus.UNKNOWN, r.reason or "no such mailbox here"))
        else:
            delivered = [message_of[a] for a in r.account_ids if a in message_of]
            if r.account_ids and not delivered and any(a in over for a in r.account_ids):
                results.append(RecipientResult(r.address, DeliveryStatus.OVER_QUOTA, "mailbox is full"))
            else:
                results.append(
                    RecipientResult(r.address, DeliveryStatus.DELIVERED, message_ids=delivered, forwards=list(r.forwards))
                )
    return DeliveryResult(recipients=results, blob_id=outcome.blob_id)
