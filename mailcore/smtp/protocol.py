"""Our SMTP protocol on top of aiosmtpd's ``SMTP`` class.

aiosmtpd gives the connection plumbing: the command loop, STARTTLS (it discards plaintext
pipelined after STARTTLS, RFC 3207 §4.2), the AUTH challenge helper, the idle timer. This
subclass replaces the commands whose behaviour we own — EHLO/HELO capabilities, AUTH (async,
throttled), MAIL/RCPT (strict paths, ESMTP parameters, policy), DATA (no bare CR/LF: no SMTP
smuggling), BDAT (RFC 3030) — and adds enhanced status codes on every final reply, PROXY
protocol, implicit TLS, and per-connection limits that close the connection when exceeded.

Policy (who may send what to whom, where it is stored) is in :mod:`mailcore.smtp.handler`.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto as sslproto
import collections
import contextlib
import enum
import logging
import re
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, TLSSetupException

from mailcore.net.proxy import ProxyError, read_proxy_header

from . import replies
from .dsn import DsnParamError, MailDsn, RcptDsn, mail_dsn_params, rcpt_dsn_params
from .parser import (
    MAX_RECEIVED_HEADERS,
    PathError,
    count_received,
    find_bare_line_ending,
    only_crlf_line_endings,
    parse_path_argument,
)
from .rdns import reverse_name

if TYPE_CHECKING:
    from mailcore.models import Account
    from mailcore.store import Resolution

    from .handler import MailHandler

log = logging.getLogger(__name__)

CRLF = b"\r\n"
BDAT_READ_CHUNK = 64 * 1024
DATA_READ_CHUNK = 64 * 1024
_BDAT_ARG = re.compile(r"^(\d{1,12})(?: +(LAST))? *$", re.IGNORECASE)


class Role(enum.Enum):
    MX = "smtp"  # port 25: mail for our domains from anyone, no AUTH
    SUBMISSION = "submission"  # port 587: STARTTLS, then AUTH, then mail from our users to anyone
    SUBMISSIONS = "smtps"  # port 465: implicit TLS (RFC 8314), then as submission

    @property
    def is_submission(self) -> bool:
        return self is not Role.MX


@dataclass(frozen=True)
class Limits:
    """Every limit of a connection, by name. Past one, the client gets a reply and usually the door."""

    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    command_line_length: int = 2048  # RFC 5321 says 512; ESMTP parameters and UTF-8 need more
    data_line_length: int = 4096  # RFC 5321's 1000 is exceeded by real mail; still bounded
    max_messages_per_connection: int = 100
    max_errors_per_connection: int = 20  # as Postfix's smtpd_hard_error_limit
    max_auth_failures_per_connection: int = 3
    idle_timeout: float = 300.0  # RFC 5321 §4.5.3.2.7 asks for 5 minutes
    proxy_header_timeout: float = 5.0
    rdns_timeout: float = 2.0  # total budget of the client's PTR and forward lookups


class MailSession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.account: Account | None = None
        self.tls_info: dict[str, Any] | None = None
        self.rdns: asyncio.Task[str | None] | None = None  # started when the connection opens
        # Local recipients this connection had accepted lately: address → (when, resolution).
        self.recipients_seen: dict[str, tuple[float, Resolution]] = {}

    async def client_name(self) -> str | None:
        """The client's forward-confirmed reverse DNS name, or None (bounded: see rdns.py)."""
        if self.rdns is None:
            return None
        return await self.rdns

    @property
    def client_ip(self) -> str:
        peer = self.peer
        if isinstance(peer, tuple) and peer:
            return str(peer[0])
        return "unknown"


class MailEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.declared_size = 0
        self.body_type = "7BIT"
        self.resolutions: list[Resolution] = []
        self.rcpt_attempted = False
        self.chunks: list[bytes] | None = None  # BDAT in progress
        self.chunk_bytes = 0
        self.bdat_error: str | None = None
        self.dsn = MailDsn()  # RET, ENVID (RFC 3461)
        self.rcpt_dsn: dict[str, RcptDsn] = {}  # NOTIFY, ORCPT by canonical recipient address


@dataclass
class ConnectionCounters:
    messages: int = 0
    errors: int = 0
    auth_failures: int = 0
    unknown_commands: int = 0
    closing: bool = False
    extra: dict[str, int] = field(default_factory=dict)


class MailSMTP(SMTP):
    """One client connection. ``handler`` decides policy; this class speaks the protocol."""

    def __init__(
        self,
        handler: MailHandler,
        *,
        role: Role,
        limits: Limits,
        hostname: str,
        tls_context: ssl.SSLContext | None,
        proxy_protocol: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.line_length_limit = max(limits.command_line_length, limits.data_line_length)
        super().__init__(
            handler,
            data_size_limit=limits.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="ESMTP ready",
            tls_context=tls_context,
            require_starttls=role is Role.SUBMISSION,
            timeout=limits.idle_timeout,
            auth_required=role.is_submission,
            auth_require_tls=True,
            loop=loop,
        )
        # aiosmtpd keeps these at class level and grows them on every EHLO; ours are per connection.
        self.command_size_limit = limits.command_line_length
        self.command_size_limits = collections.defaultdict(lambda: limits.command_line_length)
        self.handler = handler
        self.role = role
        self.limits = limits
        self.counters = ConnectionCounters()
        self._proxy_protocol = proxy_protocol
        self._proxy_peer: tuple[str, int] | None = None
        self._idle_deadline = 0.0  # see _reset_timeout
        self._idle_armed = False
        self.storing = False  # a complete message is being stored; shutdown waits for its reply
        self._data_too_big = False
        self.close_after_reply = False  # shutdown: 421 and close once the message's reply is out
        self._auth_methods = {}

    # --- session objects ------------------------------------------------------------------
    def _create_session(self) -> MailSession:
        return MailSession(self.loop)

    def _create_envelope(self) -> MailEnvelope:
        return MailEnvelope()

    @property
    def mail_session(self) -> MailSession:
        return cast(MailSession, self.session)

    @property
    def mail_envelope(self) -> MailEnvelope:
        return cast(MailEnvelope, self.envelope)

    @property
    def tls_active(self) -> bool:
        return self._tls_protocol is not None and self._tls_handshake_okay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._proxy_peer is not None:
            self.mail_session.peer = self._proxy_peer  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher() or ("", "", 0)
            self.mail_session.tls_info = {"version": ssl_object.version() or "", "cipher": cipher[0], "bits": cipher[2]}

    # --- connection start: PROXY header, implicit TLS -------------------------------------
    async def _handle_client(self) -> None:
        if self._proxy_protocol:
            self._reset_timeout(self.limits.proxy_header_timeout)
            try:
                source = await read_proxy_header(self._reader, timeout=self.limits.proxy_header_timeout)
            except ProxyError as exc:
                log.info("%r: bad PROXY header: %s", self.session and self.session.peer, exc)
                self._close()
                return
            if source is not None:
                self._proxy_peer = source
                self.mail_session.peer = source  # type: ignore[assignment]
            self._reset_timeout()
        # Looked up while the client greets us; awaited only when a message needs its Received:.
        # Cancelled with the connection: under a flood of short connections the lookups would
        # otherwise pile up for their whole budget each.
        rdns = self.mail_session.rdns = self.loop.create_task(
            reverse_name(self.mail_session.client_ip, timeout=self.limits.rdns_timeout)
        )
        try:
            if self.role is Role.SUBMISSIONS:
                try:
                    await self._tls_upgrade(keep_buffered=True)
                except (TLSSetupException, ConnectionError, OSError) as exc:
                    log.info("implicit TLS handshake failed: %s", exc)
                    self._close()
                    return
            await super()._handle_client()
        finally:
            if not rdns.done():
                rdns.cancel()
                # Collected, not left to be destroyed pending; its own cancellation is no error here.
                await asyncio.gather(rdns, return_exceptions=True)

    async def _tls_upgrade(self, *, keep_buffered: bool) -> None:
        """Put TLS under this protocol (aiosmtpd's STARTTLS dance, reusable for port 465)."""
        assert self.tls_context is not None
        leftover = bytes(self._reader._buffer) if keep_buffered else b""  # type: ignore[attr-defined]
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(self.loop, self, self.tls_context, waiter, server_side=True)
        self._original_transport = self.transport
        assert self._original_transport is not None
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        if leftover:
            # Bytes of the ClientHello that arrived with the PROXY header.
            buf = self._tls_protocol.get_buffer(len(leftover))
            buf[: len(leftover)] = leftover
            self._tls_protocol.buffer_updated(len(leftover))
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSSetupException() from error

    # --- replies --------------------------------------------------------------------------
    async def push(self, status: str | bytes) -> None:  # type: ignore[override]
        if self.counters.closing or self.transport is None:
            return
        raw = status.encode("utf-8") if isinstance(status, str) else status
        reply = replies.with_enhanced(raw)
        self._writer.write(reply + CRLF)
        if reply[:1] in (b"4", b"5") and not reply.startswith(b"421"):
            self.counters.errors += 1
            if self.counters.errors >= self.limits.max_errors_per_connection:
                await self.push_and_close(replies.TOO_MANY_ERRORS)
                return
        await self._writer.drain()

    async def push_raw(self, line: str) -> None:
        """A reply that must not get an enhanced code (HELO/EHLO, RFC 2034 §3)."""
        if self.counters.closing or self.transport is None:
            return
        self._writer.write(line.encode("utf-8") + CRLF)
        await self._writer.drain()

    async def push_and_close(self, status: str) -> None:
        if self.counters.closing or self.transport is None:
            return
        self._writer.write(replies.with_enhanced(status.encode("utf-8")) + CRLF)
        self._close()

    def _close(self) -> None:
        self.counters.closing = True
        if self.transport is not None:
            self.transport.close()

    async def handle_exception(self, error: Exception) -> str:
        """An unexpected error in a command: log it, tell the client to retry, reveal nothing."""
        log.exception("%r: error in SMTP command", self.session and self.session.peer)
        return replies.STORAGE_ERROR

    def abort(self) -> None:
        """Drop the connection at once (server shutdown), TLS layer and socket both."""
        self.counters.closing = True
        for transport in (self.transport, self._original_transport):
            if transport is not None:
                transport.abort()  # type: ignore[attr-defined]

    def _touch(self) -> None:
        """The client is sending: push the idle deadline back."""
        self._reset_timeout()

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Push the idle deadline back to ``duration`` (default: the idle timeout) from now.

        aiosmtpd cancels and schedules a timer on every command; here a command only moves the
        deadline, and the one timer of the connection, when it fires before the deadline, sets
        itself again for what is left. It is rescheduled at once only when the new deadline is
        earlier than the timer (a shorter duration, such as the PROXY header's)."""
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._idle_deadline = deadline
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or not self._idle_armed or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._idle_armed = True
            self._timeout_handle = self.loop.call_at(deadline, self._idle_check)

    def _idle_check(self) -> None:
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)
            return
        self._idle_armed = False
        self._timeout_cb()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.counters.closing:
            self._writer.write(replies.TIMEOUT.encode("ascii") + CRLF)
        self._close()

    # --- greeting and capabilities ------------------------------------------------------
    def capabilities(self) -> list[str]:
        caps = [
            "PIPELINING",
            f"SIZE {self.limits.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "DSN",
        ]
        if self.tls_context is not None and not self.tls_active:
            caps.append("STARTTLS")
        if self.role.is_submission and self.tls_active:
            caps.append("AUTH PLAIN LOGIN")
        return caps

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname or any(ch in hostname for ch in "\r\n\x00"):
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()
        self.mail_session.extended_smtp = True
        self.mail_session.host_name = hostname
        lines = [self.hostname, *self.capabilities()]
        for line in lines[:-1]:
            await self.push_raw(f"250-{line}")
        await self.push_raw(f"250 {lines[-1]}")

    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname or any(ch in hostname for ch in "\r\n\x00"):
            await self.push("501 5.5.4 Syntax: HELO hostname")
            return
        self._set_rset_state()
        self.mail_session.extended_smtp = False
        self.mail_session.host_name = hostname
        await self.push_raw(f"250 {self.hostname}")

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: STARTTLS")
            return
        if self.tls_active:
            await self.push("503 5.5.1 TLS is already active")
            return
        if self.tls_context is None:
            await self.push("454 4.7.0 TLS not available")
            return
        await self.push_raw("220 2.0.0 Ready to start TLS")
        await self._tls_upgrade(keep_buffered=False)

    # --- AUTH (RFC 4954) --------------------------------------------------------------------
    async def smtp_AUTH(self, arg: str | None) -> None:
        session = self.mail_session
        if not self.role.is_submission:
            await self.push(replies.AUTH_NOT_AVAILABLE)
            return
        if not session.host_name or not session.extended_smtp:
            await self.push(replies.NEED_HELO)
            return
        if not self.tls_active:
            await self.push(replies.AUTH_NEEDS_TLS)
            return
        if session.authenticated:
            await self.push(replies.AUTH_ALREADY)
            return
        if self.mail_envelope.mail_from is not None:
            await self.push("503 5.5.1 AUTH is not allowed during a mail transaction")
            return
        if not arg:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        credentials: tuple[str, str] | None
        if mechanism == "PLAIN":
            credentials = await self._auth_plain(initial.strip())
        elif mechanism == "LOGIN":
            credentials = await self._auth_login(initial.strip())
        else:
            await self.push(replies.AUTH_MECHANISM_UNKNOWN)
            return
        if credentials is None:
            return  # a 501 was already sent
        login, password = credentials
        outcome, account = await self.handler.authenticate(session.client_ip, login, password)
        if outcome == "ok" and account is not None:
            session.authenticated = True
            session.account = account
            session.auth_data = login  # type: ignore[assignment]
            await self.push(replies.AUTH_OK)
            return
        self.counters.auth_failures += 1
        if self.counters.auth_failures >= self.limits.max_auth_failures_per_connection:
            await self.push_and_close(replies.AUTH_TOO_MANY_FAILURES)
            return
        await self.push(replies.AUTH_THROTTLED if outcome == "throttled" else replies.AUTH_INVALID)

    async def _auth_response(self, initial: str, challenge: str) -> bytes | None:
        import base64
        import binascii

        if initial:
            if initial == "=":
                return b""
            try:
                return base64.b64decode(initial, validate=True)
            except binascii.Error:
                await self.push(replies.AUTH_BAD_BASE64)
                return None
        answer = await self.challenge_auth(challenge)
        return None if answer is MISSING else answer  # type: ignore[return-value]

    async def _auth_plain(self, initial: str) -> tuple[str, str] | None:
        data = await self._auth_response(initial, "")
        if data is None:
            return None
        parts = data.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Malformed PLAIN response")
            return None
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
        if authzid and authzid.lower() != authcid.lower():
            await self.push("535 5.7.8 Authorization identity must match the login")
            return None
        return authcid, password

    async def _auth_login(self, initial: str) -> tuple[str, str] | None:
        username = await self._auth_response(initial, "Username:")
        if username is None:
            return None
        password = await self._auth_response("", "Password:")
        if password is None:
            return None
        return username.decode("utf-8", "replace"), password.decode("utf-8", "replace")

    # --- the mail transaction -------------------------------------------------------------
    async def _transaction_allowed(self) -> bool:
        if await self.check_helo_needed():
            return False
        return not await self.check_auth_needed("MAIL")

    async def smtp_MAIL(self, arg: str | None) -> None:
        if not await self._transaction_allowed():
            return
        envelope, session = self.mail_envelope, self.mail_session
        if envelope.mail_from is not None:
            await self.push(replies.NESTED_MAIL)
            return
        if self.counters.messages >= self.limits.max_messages_per_connection:
            await self.push_and_close(replies.TOO_MANY_MESSAGES)
            return
        try:
            path = parse_path_argument(arg, "FROM")
        except PathError as exc:
            await self.push(f"501 5.5.4 Syntax: MAIL FROM:<address> ({exc})")
            return
        params = path.params
        if params and not session.extended_smtp:
            await self.push(replies.SYNTAX_MAIL)
            return
        size_text = params.pop("SIZE", None)
        body = (params.pop("BODY", None) or "7BIT").upper()
        smtputf8 = "SMTPUTF8" in params
        if smtputf8 and params.pop("SMTPUTF8") is not None:
            await self.push("501 5.5.4 SMTPUTF8 takes no value")
            return
        try:
            dsn = mail_dsn_params(params)
        except DsnParamError as exc:
            await self.push(f"501 5.5.4 {exc}")
            return
        if params:
            await self.push(replies.PARAM_UNKNOWN.format(name=next(iter(params))))
            return
        if body not in ("7BIT", "8BITMIME"):
            await self.push("501 5.5.4 BODY must be 7BIT or 8BITMIME")
            return
        declared = 0
        if size_text is not None:
            if not size_text.isdigit():
                await self.push("501 5.5.4 SIZE must be a number")
                return
            declared = int(size_text)
            if declared > self.limits.max_message_size:
                await self.push(replies.MESSAGE_TOO_BIG.format(limit=self.limits.max_message_size))
                return
        if not path.address.isascii() and not smtputf8:
            await self.push("553 5.6.7 Non-ASCII address needs SMTPUTF8")
            return
        status = await self.handler.mail_from(self, path.address, declared)
        if status.startswith("250"):
            envelope.mail_from = path.address
            envelope.declared_size = declared
            envelope.body_type = body
            envelope.smtp_utf8 = smtputf8
            envelope.dsn = dsn
        await self.push(status)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if not await self._transaction_allowed():
            return
        envelope, session = self.mail_envelope, self.mail_session
        if envelope.mail_from is None:
            await self.push(replies.NEED_MAIL)
            return
        envelope.rcpt_attempted = True
        try:
            path = parse_path_argument(arg, "TO")
        except PathError as exc:
            await self.push(f"501 5.5.4 Syntax: RCPT TO:<address> ({exc})")
            return
        if not path.address:
            await self.push("553 5.1.3 The null path is not a recipient")
            return
        params = path.params
        if params and not session.extended_smtp:
            await self.push(replies.SYNTAX_RCPT)
            return
        try:
            dsn = rcpt_dsn_params(params)
        except DsnParamError as exc:
            await self.push(f"501 5.5.4 {exc}")
            return
        if params:
            await self.push(replies.PARAM_UNKNOWN.format(name=next(iter(params))))
            return
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            await self.push(replies.TOO_MANY_RECIPIENTS)
            return
        if not path.address.isascii() and not envelope.smtp_utf8:
            await self.push("553 5.6.7 Non-ASCII address needs SMTPUTF8")
            return
        status, resolution = await self.handler.rcpt_to(self, path.address)
        if status.startswith("250") and resolution is not None and resolution.address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(resolution.address)
            envelope.resolutions.append(resolution)
            envelope.rcpt_dsn[resolution.address] = dsn
        await self.push(status)

    async def _data_allowed(self) -> str | None:
        envelope = self.mail_envelope
        if not self.mail_session.host_name:
            return replies.NEED_HELO
        if self._auth_required and not self.mail_session.authenticated:
            return replies.AUTH_REQUIRED
        if envelope.mail_from is None:
            return replies.NEED_MAIL
        if not envelope.rcpt_tos:
            return replies.NO_VALID_RECIPIENTS if envelope.rcpt_attempted else replies.NEED_RCPT
        return None

    async def smtp_DATA(self, arg: str | None) -> None:
        refusal = await self._data_allowed()
        if refusal is None and self.mail_envelope.chunks is not None:
            refusal = replies.BDAT_THEN_DATA
        if refusal is not None:
            await self.push(refusal)
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push(replies.DATA_GO_AHEAD)
        content = await self._read_data_content()
        if content is None or self.transport is None:
            return
        problem: str | None = None
        # RFC 5321 §4.5.2: one transparency dot off every line that starts with one.
        body = content.replace(b"\r\n.", b"\r\n")
        if body.startswith(b"."):
            body = body[1:]
        if self._data_too_big or len(body) > self.limits.max_message_size:
            problem = replies.MESSAGE_TOO_BIG.format(limit=self.limits.max_message_size)
        elif content:
            lines = content.split(CRLF)  # once, for both checks below
            if max(map(len, lines)) + 2 > self.limits.data_line_length:
                problem = replies.LINE_TOO_LONG
            elif not only_crlf_line_endings(content, len(lines) - 1):
                # RFC 5321 §2.3.8: CR and LF only as CRLF. Refusing the whole message means no
                # reading of "\n.\n" or similar can smuggle a second message past us.
                problem = replies.BARE_LINE_ENDING
        if problem is not None:
            self._set_post_data_state()
            await self.push(problem)
            return
        await self._message_complete(body)

    async def _read_data_content(self) -> bytes | None:
        """The bytes after 354 up to the line holding a lone dot (each line with its CRLF, still
        dot-stuffed), or None when the connection ended first.

        Read in blocks rather than line by line (a line per await cost more than the rest of the
        protocol); what the client pipelined after the dot goes back to the reader. Past the size
        limit the content is dropped as it comes and only the end is looked for.
        """
        reader = self._reader
        buffer = bytearray()
        scanned = 0
        self._data_too_big = False
        while True:
            if not self._data_too_big and buffer.startswith(b".\r\n"):
                end, content_end = 0, 0  # an empty message
            else:
                end = buffer.find(b"\r\n.\r\n", max(0, scanned - 4))
                content_end = end + 2
            if end >= 0 and len(buffer) >= 3:
                rest = bytes(buffer[content_end + 3 :])
                if rest:
                    reader._buffer[0:0] = rest  # type: ignore[attr-defined]  # the next pipelined command
                return b"" if self._data_too_big else bytes(buffer[:content_end])
            scanned = len(buffer)
            # Dot-stuffing adds at most a byte a line: count those before deciding it is too big.
            limit = self.limits.max_message_size + 4
            if len(buffer) > limit and (self._data_too_big or len(buffer) - buffer.count(b"\r\n.") > limit):
                self._data_too_big = True
                del buffer[:-4]  # keep what may be the start of the end marker
                scanned = len(buffer)
            try:
                chunk = await reader.read(DATA_READ_CHUNK)
            except ConnectionError:
                chunk = b""
            if not chunk:
                self._close()
                return None
            self._touch()
            buffer += chunk

    async def smtp_BDAT(self, arg: str | None) -> None:
        match = _BDAT_ARG.match(arg or "")
        if match is None:
            # We cannot know how many octets follow: the stream is lost, so is the connection.
            await self.push_and_close(replies.SYNTAX_BDAT)
            return
        size, last = int(match.group(1)), bool(match.group(2))
        envelope = self.mail_envelope
        refusal = await self._data_allowed()
        keep = refusal is None and envelope.bdat_error is None
        remaining = size
        if keep and envelope.chunks is None:
            envelope.chunks = []
        while remaining > 0:
            try:
                piece = await self._reader.readexactly(min(remaining, BDAT_READ_CHUNK))
            except asyncio.IncompleteReadError:
                self._close()
                return
            remaining -= len(piece)
            self._touch()
            if not keep:
                continue
            assert envelope.chunks is not None
            envelope.chunk_bytes += len(piece)
            if envelope.chunk_bytes > self.limits.max_message_size:
                envelope.bdat_error = replies.MESSAGE_TOO_BIG.format(limit=self.limits.max_message_size)
                envelope.chunks = []
                keep = False
            else:
                envelope.chunks.append(piece)
        if refusal is not None:
            await self.push(refusal)
            return
        if envelope.bdat_error is not None:
            error = envelope.bdat_error
            if last:
                self._set_post_data_state()
            await self.push(error)
            return
        if not last:
            await self.push(f"250 2.0.0 {size} octets received")
            return
        raw = b"".join(envelope.chunks or [])
        if find_bare_line_ending(raw) >= 0:
            self._set_post_data_state()
            await self.push(replies.BARE_LINE_ENDING)
            return
        await self._message_complete(raw)

    async def _message_complete(self, raw: bytes) -> None:
        envelope = self.mail_envelope
        self.counters.messages += 1
        self.storing = True
        try:
            if count_received(raw) > MAX_RECEIVED_HEADERS:
                status = replies.LOOP_DETECTED
            else:
                status = await self.handler.message(self, raw)
            self._set_post_data_state()
            del envelope
            await self.push(status)
        finally:
            self.storing = False
            if self.close_after_reply:
                self.shut_down(graceful=True)

    def shut_down(self, *, graceful: bool = False) -> None:
        """Server shutdown: tell the client (RFC 5321 §3.8) and drop the connection (``graceful``:
        after what is written, such as a message's 250, has gone out)."""
        if self.transport is not None and not self.counters.closing:
            with contextlib.suppress(Exception):
                self._writer.write(replies.SHUTTING_DOWN.encode("ascii") + CRLF)
        if graceful:
            self._close()
        else:
            self.abort()
