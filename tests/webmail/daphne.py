"""daphne serving ``webmail.asgi`` in a subprocess on 127.0.0.1 and an ephemeral port, as the
web role runs it (the browser journeys and the request-body limit on a real socket)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0


@contextmanager
def daphne_serving(env: dict[str, str], *, start_timeout: float = START_TIMEOUT) -> Iterator[int]:
    """Start daphne with ``env``, yield its port once it listens, and stop it afterwards.

    Its log is read all along by a thread of its own: a full pipe would stall the server.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-e", "tcp:port=0:interface=127.0.0.1", "webmail.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + start_timeout
    port = None
    seen: list[str] = []
    while port is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        match = LISTENING.search(line)
        if match:
            port = int(match.group(1))
    try:
        if port is None:
            raise RuntimeError("daphne did not start:\n" + "".join(seen[-30:]))
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
