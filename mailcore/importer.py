"""Importing mail from another server's files: an mbox file, a folder of mbox files, or a Maildir.

Pure reading lives here (no ORM); ``manage.py importmail`` writes through the store. Flags come
from Maildir info suffixes (``:2,FRS``) or mbox ``Status:``/``X-Status:`` headers (which are
removed from the stored bytes, as Dovecot does); the received date from the mbox ``From_`` line
or the Maildir file's delivery time, else the ``Date:`` header.
"""

from __future__ import annotations

import email.utils
import mailbox
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FOLDER_ALIASES = {
    "inbox": "INBOX",
    "sent": "Sent",
    "sent items": "Sent",
    "sent messages": "Sent",
    "sent mail": "Sent",
    "drafts": "Drafts",
    "trash": "Trash",
    "deleted items": "Trash",
    "deleted messages": "Trash",
    "junk": "Junk",
    "spam": "Junk",
    "junk e-mail": "Junk",
    "archive": "Archive",
    "archives": "Archive",
}

_MAILDIR_FLAGS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted", "D": "\\Draft"}
_STATUS_HEADER = re.compile(rb"^(Status|X-Status|X-Keywords|X-UID|Content-Length|X-IMAP|X-IMAPbase):[^\n]*\n", re.I | re.M)


@dataclass
class ImportItem:
    folder: str
    raw: bytes
    flags: list[str]
    received_at: datetime | None


class ImportSourceError(ValueError):
    pass


def canonical_folder(name: str) -> str:
    return FOLDER_ALIASES.get(name.strip().lower(), name.strip())


def _split_headers(raw: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[: i + len(sep)], raw[i + len(sep):]
    return raw, b""


def _mbox_flags(head: bytes) -> list[str]:
    flags: list[str] = []
    status = re.search(rb"^Status:\s*([A-Za-z]*)", head, re.M | re.I)
    xstatus = re.search(rb"^X-Status:\s*([A-Za-z]*)", head, re.M | re.I)
    s = status.group(1).decode() if status else ""
    x = xstatus.group(1).decode() if xstatus else ""
    if "R" in s:
        flags.append("\\Seen")
    if "A" in x:
        flags.append("\\Answered")
    if "F" in x:
        flags.append("\\Flagged")
    if "D" in x:
        flags.append("\\Deleted")
    if "T" in x:
        flags.append("\\Draft")
    return flags


def _strip_status_headers(raw: bytes) -> bytes:
    head, body = _split_headers(raw)
    return _STATUS_HEADER.sub(b"", head) + body


def _date_from_header(raw: bytes) -> datetime | None:
    head, _ = _split_headers(raw)
    match = re.search(rb"^Date:[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.M | re.I)
    if not match:
        return None
    try:
        value = email.utils.parsedate_to_datetime(match.group(1).decode("latin-1").strip())
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _from_line_date(from_line: str) -> datetime | None:
    # "From sender@example.org Sat Nov 28 12:00:00 2026"
    parts = from_line.split()
    if len(parts) < 6:
        return None
    try:
        return datetime.strptime(" ".join(parts[-5:]), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


def read_mbox(path: Path, folder: str) -> Iterator[ImportItem]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            from_line = box.get_message(key).get_from() if hasattr(box, "get_message") else ""
            head, _ = _split_headers(raw)
            yield ImportItem(
                folder=folder,
                raw=_strip_status_headers(raw),
                flags=_mbox_flags(head),
                received_at=_from_line_date(from_line) or _date_from_header(raw),
            )
    finally:
        box.close()


def _maildir_folders(root: Path) -> Iterator[tuple[str, Path]]:
    yield "INBOX", root
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.startswith(".") and (child / "cur").is_dir():
            # Maildir++: ".Work.Projects" is Work/Projects.
            parts = [p for p in child.name[1:].split(".") if p]
            if parts:
                yield "/".join([canonical_folder(parts[0]), *parts[1:]]), child


def read_maildir(root: Path) -> Iterator[ImportItem]:
    for folder, path in _maildir_folders(root):
        for sub in ("new", "cur"):
            directory = path / sub
            if not directory.is_dir():
                continue
            for entry in sorted(directory.iterdir()):
                if not entry.is_file():
                    continue
                raw = entry.read_bytes()
                flags: list[str] = []
                name = entry.name
                if sub == "cur" and ":2," in name:
                    flags = [_MAILDIR_FLAGS[c] for c in name.split(":2,", 1)[1] if c in _MAILDIR_FLAGS]
                match = re.match(r"^(\d{9,11})\.", name)
                received = (
                    datetime.fromtimestamp(int(match.group(1)), tz=UTC)
                    if match
                    else datetime.fromtimestamp(os.stat(entry).st_mtime, tz=UTC)
                )
                yield ImportItem(folder=folder, raw=raw, flags=flags, received_at=received)


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _looks_like_mbox(path: Path) -> bool:
    with path.open("rb") as fh:
        start = fh.read(5)
    return start == b"From " or start == b""


def read_source(path: Path, folder: str | None = None) -> Iterator[ImportItem]:
    """Everything to import from ``path``; raises ImportSourceError with a sentence when unreadable."""
    if not path.exists():
        raise ImportSourceError(f"{path} does not exist")
    if is_maildir(path):
        yield from read_maildir(path)
        return
    if path.is_file():
        if not _looks_like_mbox(path):
            raise ImportSourceError(f"{path} is neither an mbox file (it must start with 'From ') nor a Maildir")
        yield from read_mbox(path, folder or "INBOX")
        return
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        mboxes = [p for p in files if _looks_like_mbox(p)]
        if not mboxes:
            raise ImportSourceError(f"{path} holds no Maildir and no mbox files")
        for item in mboxes:
            yield from read_mbox(item, canonical_folder(item.stem if item.suffix == ".mbox" else item.name))
        return
    raise ImportSourceError(f"{path} is not a file or a folder")
