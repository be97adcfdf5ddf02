"""A minimal raw IMAP client for checking exact protocol bytes."""

from __future__ import annotations

import socket
from pathlib import Path

from mailcore.models import Account, Folder, FolderEntry
from tests.conftest import PASSWORD


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.greeting = self.line()

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def login(self, address: str = "alice@a.test", password: str = PASSWORD) -> None:
        assert self.cmd("a0", f'LOGIN {address} "{password}"')[-1].startswith(b"a0 OK")

    def cmd(self, tag: str, text: bytes | str) -> list[bytes]:
        """Send a command and collect lines up to and including its tagged reply."""
        data = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def close(self) -> None:
        self.sock.close()


def logged_in(port: int) -> Raw:
    """A raw session, logged in as alice."""
    raw = Raw(port)
    raw.login()
    return raw


def inbox_of(account: Account) -> Folder:
    return Folder.objects.get(account=account, name=Folder.INBOX)


# --- sync clients (mbsync, OfflineIMAP) -------------------------------------------------------

def maildir_files(folder: Path) -> list[Path]:
    """The messages of a local Maildir folder, new and cur."""
    return sorted([*(folder / "cur").iterdir(), *(folder / "new").iterdir()])


def stored_message_ids(folder: Folder) -> list[str]:
    """The Message-IDs of the server folder's entries."""
    return list(FolderEntry.objects.filter(folder=folder).values_list("message__message_id", flat=True))
