"""Several mail worker processes behind the same ports (``runmail --processes N``).

Python runs one event loop on one core; to use more, ``runmail`` with ``MAIL_PROCESSES`` above 1
becomes a supervisor. It binds every listener once per worker slot with ``SO_REUSEPORT``, after checking with a plain
bind that nothing holds the port (so "address in use" is reported once, by the supervisor, and a
second ``runmail`` on the same ports fails instead of silently sharing them), then
starts one ``runmail --worker N`` per slot as a fresh interpreter (its own event loop, database
connections and Redis clients; nothing inherited from a forked parent but the slot's sockets).
The kernel spreads new connections over the slots.

The supervisor keeps the sockets open, so connections that arrive while a worker is being
restarted wait in its slot's backlog rather than being refused. A worker that exits unexpectedly
is restarted after a growing pause; one that exits ``restart_limit`` times within
``restart_window`` seconds is crashing in a loop: the supervisor logs why, stops the others and
exits non-zero, so that the init system or the operator sees it.

SIGTERM or SIGINT stops the workers with SIGTERM: each stops accepting, lets a message being
stored get its reply, closes its sessions and its database connections. Workers still running
after ``stop_grace`` seconds are killed (a message not yet answered is not lost: the client was
not told 250 and sends it again). A second signal kills them at once. Workers ask the kernel for
SIGTERM if the supervisor dies (``PR_SET_PDEATHSIG``), so none outlives it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from .listen import INHERITED_ENV, bind, bind_like, describe, encode_inherited

log = logging.getLogger("mailcore.supervisor")

SUPERVISOR_PID_ENV = "MAIL_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1


class BindError(OSError):
    """A listener could not be opened; the message names it."""


@dataclass
class Slot:
    index: int
    sockets: list[tuple[str, list[socket.socket]]]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    exits: collections.deque[float] = field(default_factory=collections.deque)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class Supervisor:
    def __init__(
        self,
        *,
        processes: int,
        listeners: list[tuple[str, int]],
        host: str,
        worker_args: list[str],
        stop_grace: float = 30.0,
        restart_limit: int = 5,
        restart_window: float = 60.0,
        backoff_first: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.processes = processes
        self.listeners = listeners
        self.host = host
        self.worker_args = worker_args
        self.stop_grace = stop_grace
        self.restart_limit = restart_limit
        self.restart_window = restart_window
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.slots: list[Slot] = []
        self._signals: list[int] = []
        self._wake = threading.Event()

    # --- sockets --------------------------------------------------------------------------
    def bind(self) -> list[str]:
        """Bind every listener for every slot; a line per listener for the log."""
        per_slot: list[list[tuple[str, list[socket.socket]]]] = [[] for _ in range(self.processes)]
        lines = []
        try:
            for name, port in self.listeners:
                try:
                    # First without SO_REUSEPORT: fails if anything, even another supervisor
                    # whose sockets carry the option, holds the port.
                    probe = bind(self.host, port)
                    port = probe[0].getsockname()[1]
                    for sock in probe:
                        sock.close()
                    first = bind(self.host, port, reuse_port=True)
                except OSError as exc:
                    raise BindError(exc.errno, f"cannot open {name} on {self.host}:{port}: {exc.strerror or exc}") \
                        from None
                per_slot[0].append((name, first))
                for slot in range(1, self.processes):
                    per_slot[slot].append((name, bind_like(first)))
                lines.append(f"{name} listening on {describe(first)} ({self.processes} processes)")
        except BaseException:
            for named in per_slot:
                for _, socks in named:
                    for sock in socks:
                        sock.close()
            raise
        self.slots = [Slot(index=i, sockets=named) for i, named in enumerate(per_slot)]
        return lines

    def close_sockets(self) -> None:
        for slot in self.slots:
            for _, socks in slot.sockets:
                for sock in socks:
                    sock.close()

    # --- workers --------------------------------------------------------------------------
    def _command(self, slot: Slot) -> list[str]:
        return [sys.executable, "-m", "django", "runmail", "--worker", str(slot.index), *self.worker_args]

    def _environment(self, slot: Slot) -> dict[str, str]:
        env = dict(os.environ)
        env[INHERITED_ENV] = encode_inherited(slot.sockets)
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        env.setdefault("DJANGO_SETTINGS_MODULE", "webmail.settings")
        # `python -m django` must find the project wherever runmail was started from.
        base = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [base, env.get("PYTHONPATH", "")]))
        return env

    def start(self, slot: Slot) -> None:
        fds = [sock.fileno() for _, socks in slot.sockets for sock in socks]
        slot.process = subprocess.Popen(self._command(slot), env=self._environment(slot), pass_fds=fds)
        slot.started_at = time.monotonic()
        slot.restart_at = None
        log.info("mail worker %d started (pid %d)", slot.index, slot.process.pid)

    def _exited(self, slot: Slot, code: int) -> bool:
        """Handle an unexpected exit; False when the slot is crashing in a loop."""
        now = time.monotonic()
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        slot.exits.append(now)
        while slot.exits and now - slot.exits[0] > self.restart_window:
            slot.exits.popleft()
        if len(slot.exits) >= self.restart_limit:
            log.error("mail worker %d ended %d times within %.0f s (last: %s); giving up and stopping the mail role",
                      slot.index, len(slot.exits), self.restart_window, how)
            return False
        delay = min(self.backoff_max, self.backoff_first * 2 ** (len(slot.exits) - 1))
        log.warning("mail worker %d (pid %s) ended unexpectedly (%s); restarting in %.1f s",
                    slot.index, slot.pid, how, delay)
        slot.process = None
        slot.restart_at = now + delay
        return True

    # --- running ----------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._wake.set()

    def run(self) -> int:
        """Start the workers and watch them until a signal or a crash loop; the exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            for slot in self.slots:
                self.start(slot)
            while not self._signals:
                failed = self._watch_once()
                if failed:
                    status = 1
                    break
                self._wake.wait(0.2)
        finally:
            self._stop_all()
            self.close_sockets()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def _watch_once(self) -> bool:
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is not None:
                code = slot.process.poll()
                if code is not None and not self._signals and not self._exited(slot, code):
                    return True
            elif slot.restart_at is not None and now >= slot.restart_at and not self._signals:
                self.start(slot)
        return False

    def _stop_all(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None and slot.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        handled = len(self._signals)
        deadline = time.monotonic() + self.stop_grace
        while any(p.poll() is None for p in running) and time.monotonic() < deadline:
            if len(self._signals) > max(1, handled):
                log.warning("second signal: killing the mail workers now")
                break
            time.sleep(0.05)
        for process in running:
            if process.poll() is None:
                log.warning("mail worker pid %d did not stop within %.0f s; killing it", process.pid, self.stop_grace)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for slot in self.slots:
            slot.process = None


def die_with_supervisor() -> None:
    """In a worker: get SIGTERM when the supervisor dies, and exit now if it already has."""
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if expected and os.getppid() != int(expected):
        raise SystemExit("the mail supervisor is gone; worker exiting")


def supervisor_alive() -> bool:
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    return not expected or os.getppid() == int(expected)
