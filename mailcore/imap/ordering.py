"""SORT and THREAD (RFC 5256): base subjects, sort keys and the REFERENCES threading algorithm.

Pure: works on plain row dicts (uid, seq, internal date, size, envelope, sent date, message ids).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailcore.mime import decode_header_value

SORT_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO"}

_WS_RE = re.compile(r"\s+")
_TRAILER_RE = re.compile(r"(?:\s*\(fwd\))+\s*$|\s+$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\]\s*"
_REFWD_RE = re.compile(rf"^(?:{_BLOB})*(?:re|fwd?)\s*(?:{_BLOB})?:\s*|^\s+", re.IGNORECASE)
_LEADING_BLOB_RE = re.compile(rf"^{_BLOB}")
_FWD_WRAP_RE = re.compile(r"^\[fwd:(.*)\]$", re.IGNORECASE | re.DOTALL)


def base_subject(raw_subject: str | None) -> str:
    """RFC 5256 §2.1 base subject, case-folded for i;ascii-casemap comparison."""
    subject = _WS_RE.sub(" ", decode_header_value(raw_subject or ""))
    for _ in range(100):
        # (2) trailers
        while True:
            stripped = _TRAILER_RE.sub("", subject)
            if stripped == subject:
                break
            subject = stripped
        # (3)-(4) leaders and blobs
        while True:
            before = subject
            subject = _REFWD_RE.sub("", subject, count=1)
            blob = _LEADING_BLOB_RE.match(subject)
            if blob and subject[blob.end():]:
                subject = subject[blob.end():]
            if subject == before:
                break
        # (5) [fwd: ...]
        wrapped = _FWD_WRAP_RE.match(subject)
        if not wrapped:
            break
        subject = wrapped.group(1)
    return subject.upper()


def is_reply_or_forward(raw_subject: str | None) -> bool:
    subject = _WS_RE.sub(" ", decode_header_value(raw_subject or ""))
    return bool(_REFWD_RE.match(subject.lstrip()) and not subject[:1].isspace()) or bool(
        _FWD_WRAP_RE.match(subject.strip())) or bool(re.search(r"\(fwd\)\s*$", subject, re.IGNORECASE))


def _first_mailbox(env: Sequence[Any] | None, index: int) -> str:
    if not env or len(env) <= index or not env[index]:
        return ""
    for entry in env[index]:
        if entry and entry[3] is not None and entry[2]:
            return str(entry[2]).upper()
    return ""


def _sent(row: dict[str, Any]) -> datetime:
    return row["sent"] or row["received_at"]


def sort_key_value(row: dict[str, Any], key: str) -> Any:
    if key == "ARRIVAL":
        return row["received_at"]
    if key == "DATE":
        return _sent(row)
    if key == "SIZE":
        return row["size"]
    if key == "SUBJECT":
        env = row["envelope"]
        return base_subject(env[1] if env and len(env) > 1 else "")
    return _first_mailbox(row["envelope"], {"FROM": 2, "TO": 5, "CC": 6}[key])


def sort_rows(rows: list[dict[str, Any]], criteria: Sequence[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Rows ordered by (key, reverse) criteria, ties by sequence number ascending."""
    ordered = sorted(rows, key=lambda r: r["seq"])
    for key, reverse in reversed(criteria):
        ordered.sort(key=lambda r, k=key: sort_key_value(r, k), reverse=reverse)  # type: ignore[misc]
    return ordered


# --- THREAD=REFERENCES ----------------------------------------------------------------------

@dataclass(eq=False)
class Container:
    row: dict[str, Any] | None = None
    parent: Container | None = None
    children: list[Container] = field(default_factory=list)

    def ancestors_include(self, other: Container) -> bool:
        node: Container | None = self
        depth = 0
        while node is not None and depth < 10_000:
            if node is other:
                return True
            node = node.parent
            depth += 1
        return False

    def first_row(self) -> dict[str, Any] | None:
        if self.row is not None:
            return self.row
        for child in self.children:
            found = child.first_row()
            if found is not None:
                return found
        return None


def _link(parent: Container, child: Container) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _date_key(container: Container) -> tuple[datetime, int]:
    """Sent date (then sequence) of a message; of a dummy, its earliest descendant's."""
    row = container.row
    if row is None:
        candidates = [r for r in (c.first_row() for c in container.children) if r is not None]
        if not candidates:
            return (datetime.min.replace(tzinfo=UTC), 0)
        row = min(candidates, key=lambda r: (_sent(r), r["seq"]))
    return (_sent(row), row["seq"])


def thread_references(rows: list[dict[str, Any]]) -> list[Container]:
    """RFC 5256 §2.2 REFERENCES: threads as trees of containers, ready for :func:`format_threads`."""
    table: dict[str, Container] = {}
    every: list[Container] = []

    def lookup(msgid: str) -> Container:
        found = table.get(msgid)
        if found is None:
            found = table[msgid] = Container()
            every.append(found)
        return found

    for row in sorted(rows, key=lambda r: r["seq"]):
        msgid = row.get("message_id") or ""
        container = table.get(msgid) if msgid else None
        if container is None or container.row is not None:
            # Missing or duplicate Message-ID: a unique one (RFC 5256 step 1.A).
            container = lookup(msgid) if msgid and msgid not in table else Container()
            if container not in every:
                every.append(container)
        container.row = row
        refs = list(row.get("references") or []) or list(row.get("in_reply_to") or [])[:1]
        previous: Container | None = None
        for ref in refs:
            ref_container = lookup(ref)
            if (previous is not None and ref_container.parent is None and ref_container is not previous
                    and not previous.ancestors_include(ref_container)):
                _link(previous, ref_container)
            previous = ref_container
        if container.parent is not None:
            container.parent.children.remove(container)
            container.parent = None
        if previous is not None and previous is not container and not previous.ancestors_include(container):
            _link(previous, container)
    roots = _prune([c for c in every if c.parent is None], at_root=True)
    roots.sort(key=_date_key)
    roots = _group_by_subject(roots)
    for root in roots:
        _sort_children(root)
    return roots


def _prune(containers: list[Container], *, at_root: bool) -> list[Container]:
    out: list[Container] = []
    for c in containers:
        c.children = _prune(c.children, at_root=False)
        for child in c.children:
            child.parent = c
        if c.row is None:
            if not c.children:
                continue
            if not at_root or len(c.children) == 1:
                for child in c.children:
                    child.parent = c.parent
                out.extend(c.children)
                continue
        out.append(c)
    return out


def _group_by_subject(roots: list[Container]) -> list[Container]:
    """RFC 5256 §2.2 step 5: gather roots with the same base subject."""
    subjects: dict[str, Container] = {}
    for root in roots:
        subject = base_subject(_subject_of(root.first_row()))
        if not subject:
            continue
        old = subjects.get(subject)
        if (old is None or (root.row is None and old.row is not None)
                or (old.row is not None and root.row is not None
                    and is_reply_or_forward(_subject_of(old.row))
                    and not is_reply_or_forward(_subject_of(root.row)))):
            subjects[subject] = root
    for root in roots:
        subject = base_subject(_subject_of(root.first_row()))
        target = subjects.get(subject) if subject else None
        if target is None or target is root:
            continue
        if target.row is None and root.row is None:
            for child in list(root.children):
                _link(target, child)
        elif target.row is None or root.row is None:
            dummy, message = (target, root) if target.row is None else (root, target)
            _link(dummy, message)
            subjects[subject] = dummy
        elif is_reply_or_forward(_subject_of(root.row)) and not is_reply_or_forward(_subject_of(target.row)):
            _link(target, root)
        else:
            dummy = Container()
            _link(dummy, target)
            _link(dummy, root)
            subjects[subject] = dummy
    result: list[Container] = []
    for root in roots:
        top = root
        while top.parent is not None:
            top = top.parent
        if top not in result and (top.row is not None or top.children):
            result.append(top)
    return result


def _subject_of(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    env = row.get("envelope")
    return str(env[1] or "") if env and len(env) > 1 else ""


def _sort_children(container: Container) -> None:
    container.children.sort(key=_date_key)
    for child in container.children:
        _sort_children(child)


def thread_ordered_subject(rows: list[dict[str, Any]]) -> list[Container]:
    """RFC 5256 ORDEREDSUBJECT: by base subject then sent date; the first of each subject is the
    parent of the others."""
    ordered = sorted(rows, key=lambda r: (base_subject(_subject_of(r)), _sent(r), r["seq"]))
    roots: list[Container] = []
    current: Container | None = None
    current_subject: str | None = None
    for row in ordered:
        subject = base_subject(_subject_of(row))
        if current is None or subject != current_subject:
            current = Container(row=row)
            current_subject = subject
            roots.append(current)
        else:
            _link(current, Container(row=row))
    roots.sort(key=_date_key)
    return roots


def format_threads(roots: list[Container], number: Any) -> str:
    """RFC 5256 thread-list syntax: "(1 2 (3)(4 5))"; ``number`` maps a row to its UID or seq."""

    def members(c: Container) -> str:
        parts: list[str] = []
        node = c
        while True:
            if node.row is not None:
                parts.append(str(number(node.row)))
            if len(node.children) == 1:
                node = node.children[0]
                continue
            if node.children:
                nested = "".join("(" + members(child) + ")" for child in node.children)
                return " ".join(parts) + (" " if parts else "") + nested
            return " ".join(parts)

    return "".join("(" + members(root) + ")" for root in roots)
