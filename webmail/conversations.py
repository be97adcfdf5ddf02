"""How a conversation row names its people: pure helpers, no ORM."""

from __future__ import annotations

import email.utils
from collections.abc import Collection, Sequence

ME = "me"
# Gmail-like: at most this many names; a longer list keeps the first and the newest ones.
MAX_NAMES = 3


def _short(name: str, address: str) -> str:
    """A first name, else the local part of the address."""
    name = name.strip().strip('"')
    if name:
        return name.split()[0].rstrip(",")
    return address.partition("@")[0] or address


def participants(senders: Sequence[tuple[str, str]], own: Collection[str]) -> list[str]:
    """The distinct senders of a conversation, oldest first, "me" for one of ``own`` addresses
    (lower case): full name when there is one person, first names when there are several,
    and at most ``MAX_NAMES`` of them with "…" where some were left out."""
    people: list[tuple[str, str]] = []
    keys: set[str] = set()
    for name, address in senders:
        key = (address or name).lower()
        if key in keys:
            continue
        keys.add(key)
        people.append((name or "", address or ""))
    if not people:
        return ["(unknown sender)"]
    if len(people) == 1:
        name, address = people[0]
        return [ME if address.lower() in own else (name or address)]
    labels = [ME if address.lower() in own else _short(name, address) for name, address in people]
    if len(labels) > MAX_NAMES:
        labels = [labels[0], "…", *labels[-(MAX_NAMES - 1):]]
    return labels


def recipients_label(to_text: str) -> list[str]:
    """Sent rows name whom it went to, as Gmail does: "To: Bob, Carol"."""
    people = [(n, a) for n, a in email.utils.getaddresses([to_text]) if a or n]
    if not people:
        return ["To: (no recipient)"]
    names = [(n or a) if len(people) == 1 else _short(n, a) for n, a in people[:MAX_NAMES]]
    more = "…" if len(people) > MAX_NAMES else ""
    return [f"To: {', '.join(names)}{more}"]
