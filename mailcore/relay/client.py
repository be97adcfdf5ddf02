"""The SMTP client side of the relay: one connection per destination for all due mail.

``destination_deliver`` opens a connection to the first hop of the route that answers (EHLO as
``MAIL_HOSTNAME``, opportunistic STARTTLS, AUTH for a smarthost), then sends every envelope of
the batch over it with RSET between messages, recording the outcome of each message as soon as
its DATA reply arrives. smtplib is enough here: the worker is a plain blocking process.
No ORM here; the caller passes ``prepare`` (conversion, DKIM) and ``record`` (queue state).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from mailcore.net.tls import client_context

from .encoding import has_8bit, wire_data
from .queue import Outcome, OutcomeKind
from .routing import Hop, Route

log = logging.getLogger("mailcore.relay.client")

# RFC 5321 §4.5.3.2 timeouts (Postfix uses the same): connecting and the greeting, each command,
# and the reply to the final "." of DATA. A live worker keeps its lease meanwhile (worker.LeaseKeeper).
CONNECT_TIMEOUT = 30.0
COMMAND_TIMEOUT = 300.0
DATA_DONE_TIMEOUT = 600.0
MAX_REPLY_TEXT = 500

# Our own replies, in SMTP form, for things that happen before or without a server's reply.
REPLY_NO_SMTPUTF8 = (553, "5.6.7 the receiving server does not support SMTPUTF8 (RFC 6531 §3.4)")
REPLY_TOO_BIG = (552, "5.3.4 message larger than the receiving server accepts")
REPLY_NO_TLS_SMARTHOST = (454, "4.7.0 smarthost offers no STARTTLS; not sending credentials in clear")
REPLY_AUTH_FAILED = 454  # class 4: our configuration, keep the mail and retry


@dataclass
class RecipientItem:
    recipient_id: int
    address: str
    notify: str = ""
    orcpt: str = ""


@dataclass
class Envelope:
    """One queued message with the recipients of this batch."""

    message_id: int
    mail_from: str
    raw: bytes  # may be empty when the caller's ``prepare`` loads the bytes itself (blob_id)
    recipients: list[RecipientItem]
    blob_id: int = 0
    smtputf8: bool = False
    dsn_ret: str = ""
    dsn_envid: str = ""


@dataclass
class DeliveryStats:
    connections: int = 0
    messages: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


class HopFailure(Exception):
    def __init__(self, reply: str, *, permanent: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


class TlsFailure(HopFailure):
    """STARTTLS was offered but the session did not survive it (handshake, or the EHLO after it)."""


PrepareFn = Callable[[Envelope, bool], bytes]
RecordFn = Callable[[list[Outcome]], None]


def _text(msg: bytes | str) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
    return " ".join(text.split())[:MAX_REPLY_TEXT]


def _reply(hop: Hop, code: int, msg: bytes | str) -> str:
    return f"{hop.host}[{hop.address}] said: {code} {_text(msg)}"


def _kind(code: int) -> OutcomeKind:
    if 200 <= code < 300:
        return OutcomeKind.DELIVERED
    return OutcomeKind.FAILED if code >= 500 else OutcomeKind.DEFERRED


class Connection:
    """An open, greeted (and maybe encrypted and authenticated) SMTP session to one hop."""

    def __init__(self, smtp: smtplib.SMTP, hop: Hop, tls: bool) -> None:
        self.smtp = smtp
        self.hop = hop
        self.tls = tls
        self.used = False

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()

    def supports(self, extension: str) -> bool:
        return bool(self.smtp.has_extn(extension))


def _authenticate(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH PLAIN when offered (one round trip, no fallback dance), else smtplib's choice."""
    mechanisms = str(smtp.esmtp_features.get("auth", "")).upper().split()
    if "PLAIN" in mechanisms:
        smtp.user, smtp.password = username, password
        smtp.auth("PLAIN", smtp.auth_plain)
    else:
        smtp.login(username, password)


def _open_hop(hop: Hop, route: Route, *, try_tls: bool) -> Connection:
    smtp = smtplib.SMTP(local_hostname=settings.MAIL_HOSTNAME, timeout=CONNECT_TIMEOUT)
    # starttls() names the server (SNI) from _host, which only the constructor sets; connecting
    # through the constructor would raise on a non-220 greeting before we can record it.
    smtp._host = hop.host  # type: ignore[attr-defined]
    try:
        code, msg = smtp.connect(hop.address, hop.port)
        if code != 220:
            raise HopFailure(_reply(hop, code, msg))
        if smtp.sock is not None:
            smtp.sock.settimeout(COMMAND_TIMEOUT)
        code, msg = smtp.ehlo()
        if code != 250:
            code, msg = smtp.helo()
            if code != 250:
                raise HopFailure(_reply(hop, code, msg))
        tls = False
        if try_tls and smtp.has_extn("starttls"):
            try:
                code, msg = smtp.starttls(context=client_context())
                if code == 220:
                    tls = True
                    # With TLS 1.3 a server that rejects the handshake is only noticed here.
                    code, msg = smtp.ehlo()
                    if code != 250:
                        raise TlsFailure(_reply(hop, code, msg))
            except (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                raise TlsFailure(f"{hop.host}[{hop.address}]: TLS failed: {exc}") from None
        if route.smarthost:
            if not tls:
                raise HopFailure(_reply(hop, *REPLY_NO_TLS_SMARTHOST))
            if route.username:
                try:
                    _authenticate(smtp, route.username, route.password)
                except smtplib.SMTPAuthenticationError as exc:
                    raise HopFailure(_reply(hop, REPLY_AUTH_FAILED, f"AUTH failed: {exc.smtp_code} {_text(exc.smtp_error)}")) from None
    except (HopFailure, smtplib.SMTPException, OSError):
        smtp.close()
        raise
    return Connection(smtp, hop, tls)


def connection_open(route: Route) -> Connection:
    """Connect to the first hop that greets us; HopFailure with the last problem when none does."""
    last = HopFailure(f"{route.domain}: no mail host to try")
    for hop in route.hops:
        for try_tls in (True, False):
            try:
                return _open_hop(hop, route, try_tls=try_tls)
            except TlsFailure as exc:
                # Opportunistic TLS that fails to negotiate: try the same host in clear (RFC 7435),
                # but never send a smarthost our password without TLS.
                last = exc
                if route.smarthost:
                    break
                continue
            except HopFailure as exc:
                last = exc
            except (smtplib.SMTPException, OSError) as exc:
                last = HopFailure(f"{hop.host}[{hop.address}]: connection failed: {exc}")
            break
    raise last


def _deferred(envelope: Envelope, reply: str, kind: OutcomeKind = OutcomeKind.DEFERRED, host: str = "") -> list[Outcome]:
    return [Outcome(recipient_id=r.recipient_id, kind=kind, reply=reply, remote_host=host) for r in envelope.recipients]


def _data(smtp: smtplib.SMTP, payload: bytes) -> tuple[int, bytes]:
    smtp.putcmd("data")
    code, msg = smtp.getreply()
    if code != 354:
        return code, msg
    smtp.send(wire_data(payload))
    if smtp.sock is not None:
        smtp.sock.settimeout(DATA_DONE_TIMEOUT)
    try:
        return smtp.getreply()
    finally:
        if smtp.sock is not None:
            smtp.sock.settimeout(COMMAND_TIMEOUT)


def _rcpt_options(item: RecipientItem, *, dsn: bool) -> list[str]:
    options = []
    if dsn and item.notify:
        options.append(f"NOTIFY={item.notify}")
    if dsn and item.orcpt:
        options.append(f"ORCPT={item.orcpt}")
    return options


def _joined(options: list[str]) -> str:
    return " " + " ".join(options) if options else ""


def envelope_send(conn: Connection, envelope: Envelope, prepare: PrepareFn) -> list[Outcome]:
    """One mail transaction (RSET first when the connection was used before). Raises on a broken link."""
    smtp, hop = conn.smtp, conn.hop
    if conn.used:
        code, msg = smtp.rset()
        if code != 250:
            raise smtplib.SMTPServerDisconnected(f"RSET refused: {code} {_text(msg)}")
    conn.used = True
    addresses = [envelope.mail_from] + [r.address for r in envelope.recipients]
    needs_utf8 = envelope.smtputf8 or any(not a.isascii() for a in addresses)
    if needs_utf8 and not conn.supports("smtputf8"):
        return _deferred(envelope, _reply(hop, *REPLY_NO_SMTPUTF8), OutcomeKind.FAILED, hop.host)
    eight_bit_ok = conn.supports("8bitmime")
    payload = prepare(envelope, eight_bit_ok)
    options: list[str] = []
    if conn.supports("size"):
        limit = int(smtp.esmtp_features.get("size", "0") or 0)
        if limit and len(payload) > limit:
            return _deferred(envelope, _reply(hop, *REPLY_TOO_BIG), OutcomeKind.FAILED, hop.host)
        options.append(f"SIZE={len(payload)}")
    if eight_bit_ok and has_8bit(payload):
        options.append("BODY=8BITMIME")
    if needs_utf8:
        options.append("SMTPUTF8")
    dsn = conn.supports("dsn")
    if dsn and envelope.dsn_ret:
        options.append(f"RET={envelope.dsn_ret}")
    if dsn and envelope.dsn_envid:
        options.append(f"ENVID={envelope.dsn_envid}")
    rcpt_options = [_rcpt_options(item, dsn=dsn) for item in envelope.recipients]
    if conn.supports("pipelining"):
        # RFC 2920: MAIL and every RCPT in one go, then their replies in order; DATA waits.
        if needs_utf8:
            smtp.command_encoding = "utf-8"
        smtp.putcmd("mail", f"FROM:{smtplib.quoteaddr(envelope.mail_from)}{_joined(options)}")
        for item, extra in zip(envelope.recipients, rcpt_options, strict=True):
            smtp.putcmd("rcpt", f"TO:{smtplib.quoteaddr(item.address)}{_joined(extra)}")
        code, msg = smtp.getreply()
        rcpt_replies = [smtp.getreply() for _ in envelope.recipients]
    else:
        code, msg = smtp.mail(envelope.mail_from, options)
        rcpt_replies = []
    if code == 421:
        raise smtplib.SMTPServerDisconnected(_reply(hop, code, msg))
    if code != 250:
        return _deferred(envelope, _reply(hop, code, msg), _kind(code), hop.host)
    outcomes: list[Outcome] = []
    accepted: list[RecipientItem] = []
    for index, item in enumerate(envelope.recipients):
        code, msg = rcpt_replies[index] if rcpt_replies else smtp.rcpt(item.address, rcpt_options[index])
        if code == 421:
            raise smtplib.SMTPServerDisconnected(_reply(hop, code, msg))
        if code in (250, 251):
            accepted.append(item)
        else:
            outcomes.append(Outcome(item.recipient_id, _kind(code), _reply(hop, code, msg), hop.host))
    if accepted:
        code, msg = _data(smtp, payload)
        kind = _kind(code)
        outcomes += [Outcome(r.recipient_id, kind, _reply(hop, code, msg), hop.host, dsn) for r in accepted]
        if code == 421:
            conn.used = False
            raise _Closing(outcomes)
    return outcomes


class _Closing(Exception):
    """The server said 421 after DATA: outcomes are known, the connection is not usable."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("421")
        self.outcomes = outcomes


def destination_deliver(
    route: Route, envelopes: Sequence[Envelope], *, prepare: PrepareFn, record: RecordFn, reuse: bool = True
) -> DeliveryStats:
    """Send all ``envelopes`` to ``route``'s first reachable hop over one connection (``reuse``)."""
    stats = DeliveryStats()
    conn: Connection | None = None
    pending = list(envelopes)
    try:
        while pending:
            envelope = pending.pop(0)
            if conn is None:
                try:
                    conn = connection_open(route)
                    stats.connections += 1
                except HopFailure as exc:
                    kind = OutcomeKind.FAILED if exc.permanent else OutcomeKind.DEFERRED
                    outcomes = [o for e in [envelope, *pending] for o in _deferred(e, exc.reply, kind)]
                    pending = []
                    record(outcomes)
                    stats.outcomes += outcomes
                    break
            try:
                outcomes = envelope_send(conn, envelope, prepare)
            except _Closing as closing:
                outcomes = closing.outcomes
                conn.close()
                conn = None
            except (smtplib.SMTPException, OSError) as exc:
                reply = f"{conn.hop.host}[{conn.hop.address}]: connection lost: {exc}"
                outcomes = _deferred(envelope, reply, host=conn.hop.host)
                conn.smtp.close()
                conn = None
            stats.messages += 1
            stats.outcomes += outcomes
            record(outcomes)
            if conn is not None and not reuse:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
    return stats
