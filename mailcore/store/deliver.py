"""Final delivery to local mailboxes: recipient resolution and ``message_deliver``."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from mailcore.addresses import AddressError, normalize_address
from mailcore.mime import ParsedMessage, parse_message
from mailcore.models import Folder

from .copies import CopyTarget, store_copies
from .sql import fetch_all

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
    # INBOX folder id of each account, found by the same query (saves a lookup at delivery).
    inboxes: dict[int, int] = field(default_factory=dict)
    # Bytes each account may still take (None: no quota), as read at resolution time.
    room: dict[int, int | None] = field(default_factory=dict)

    def all_full(self, size: int) -> bool:
        """True when every account of a local recipient lacks room for ``size`` bytes."""
        rooms = [self.room.get(a) for a in self.account_ids]
        return bool(rooms) and all(r is not None and r < max(size, 1) for r in rooms)


# One row per address asked about: is its domain ours (and its catch-all), is it an active
# account (and its INBOX), is it an alias. A plain account resolves in this one statement.
_LOOKUP_SQL = """
    SELECT x.address, d.id, d.catch_all, a.id, f.id, al.destinations,
           CASE WHEN a.quota_bytes > 0 THEN a.quota_bytes - a.used_bytes END
    FROM unnest(%s::text[], %s::text[]) AS x(address, domain)
    LEFT JOIN mailcore_domain d ON d.name = x.domain
    LEFT JOIN mailcore_account a ON a.address = x.address AND a.is_active AND a.domain_id IS NOT NULL
    LEFT JOIN mailcore_folder f ON f.account_id = a.id AND f.name = 'INBOX'
    LEFT JOIN mailcore_alias al ON al.address = x.address
"""


@dataclass
class _Found:
    local_domain: bool
    catch_all: str
    account_id: int | None
    inbox_id: int | None
    destinations: list[str] | None
    room: int | None


# The same for one address (every RCPT TO): with scalar parameters the plan PostgreSQL makes
# without knowing them is as good as one made for them, so it settles on that generic plan and
# stops planning the statement on each execution (an array of unknown length keeps it planning).
_LOOKUP_ONE_SQL = _LOOKUP_SQL.replace(
    "unnest(%s::text[], %s::text[]) AS x(address, domain)",
    "(SELECT %s::text, %s::text) AS x(address, domain)",
)


def _lookup(addresses: Sequence[str]) -> dict[str, _Found]:
    if len(addresses) == 1:
        rows = fetch_all(_LOOKUP_ONE_SQL, [addresses[0], addresses[0].rpartition("@")[2]])
    else:
        rows = fetch_all(_LOOKUP_SQL, [list(addresses), [a.rpartition("@")[2] for a in addresses]])
    found = {}
    for address, domain_id, catch_all, account_id, inbox_id, destinations, room in rows:
        if isinstance(destinations, str):
            destinations = json.loads(destinations)
        found[address] = _Found(
            local_domain=domain_id is not None,
            catch_all=catch_all or "",
            account_id=account_id,
            inbox_id=inbox_id,
            destinations=[str(d) for d in destinations] if destinations is not None else None,
            room=room,
        )
    return found


def recipient_resolve(address: str) -> Resolution:
    """Where mail to ``address`` goes: local accounts (aliases and catch-all expanded) or not."""
    try:
        canonical = normalize_address(address)
    except AddressError as exc:
        return Resolution(address=address, kind=RecipientKind.INVALID, reason=str(exc))
    first = _lookup([canonical])[canonical]
    if not first.local_domain:
        return Resolution(address=canonical, kind=RecipientKind.REMOTE)
    resolution = Resolution(address=canonical, kind=RecipientKind.LOCAL)
    _expand([canonical], resolution, depth=0, seen=set(), known={canonical: first})
    if not resolution.account_ids and not resolution.forwards and first.catch_all:
        _expand([first.catch_all], resolution, depth=1, seen={canonical}, known={})
    if not resolution.account_ids and not resolution.forwards:
        return Resolution(address=canonical, kind=RecipientKind.UNKNOWN, reason="no such mailbox here")
    resolution.account_ids.sort()
    return resolution


def _expand(
    frontier: list[str], into: Resolution, *, depth: int, seen: set[str], known: dict[str, _Found]
) -> None:
    """Expand aliases breadth first, one query per level, into accounts and remote forwards."""
    while frontier and depth <= MAX_ALIAS_DEPTH:
        level = [a for a in dict.fromkeys(frontier) if a not in seen]
        seen.update(level)
        missing = [a for a in level if a not in known]
        if missing:
            known.update(_lookup(missing))
        frontier = []
        for address in level:
            item = known[address]
            if item.account_id is not None:
                if item.account_id not in into.account_ids:
                    into.account_ids.append(item.account_id)
                if item.inbox_id is not None:
                    into.inboxes[item.account_id] = item.inbox_id
                into.room[item.account_id] = item.room
            elif item.destinations is not None:
                frontier.extend(item.destinations)
            elif not item.local_domain and address not in into.forwards:
                into.forwards.append(address)
        depth += 1


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
    inboxes = {a: f for r in resolutions for a, f in r.inboxes.items()}
    if any(a not in inboxes for a in account_ids):
        inboxes.update(
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
