"""A real client: fetchmail downloads 500 messages over POP3S, or POP3 with STLS, and deletes them.

fetchmail hands each message to an MDA command that writes it to a file of its own. To get
the bytes as sent, it runs with ``invisible`` (no Received: header of its own), ``no rewrite``
(addresses untouched), ``no stripcr``/``no forcecr`` (line endings as received: CRLF) and no
MIME decoding; nothing then needs stripping, and each file must equal the delivered message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailcore import store
from mailcore.models import Account, Folder, Message
from tests.conftest import PASSWORD, make_message

from .conftest import RunningPop3

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FETCHMAIL = shutil.which("fetchmail")
COUNT = 500


def message_number(i: int) -> bytes:
    shapes = [
        "Plain text.\r\n",
        ".A line starting with a dot\r\n..and two\r\n.\r\nthe end\r\n",
        "Caf\u00e9 na\u00efve \u2713 8-bit body\r\n" * 20,
        ("x" * 76 + "\r\n") * (1 + i % 400),  # up to ~31 KB
    ]
    return make_message(subject=f"message {i}", body=shapes[i % len(shapes)], message_id=f"fetch-{i}@example.org")


@pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail is not installed (Debian package fetchmail)")
@pytest.mark.parametrize("transport", ["pop3s", "stls"])
def test_fetchmail_downloads_and_deletes_500_messages_byte_for_byte(
    pop3_start: Callable[..., RunningPop3], alice: Account, tmp_path: Path, transport: str
) -> None:
    # Plaintext login is refused on loopback too: the STLS run must really upgrade.
    pop3 = pop3_start(allow_plaintext_on_loopback=False, leave_on_server=False)
    port, tls_options = (pop3.tls_port, "ssl") if transport == "pop3s" else (pop3.port, "sslproto tls1.2+")
    delivered = {}
    for i in range(COUNT):
        raw = message_number(i)
        delivered[f"fetch-{i}@example.org"] = raw
        store.message_deliver(raw=raw, recipients=["alice@a.test"])
    assert Folder.objects.get(account=alice, name="INBOX").total_count == COUNT

    out = tmp_path / "out"
    out.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {out}/msg.XXXXXXXX)"\n')
    mda.chmod(0o700)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\nset invisible\n"
        f"poll 127.0.0.1 with proto POP3 port {port} timeout 60\n"
        f'  user "alice@a.test" there with password "{PASSWORD}" is "{os.environ.get("USER", "root")}" here\n'
        f"  options {tls_options} no sslcertck fetchall no keep no rewrite no stripcr no forcecr no mimedecode\n"
        f'  mda "{mda}"\n'
    )
    rc.chmod(0o600)
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    started = time.monotonic()
    result = subprocess.run(
        [FETCHMAIL, "-f", str(rc), "--pidfile", str(tmp_path / "pid"), "--idfile", str(tmp_path / "ids"),
         "--nodetach", "-v"],
        capture_output=True, env=env, timeout=300, check=False,
    )
    print(f"fetchmail ({transport}) fetched and deleted {COUNT} messages in {time.monotonic() - started:.2f} s")
    log = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert result.returncode == 0, log[-4000:]

    files = sorted(out.iterdir())
    assert len(files) == COUNT, log[-4000:]
    received = {}
    for path in files:
        data = path.read_bytes()
        match = re.search(rb"^Message-ID: <([^>]+)>\r\n", data, re.MULTILINE)
        assert match, data[:300]
        received[match.group(1).decode()] = data
    assert received.keys() == delivered.keys()
    for key, raw in delivered.items():
        assert received[key] == raw, key

    assert Folder.objects.get(account=alice, name="INBOX").total_count == 0
    assert not Message.objects.filter(account=alice).exists()
