"""``runmail --processes N``: real worker processes sharing real ports, killed and stopped for real."""

from __future__ import annotations

import imaplib
import os
import signal
import smtplib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from mailcore.net.listen import bind, decode_inherited
from tests.conftest import PASSWORD

from .processes import RunMail, alive, serving_pid, wait_for

pytestmark = pytest.mark.slow


def smtp_greeting(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    return sock, sock.makefile("rb").readline()


def test_inherited_descriptor_list_is_parsed_strictly() -> None:
    assert decode_inherited("smtp=3,4;imaps=5") == {"smtp": [3, 4], "imaps": [5]}
    for bad in ("smtp", "smtp=", "=3", "smtp=x"):
        with pytest.raises(ValueError):
            decode_inherited(bad)


def test_bind_on_all_addresses_of_a_name_with_one_free_port() -> None:
    sockets = bind("localhost", 0)
    try:
        assert len({s.getsockname()[1] for s in sockets}) == 1
    finally:
        for sock in sockets:
            sock.close()


def test_two_workers_share_the_port_and_both_serve(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--only", "smtp", "--processes", "2")
    try:
        workers = mail.wait_ready(2)
        assert mail.proc.pid not in workers
        served = set()
        for _ in range(24):
            sock, greeting = smtp_greeting(mail.ports["SMTP_PORT"])
            with sock:
                assert greeting.startswith(b"220 ")
                served.add(serving_pid(sock, workers))
        assert served == set(workers)
    finally:
        assert mail.stop() == 0
    assert not any(alive(pid) for pid in workers)


def test_killed_worker_is_restarted_and_serves(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--only", "smtp", "--processes", "2")
    try:
        workers = mail.wait_ready(2)
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: len(mail.workers()) == 2 and victim not in mail.workers() and mail.ready_count() >= 3)
        assert replaced, mail.output()[-3000:]
        assert "(killed by SIGKILL); restarting" in mail.output()
        new = [pid for pid in mail.workers() if pid not in workers]
        assert len(new) == 1
        served = set()
        for _ in range(24):
            sock, greeting = smtp_greeting(mail.ports["SMTP_PORT"])
            with sock:
                assert greeting.startswith(b"220 ")
                served.add(serving_pid(sock, mail.workers()))
        assert new[0] in served
    finally:
        assert mail.stop() == 0


def test_sigterm_closes_sessions_with_421_and_leaves_no_process(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--processes", "2")
    workers = mail.wait_ready(2)
    sessions = [smtp_greeting(mail.ports["SMTP_PORT"]) for _ in range(6)]
    try:
        assert mail.stop(signal.SIGTERM) == 0
        for sock, _ in sessions:
            assert sock.makefile("rb").readline().startswith(b"421 4.3.2")
    finally:
        for sock, _ in sessions:
            sock.close()
    assert not any(alive(pid) for pid in workers)
    assert "mail role stopped" in mail.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", mail.ports["SMTP_PORT"]), timeout=2).close()


def test_sigint_stops_everything_too(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--only", "pop3", "--processes", "3")
    workers = mail.wait_ready(3)
    assert mail.stop(signal.SIGINT) == 0
    assert not any(alive(pid) for pid in workers)


def test_worker_outliving_a_killed_supervisor_exits_by_itself(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--only", "smtp", "--processes", "2")
    workers = mail.wait_ready(2)
    mail.stop(signal.SIGKILL)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 30), "orphaned mail workers kept running"


def test_port_in_use_is_refused_with_a_sentence(tmp_path: Path, transactional_db: None) -> None:
    first = RunMail(tmp_path, "--only", "smtp", "--processes", "2")
    try:
        first.wait_ready(2)
        # Another supervisor, whose sockets would carry SO_REUSEPORT too, must not join the port.
        second = RunMail(tmp_path, "--only", "smtp", "--processes", "2", env={
            "SMTP_PORT": str(first.ports["SMTP_PORT"])})
        assert second.exit_code() != 0
        assert f"cannot open smtp on 127.0.0.1:{first.ports['SMTP_PORT']}" in second.output()
        assert "Traceback" not in second.output()
    finally:
        assert first.stop() == 0


def test_bad_process_count_is_refused(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--processes", "0")
    assert mail.exit_code() != 0
    assert "--processes must be 1 or more" in mail.output()


def test_worker_crashing_in_a_loop_makes_the_supervisor_give_up(tmp_path: Path, transactional_db: None) -> None:
    # The supervisor never reads the certificate; every worker fails on it at start.
    mail = RunMail(tmp_path, "--only", "smtp", "--processes", "2",
                   env={"TLS_CERT_FILE": str(tmp_path / "missing.crt"), "TLS_KEY_FILE": str(tmp_path / "missing.key")})
    # Five failed starts with pauses of 0.5 to 4 s; each start is a new interpreter, slow on a busy machine.
    code = mail.exit_code(600)
    assert code != 0
    out = mail.output()
    assert "times within 60 s (last: exit code 1); giving up" in out
    assert "a mail worker kept crashing" in out
    assert mail.workers() == []


def test_imap_idle_sees_a_change_made_through_the_other_worker(tmp_path: Path, transactional_db: None,
                                                               settings: Any) -> None:
    import webmail.settings as project
    from mailcore import store

    # The workers check passwords with the project's hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = project.PASSWORD_HASHERS
    tenant = store.tenant_create(name="Tenant A")
    store.domain_create(tenant=tenant, name="a.test")
    store.account_create(address="alice@a.test", password=PASSWORD)
    mail = RunMail(tmp_path, "--only", "imap", "--processes", "2")
    try:
        workers = mail.wait_ready(2)
        port = mail.ports["IMAP_PORT"]
        idler = imaplib.IMAP4("127.0.0.1", port, timeout=60)
        idler_pid = serving_pid(idler.sock, workers)
        writer = None
        for _ in range(40):  # until a connection lands on the other worker
            candidate = imaplib.IMAP4("127.0.0.1", port, timeout=60)
            if serving_pid(candidate.sock, workers) != idler_pid:
                writer = candidate
                break
            candidate.shutdown()
        assert writer is not None, "no connection reached the second worker"
        idler.login("alice@a.test", PASSWORD)
        idler.select("INBOX")
        tag = idler._new_tag().decode()
        idler.send(f"{tag} IDLE\r\n".encode())
        assert idler.readline().startswith(b"+ ")
        writer.login("alice@a.test", PASSWORD)
        typ, _ = writer.append("INBOX", "", None, b"Subject: across processes\r\n\r\nHello.\r\n")
        assert typ == "OK"
        untagged = [idler.readline().strip() for _ in range(2)]
        assert b"* 1 EXISTS" in untagged, untagged
        idler.send(b"DONE\r\n")
        assert idler.readline().startswith(tag.encode() + b" OK")
        writer.logout()
        idler.logout()
    finally:
        assert mail.stop() == 0


def test_one_process_keeps_the_single_process_behaviour(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--only", "smtp")
    try:
        assert wait_for(lambda: "mail role ready as" in mail.output()), mail.output()
        assert mail.workers() == []
        with smtplib.SMTP("127.0.0.1", mail.ports["SMTP_PORT"], timeout=60) as client:
            assert client.noop()[0] == 250
    finally:
        assert mail.stop() == 0


def test_workers_serve_implicit_tls_on_ipv6(tmp_path: Path, transactional_db: None) -> None:
    mail = RunMail(tmp_path, "--only", "pop3", "--processes", "2", env={"MAIL_BIND": "::1"})
    try:
        workers = mail.wait_ready(2)
        assert f"pop3s listening on [::1]:{mail.ports['POP3S_PORT']} (2 processes)" in mail.output()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        served = set()
        for _ in range(16):
            raw = socket.create_connection(("::1", mail.ports["POP3S_PORT"]), timeout=60)
            with ctx.wrap_socket(raw) as tls:
                assert tls.recv(100).startswith(b"+OK")
                served.add(serving_pid(tls, workers))
        assert served == set(workers)
    finally:
        assert mail.stop() == 0
