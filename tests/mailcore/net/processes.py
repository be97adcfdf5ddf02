"""``manage.py runmail`` as a real subprocess on free ports, and which process serves a connection."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[3]
PORT_SETTINGS = ["SMTP_PORT", "SUBMISSION_PORT", "SMTPS_PORT", "IMAP_PORT", "IMAPS_PORT", "POP3_PORT", "POP3S_PORT"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], limit: float = 120.0, tick: float = 0.1) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(tick)
    return predicate()


def database_url() -> str:
    from django.db import connection

    config = connection.settings_dict
    user = quote(config["USER"] or "postgres") + (f":{quote(config['PASSWORD'])}" if config.get("PASSWORD") else "")
    return f"postgres://{user}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}/{config['NAME']}"


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid and stat[0] != "Z":
                    out.append(int(entry.name))
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def serving_pid(client: socket.socket, candidates: list[int]) -> int | None:
    """The process among ``candidates`` holding the server end of ``client``'s TCP connection."""
    server_port = client.getpeername()[1]
    client_port = client.getsockname()[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                    inodes.add(f"socket:[{inode}]")
    for pid in candidates:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return None


class RunMail:
    """``runmail`` with the given arguments; output in ``log``; stopped by :meth:`stop`."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.ports = {name: free_port() for name in PORT_SETTINGS}
        self.env = dict(os.environ, DATABASE_URL=database_url(), VAR_DIR=str(tmp), PYTHONUNBUFFERED="1",
                        ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK="1", MAIL_BIND="127.0.0.1",
                        **{k: str(v) for k, v in self.ports.items()})
        self.env.pop("MAIL_PROCESSES", None)
        self.env.update(env or {})
        self.log = tmp / f"runmail-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "manage.py", "runmail", *args], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready_count(self) -> int:
        return self.output().count(" ready (pid ")

    def wait_ready(self, workers: int, limit: float = 180.0) -> list[int]:
        ok = wait_for(lambda: self.ready_count() >= workers or self.proc.poll() is not None, limit)
        assert ok and self.proc.poll() is None, self.output()[-3000:]
        pids = wait_for(lambda: len(children(self.proc.pid)) == workers and children(self.proc.pid), 10)
        assert pids, self.output()[-3000:]
        return list(pids)

    def exit_code(self, limit: float = 300.0) -> int:
        """Wait for ``runmail`` to end by itself; stopped (and the test failed) if it does not."""
        try:
            return self.proc.wait(limit)
        finally:
            if self.proc.poll() is None:
                self.stop()

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, limit: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            for pid in self.workers():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)
            raise
