"""The SMTP server's policy adapter: turns protocol events into store and relay calls.

Blocking work (PostgreSQL, Redis, DNS, password hashing) runs in a thread pool, except the
commonest delivery, one mailbox with its DNS answers cached, which the event loop stores itself
over an async connection (``_store_from_loop``). No transaction is ever open across a network
wait: the message is complete in memory before the one transaction that stores it begins.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import psycopg
from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections

from mailcore.auth import LoginThrottle, authenticate_mail
from mailcore.dbthreads import in_db_thread
from mailcore.events import publish_soon
from mailcore.mime import parse_message
from mailcore.models import Account
from mailcore.store import RecipientKind, Resolution
from mailcore.store.asyncsql import AsyncStatements
from mailcore.store.copies import copies_outcome, copies_statement
from mailcore.store.errors import FolderNotFound, MessageTooLarge

from . import policy, replies
from .authresults import AuthVerdict, message_authenticate, strip_forged_results
from .dmarc import Disposition
from .resolver import DnsNotCached, cache_only
from .trace import TlsInfo, new_queue_id, received_header, return_path_header, with_protocol

if TYPE_CHECKING:
    from .protocol import MailSMTP, Role

log = logging.getLogger(__name__)

T = TypeVar("T")
AuthOutcome = Literal["ok", "invalid", "throttled"]
DEFAULT_DB_THREADS = 8


# The largest message the event loop stores itself: parsing it and hashing its body for DKIM (a
# few ms per MB each) hold up the loop's other connections, where a database thread would let
# them in every few milliseconds. Nor does it verify more than one DKIM signature.
LOOP_STORE_MAX_BYTES = 256 * 1024

RECIPIENT_REUSE = 2.0  # seconds a connection reuses a local recipient's lookup
RECIPIENT_REUSE_MAX = 1000  # addresses remembered per connection


class MailHandler:
    """Shared by every connection of one listener."""

    def __init__(
        self, *, role: Role, executor: ThreadPoolExecutor, hostname: str, db: AsyncStatements | None = None
    ) -> None:
        self.role = role
        self.executor = executor
        self.hostname = hostname
        # The event loop's connections: shared by the listeners of a process, or this one's own.
        self.owns_db = db is None
        self.db = db or AsyncStatements(size=DEFAULT_DB_THREADS)
        self.answered_from_loop = 0  # messages the event loop stored or refused itself

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await in_db_thread(self.executor, fn, *args, **kwargs)

    # --- AUTH -----------------------------------------------------------------------------
    async def authenticate(self, client_ip: str, login: str, password: str) -> tuple[AuthOutcome, Account | None]:
        return await self.run(self._authenticate, client_ip, login, password)

    def _authenticate(self, client_ip: str, login: str, password: str) -> tuple[AuthOutcome, Account | None]:
        throttle = LoginThrottle()
        if throttle.is_blocked(client_ip, login):
            return "throttled", None
        account = authenticate_mail(login, password)
        if account is None:
            throttle.record_failure(client_ip, login)
            return "invalid", None
        throttle.record_success(client_ip, login)
        return "ok", account

    # --- envelope -------------------------------------------------------------------------
    async def mail_from(self, server: MailSMTP, address: str, declared_size: int) -> str:
        if not self.role.is_submission:
            return replies.SENDER_OK
        account = server.mail_session.account
        if account is None:
            return replies.AUTH_REQUIRED
        allowed = await self.run(policy.sender_allowed, account, address) if address else False
        return replies.SENDER_OK if allowed else replies.SEND_AS_DENIED.format(address=address)

    async def rcpt_to(self, server: MailSMTP, address: str) -> tuple[str, Resolution | None]:
        # A client that sends many messages to the same mailbox on one connection (a list
        # server, another MTA's queue run) gets it looked up once every RECIPIENT_REUSE seconds,
        # not once per RCPT: only accepted local recipients are remembered, so an unknown
        # address is asked about each time, and delivery re-checks quota and the account row in
        # its one statement, as it always did for the moments between RCPT and end of data.
        seen = server.mail_session.recipients_seen
        entry = seen.get(address)
        now = time.monotonic()
        known = entry[1] if entry is not None and now - entry[0] < RECIPIENT_REUSE else None
        if self.role.is_submission:
            check = functools.partial(policy.submission_recipient_check, address, known=known)
        else:
            check = functools.partial(
                policy.mx_recipient_check, address, declared_size=server.mail_envelope.declared_size, known=known
            )
        decision = check() if known is not None else await self.run(check)
        resolution = decision.resolution
        if known is None and resolution is not None and resolution.kind is RecipientKind.LOCAL:
            if len(seen) >= RECIPIENT_REUSE_MAX:
                seen.clear()
            seen[address] = (now, resolution)
        return decision.reply, resolution

    # --- the message ----------------------------------------------------------------------
    async def message(self, server: MailSMTP, raw: bytes) -> str:
        session, envelope = server.mail_session, server.mail_envelope
        queue_id = new_queue_id()
        tls = TlsInfo(**session.tls_info) if session.tls_info else None
        protocol = with_protocol(
            extended=session.extended_smtp, tls=tls is not None,
            authenticated=bool(session.authenticated), smtputf8=envelope.smtp_utf8,
        )
        received = received_header(
            helo=session.host_name or "unknown", client_ip=session.client_ip, client_name=await session.client_name(),
            by_host=self.hostname,
            protocol=protocol, queue_id=queue_id, tls=tls,
            recipient=envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None,
        )
        incoming = _Incoming(
            raw=raw, received=received, mail_from=envelope.mail_from or "",
            local=[r for r in envelope.resolutions if r.kind is RecipientKind.LOCAL],
            remote=[r.address for r in envelope.resolutions if r.kind is RecipientKind.REMOTE],
            account=session.account, smtputf8=envelope.smtp_utf8, client_ip=session.client_ip,
            helo=session.host_name or "", queue_id=queue_id,
            dsn=policy.EnvelopeDsn(ret=envelope.dsn.ret, envid=envelope.dsn.envid, recipients=dict(envelope.rcpt_dsn)),
        )
        try:
            outcome = await self._store_from_loop(incoming)
            if isinstance(outcome, str):
                self.answered_from_loop += 1
                return outcome
            # A verdict the loop reached stands (its DMARC pct draw is not drawn again).
            return await self.run(self._store, incoming, outcome)
        except Exception:  # noqa: BLE001 - whatever went wrong, nothing was committed
            log.exception("storing message %s failed", queue_id)
            return replies.STORAGE_ERROR

    async def _store_from_loop(self, incoming: _Incoming) -> str | _Checked | None:
        """The commonest case, one local mailbox and nothing else to write, stored from the event
        loop with one statement of its own (see mailcore.store.asyncsql): the reply. Otherwise
        what a database thread needs to store it: the checked message when the loop got that far
        (for the Junk folder), None when the message is not that case, or when its SPF/DKIM/DMARC
        needs DNS answers that are not cached (the loop must not wait on DNS)."""
        if len(incoming.raw) > LOOP_STORE_MAX_BYTES or _dkim_signatures(incoming.raw) > 1:
            return None  # parsing or verifying it would hold up every other connection of the loop
        target = policy.alone_target(local=incoming.local, remote=incoming.remote, junk=False, dsn=incoming.dsn)
        if target is None:
            return None
        try:
            with cache_only() as probe:
                checked = self._checked(incoming)
        except DnsNotCached:
            return None
        if probe.missed:  # a lookup was missed even if a library swallowed the exception
            return None
        if isinstance(checked, str):
            return self._refused(incoming, checked)
        if checked.junk:
            return checked  # to the Junk folder: not the one-statement case
        statement = copies_statement(
            raw=checked.local_raw, targets=[target], parsed=parse_message(checked.local_raw), alone=True
        )
        try:
            rows = await self.db.fetch_all(statement.sql, statement.params)
        except psycopg.errors.DivisionByZero:
            raise FolderNotFound("the folder does not exist (or holds no messages: \\Noselect)") from None
        except psycopg.Error as exc:
            log.warning("storage error for %s: %s", incoming.queue_id, exc)
            return replies.STORAGE_ERROR
        outcome = copies_outcome(statement, rows, publish=publish_soon)
        if outcome.over_quota:
            return replies.MAILBOX_FULL.format(address=incoming.local[0].address)
        return self._accepted(incoming, junk=False)

    def _checked(self, incoming: _Incoming) -> _Checked | str:
        """The message as stored, with its trace headers (and on the MX port its
        Authentication-Results after SPF, DKIM and DMARC: DNS work, outside any transaction), or
        the reply that refuses it (DMARC)."""
        raw, prefix, junk, dsn = incoming.raw, incoming.received, False, incoming.dsn
        if not self.role.is_submission:
            raw = strip_forged_results(raw, self.hostname)
            verdict = message_authenticate(
                authserv_id=self.hostname, ip=incoming.client_ip, mail_from=incoming.mail_from, helo=incoming.helo,
                raw=raw,
            )
            if settings.SMTP_DMARC_ENFORCE:
                refusal = _dmarc_refusal(verdict)
                if refusal is not None:
                    return refusal
                junk = verdict.disposition is Disposition.QUARANTINE
            if verdict.spf_result != "pass":
                # A success report goes to the envelope sender; unless SPF says this client may
                # use that address, it may be forged, and RET=FULL would make us reflect the
                # message to a victim (backscatter). Failure reports are the relay's, as ever.
                dsn = dsn.without_success()
            prefix = verdict.header + prefix
        relay_raw = prefix.encode("utf-8") + raw
        local_raw = return_path_header(incoming.mail_from).encode("utf-8") + relay_raw
        return _Checked(relay_raw=relay_raw, local_raw=local_raw, junk=junk, dsn=dsn)

    def _store(self, incoming: _Incoming, verdict: _Checked | None = None) -> str:
        """In a database thread: check the message unless the loop already did (``verdict``),
        then store it in one transaction."""
        checked = verdict or self._checked(incoming)
        if isinstance(checked, str):
            return self._refused(incoming, checked)
        try:
            policy.message_accept(
                local_raw=checked.local_raw, relay_raw=checked.relay_raw, mail_from=incoming.mail_from,
                local=incoming.local, remote=incoming.remote, account=incoming.account,
                smtputf8=incoming.smtputf8, junk=checked.junk, dsn=checked.dsn,
            )
        except policy.MailboxFullAtDelivery as exc:
            return replies.MAILBOX_FULL.format(address=exc.args[0])
        except MessageTooLarge:
            return replies.MESSAGE_TOO_BIG.format(limit=settings.MAX_MESSAGE_SIZE)
        except (DatabaseError, InterfaceError) as exc:
            log.warning("storage error for %s: %s", incoming.queue_id, exc)
            # A broken connection goes now, not at the next health check: the next message must
            # not fail on it too (a failed transaction block used to close it; a statement
            # delivered on its own leaves that to us).
            close_old_connections()
            return replies.STORAGE_ERROR
        return self._accepted(incoming, junk=checked.junk)

    def _refused(self, incoming: _Incoming, reply: str) -> str:
        log.info("message %s from <%s> [%s] refused: %s", incoming.queue_id, _loggable(incoming.mail_from),
                 incoming.client_ip, reply)
        return reply

    def _accepted(self, incoming: _Incoming, *, junk: bool) -> str:
        # One line per accepted message, as an MTA's log has: what an operator greps for. The
        # client's words (sender, HELO name) are logged with their control characters escaped.
        log.info(
            "%s: accepted from=<%s> client=[%s] helo=%s size=%d delivered=%s queued=%s%s", incoming.queue_id,
            _loggable(incoming.mail_from), incoming.client_ip, _loggable(incoming.helo) or "-", len(incoming.raw),
            ",".join(f"<{_loggable(r.address)}>" for r in incoming.local) or "-",
            ",".join(f"<{_loggable(a)}>" for a in incoming.remote) or "-", " junk" if junk else "",
        )
        return replies.QUEUED.format(id=incoming.queue_id)

    async def close(self) -> None:
        """Close this listener's own event-loop connections once their statements have ended."""
        if self.owns_db:
            await self.db.close()


@dataclass(frozen=True)
class _Incoming:
    """A complete message and its envelope, as the handler stores it."""

    raw: bytes
    received: str  # the Received: field, CRLF-terminated
    mail_from: str
    local: list[Resolution]
    remote: list[str]
    account: Account | None
    smtputf8: bool
    client_ip: str
    helo: str
    queue_id: str
    dsn: policy.EnvelopeDsn


@dataclass(frozen=True)
class _Checked:
    relay_raw: bytes  # with the trace headers
    local_raw: bytes  # and Return-Path, for final delivery
    junk: bool
    dsn: policy.EnvelopeDsn


def _dkim_signatures(raw: bytes) -> int:
    """How many DKIM-Signature fields the header block seems to hold (a cheap upper bound)."""
    end = raw.find(b"\r\n\r\n")
    return (raw if end < 0 else raw[:end]).lower().count(b"dkim-signature")


def _loggable(text: str) -> str:
    """``text`` with non-printable characters escaped, so a client cannot forge log lines or
    send terminal escapes to whoever reads the log."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _dmarc_refusal(verdict: AuthVerdict) -> str | None:
    """The 5xx reply for a message DMARC says to refuse, or None (RFC 7489 §6.6.1, §6.6.4)."""
    if verdict.from_error:
        return replies.FROM_UNUSABLE.format(reason=verdict.from_error)
    for result in verdict.dmarc:
        if result.disposition is Disposition.REJECT:
            return replies.DMARC_REJECT.format(domain=result.from_domain)
    return None
