"""Trace headers: ``Received:`` (RFC 5321 §4.4) and ``Return-Path:`` (at final delivery)."""

from __future__ import annotations

import datetime
import email.utils
import os
import random
import re
import secrets
import time
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^\x21-\x7e]|[()\\]")


@dataclass
class TlsInfo:
    version: str
    cipher: str
    bits: int


def _clean(text: str) -> str:
    """HELO names and the like, made safe to sit inside a header comment."""
    return _UNSAFE.sub("?", text)[:255] or "unknown"


def with_protocol(*, extended: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """The ``with`` keyword (RFC 3848, RFC 6531 §3.7.3)."""
    if not extended:
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


# Queue ids only have to be distinct, not secret. os.urandom releases the GIL for its system
# call, and on the event loop that handed the GIL to a database thread for up to a switch interval
# on every message; a generator seeded from it once (again in a forked child) does not.
_ids = random.Random(secrets.randbits(128))
os.register_at_fork(after_in_child=lambda: _ids.seed(secrets.randbits(128)))


def new_queue_id() -> str:
    return f"{_ids.getrandbits(48):012X}"


_last_stamp: tuple[int, str] = (-1, "")


def _stamp(moment: float) -> str:
    """RFC 5322 date-time of ``moment`` (whole seconds), formatted once per second: every message
    of that second gets the same text, and the event loop formats it once, not per message."""
    global _last_stamp
    second = int(moment)
    cached = _last_stamp
    if cached[0] != second:
        cached = _last_stamp = (second, email.utils.format_datetime(datetime.datetime.fromtimestamp(second, datetime.UTC)))
    return cached[1]


def received_header(
    *,
    helo: str,
    client_ip: str,
    by_host: str,
    client_name: str | None = None,
    protocol: str,
    queue_id: str,
    tls: TlsInfo | None,
    recipient: str | None,
    date: float | None = None,
) -> str:
    literal = f"IPv6:{client_ip}" if ":" in client_ip else client_ip  # RFC 5321 §4.1.3
    # TCP-info (RFC 5321 §4.4): the forward-confirmed reverse name, else "unknown", as Postfix writes it.
    tcp_info = f"{_clean(client_name or 'unknown')} [{literal}]"
    lines = [f"Received: from {_clean(helo)} ({tcp_info})", f"by {_clean(by_host)} (mailsystem) with {protocol} id {queue_id}"]
    if tls is not None:
        lines.append(f"(using {_clean(tls.version)} with cipher {_clean(tls.cipher)} ({tls.bits} bits))")
    stamp = _stamp(date if date else time.time())
    if recipient and "\r" not in recipient and "\n" not in recipient:
        lines.append(f"for <{recipient}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(stamp)
    return "\r\n\t".join(lines) + "\r\n"


def return_path_header(mail_from: str) -> str:
    return f"Return-Path: <{mail_from}>\r\n"
