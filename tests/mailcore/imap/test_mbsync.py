"""A real sync client (isync's mbsync) round trip: sync down, change on both sides, sync again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry
from mailcore.net.tls import cert_and_key_paths
from tests.conftest import PASSWORD, make_message

from .helpers import maildir_files, stored_message_ids

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (Debian package isync) is not installed"),
]

COUNT = int(os.environ.get("IMAP_MBSYNC_MESSAGES", "1000"))


def _config(tmp_path: Path, port: int) -> Path:
    cert, _ = cert_and_key_paths()
    (tmp_path / "mail").mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""
IMAPAccount remote
Host 127.0.0.1
Port {port}
User alice@a.test
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {cert}
Timeout 60

IMAPStore remote
Account remote

MaildirStore local
Path {tmp_path}/mail/
Inbox {tmp_path}/mail/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
""")
    return config


def _run(config: Path) -> None:
    result = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mbsync_round_trip(imaps_port: int, alice: Account, tmp_path: Path) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    archive = Folder.objects.get(account=alice, name="Archive")
    for i in range(COUNT):
        store.message_append(account=alice, folder=inbox, raw=make_message(subject=f"message {i}",
                                                                          message_id=f"m{i}@example.org"))
    config = _config(tmp_path, imaps_port)
    _run(config)
    local_inbox = tmp_path / "mail" / "INBOX"
    assert len(maildir_files(local_inbox)) == COUNT

    # Server side: read ten, move ten to Archive.
    store.flags_store(account=alice, folder=inbox, uids=list(range(1, 11)), mode="add", flags=["\\Seen"])
    store.message_move(account=alice, source=inbox, uids=list(range(11, 21)), target=archive)  # m10..m19
    # Client side: flag ten, move ten to Archive.
    local_archive = tmp_path / "mail" / "Archive"
    files = maildir_files(local_inbox)
    by_id: dict[str, Path] = {}
    for path in files:
        head = path.read_bytes()[:400]
        mid = head.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()
        by_id[mid] = path
    for i in range(30, 40):
        path = by_id[f"m{i}@example.org"]
        base = path.name.split(":2,")[0]
        flags = path.name.split(":2,")[1] if ":2," in path.name else ""
        path.rename(local_inbox / "cur" / f"{base}:2,{''.join(sorted(flags + 'F'))}")
    for i in range(40, 50):
        path = by_id[f"m{i}@example.org"]
        base = path.name.split(",U=")[0]
        path.rename(local_archive / "cur" / f"{base}:2,S")
    _run(config)

    inbox_ids = stored_message_ids(inbox)
    archive_ids = stored_message_ids(archive)
    assert len(inbox_ids) == len(set(inbox_ids)) == COUNT - 20
    assert sorted(archive_ids) == sorted(f"m{i}@example.org" for i in [*range(10, 20), *range(40, 50)])
    flagged = set(FolderEntry.objects.filter(folder=inbox, message__flagged=True)
                  .values_list("message__message_id", flat=True))
    assert flagged == {f"m{i}@example.org" for i in range(30, 40)}
    assert len(maildir_files(local_inbox)) == COUNT - 20 and len(maildir_files(local_archive)) == 20
    seen_local = [p for p in maildir_files(local_inbox) if ":2," in p.name and "S" in p.name.split(":2,")[1]]
    assert len(seen_local) == 10

    _run(config)  # nothing changed: nothing moves, nothing duplicates
    assert len(stored_message_ids(inbox)) == COUNT - 20 and len(stored_message_ids(archive)) == 20
    assert len(maildir_files(local_inbox)) == COUNT - 20
