"""A second real sync client, OfflineIMAP: sync down, change on both sides (including a message
written into the local Maildir, which OfflineIMAP uploads with APPEND and finds again by its
APPENDUID), sync again, and a third sync that must change nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry
from tests.conftest import PASSWORD, make_message

from .helpers import maildir_files, stored_message_ids

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("offlineimap") is None,
                       reason="offlineimap (Debian package offlineimap) is not installed"),
]

COUNT = 200


def _config(tmp_path: Path, port: int) -> Path:
    (tmp_path / "mail").mkdir()
    config = tmp_path / "offlineimaprc"
    config.write_text(f"""
[general]
accounts = test
metadata = {tmp_path}/state
maxsyncaccounts = 1

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {tmp_path}/mail

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = alice@a.test
remotepass = {PASSWORD}
ssl = no
starttls = no
maxconnections = 2
folderfilter = lambda name: name in ("INBOX", "Archive")
createfolders = False
""")
    return config


def _run(config: Path) -> str:
    result = subprocess.run(["offlineimap", "-c", str(config), "-o", "-u", "basic"], capture_output=True,
                            text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output, output
    return output


def _by_message_id(folder: Path) -> dict[str, Path]:
    found = {}
    for path in maildir_files(folder):
        mid = path.read_bytes().split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()
        found[mid] = path
    return found


def _maildir_flags(path: Path) -> str:
    return path.name.split(":2,")[1] if ":2," in path.name else ""


def test_offlineimap_round_trip(imap_port: int, alice: Account, tmp_path: Path) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    archive = Folder.objects.get(account=alice, name="Archive")
    for i in range(COUNT):
        store.message_append(account=alice, folder=inbox, raw=make_message(subject=f"message {i}",
                                                                          message_id=f"m{i}@example.org"))
    config = _config(tmp_path, imap_port)
    _run(config)
    local_inbox = tmp_path / "mail" / "INBOX"
    local_archive = tmp_path / "mail" / "Archive"
    assert len(maildir_files(local_inbox)) == COUNT and maildir_files(local_archive) == []

    # Server side: read ten, move ten to Archive.
    store.flags_store(account=alice, folder=inbox, uids=list(range(1, 11)), mode="add", flags=["\\Seen"])
    store.message_move(account=alice, source=inbox, uids=list(range(11, 21)), target=archive)  # m10..m19
    # Client side: flag ten, delete five, and write a new message into the Maildir.
    local = _by_message_id(local_inbox)
    for i in range(30, 40):
        path = local[f"m{i}@example.org"]
        base = path.name.split(":2,")[0]
        path.rename(local_inbox / "cur" / f"{base}:2,{''.join(sorted(_maildir_flags(path) + 'F'))}")
    for i in range(40, 45):
        local[f"m{i}@example.org"].unlink()
    (local_inbox / "new" / "1700000000.offline.host").write_bytes(
        make_message(subject="written offline", message_id="offline@example.org"))
    _run(config)

    inbox_ids = stored_message_ids(inbox)
    assert len(inbox_ids) == len(set(inbox_ids)) == COUNT - 10 - 5 + 1
    assert "offline@example.org" in inbox_ids
    assert not {f"m{i}@example.org" for i in range(40, 45)} & set(inbox_ids)
    assert sorted(stored_message_ids(archive)) == sorted(f"m{i}@example.org" for i in range(10, 20))
    flagged = set(FolderEntry.objects.filter(folder=inbox, message__flagged=True)
                  .values_list("message__message_id", flat=True))
    assert flagged == {f"m{i}@example.org" for i in range(30, 40)}
    local = _by_message_id(local_inbox)
    assert len(local) == len(maildir_files(local_inbox)) == COUNT - 10 - 5 + 1
    assert {mid for mid, path in local.items() if "S" in _maildir_flags(path)} == {
        f"m{i}@example.org" for i in range(10)}
    assert sorted(_by_message_id(local_archive)) == sorted(f"m{i}@example.org" for i in range(10, 20))

    _run(config)  # nothing changed: nothing moves, nothing duplicates
    assert sorted(stored_message_ids(inbox)) == sorted(inbox_ids)
    assert len(stored_message_ids(archive)) == 10
    assert len(maildir_files(local_inbox)) == COUNT - 10 - 5 + 1
