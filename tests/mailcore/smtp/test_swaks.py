"""The ``swaks`` command-line client against our listeners."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mailcore.models import Message, OutboundRecipient
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed (apt-get install swaks)"),
]


def _perl_has_tls() -> bool:
    return subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"], capture_output=True, check=False).returncode == 0


needs_tls = pytest.mark.skipif(
    not _perl_has_tls(), reason="swaks needs Net::SSLeay for TLS (apt-get install libnet-ssleay-perl)"
)


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--helo", "client.example", "--timeout", "10", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


@needs_tls
def test_swaks_delivers_over_starttls_with_pipelining_to_the_mx(mx, alice) -> None:
    result = swaks("--port", str(mx.port), "--from", "carol@example.org", "--to", "alice@a.test", "--tls", "--pipeline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 OK: queued as" in result.stdout
    assert Message.objects.filter(account=alice).count() == 1


def test_swaks_is_refused_relay_on_the_mx(mx, alice) -> None:
    result = swaks("--port", str(mx.port), "--from", "carol@example.org", "--to", "bob@remote.test")
    assert result.returncode != 0
    assert "554 5.7.1" in result.stdout
    assert OutboundRecipient.objects.count() == 0


@needs_tls
def test_swaks_submits_with_auth_plain_and_login(submission, alice, bob) -> None:
    for mechanism in ("PLAIN", "LOGIN"):
        result = swaks(
            "--port", str(submission.port), "--from", "alice@a.test", "--to", "bob@b.test,carol@remote.test",
            "--tls", "--auth", mechanism, "--auth-user", "alice@a.test", "--auth-password", PASSWORD,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert Message.objects.filter(account=bob).count() == 2
    assert OutboundRecipient.objects.filter(address="carol@remote.test").count() == 2


@needs_tls
def test_swaks_over_implicit_tls(smtps, alice, bob) -> None:
    result = swaks(
        "--port", str(smtps.port), "--tlsc", "--from", "alice@a.test", "--to", "bob@b.test",
        "--auth", "PLAIN", "--auth-user", "alice@a.test", "--auth-password", PASSWORD,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert Message.objects.filter(account=bob).count() == 1
