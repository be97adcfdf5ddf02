"""The POP3 session: a state machine fed command lines, answering with :class:`Reply` objects.

No sockets: the server reads lines and writes replies; STLS and closing are actions the
session asks for. Database work goes through :class:`~mailcore.pop3.maildrop.Maildrop`.
States and commands follow RFC 1939 §3-§7, CAPA RFC 2449, SASL PLAIN RFC 5034, STLS RFC 2595,
response codes RFC 2449 §8 and RFC 3206.
"""

from __future__ import annotations

import base64
import binascii
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from mailcore.addresses import AddressError, normalize_address
from mailcore.models import Account, Folder

from .maildrop import DropEntry, LoginOutcome, Maildrop, MaildropLock, MessageGone, is_loopback
from .parser import (
    Command,
    ParseError,
    parse_command,
    parse_line_count,
    parse_message_number,
    strip_line_ending,
)
from .wire import WireEncoder, top_cut

log = logging.getLogger(__name__)

CRLF = b"\r\n"

# Response codes (RFC 2449 §8, RFC 3206).
CODE_IN_USE = "IN-USE"
CODE_AUTH = "AUTH"
CODE_SYS_TEMP = "SYS/TEMP"
CODE_SYS_PERM = "SYS/PERM"

MECHANISM_PLAIN = "PLAIN"
SASL_CANCEL = "*"


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"


class Action(enum.Enum):
    NONE = "none"
    CLOSE = "close"
    STARTTLS = "starttls"


@dataclass
class Reply:
    line: bytes
    body: AsyncIterator[bytes] | None = None  # wire-ready chunks ending with ".CRLF"
    action: Action = Action.NONE


@dataclass(frozen=True)
class Pop3Limits:
    """Every limit of a POP3 connection, with its default."""

    max_line: int = 2048  # longest line read at all (SASL responses); commands are capped at 255
    max_commands: int = 50_000  # per connection: enough for ~15,000 messages fetched and deleted
    max_bad_commands: int = 10  # unknown, malformed or out-of-state commands before disconnect
    max_auth_failures: int = 3  # per connection, on top of LoginThrottle's per-IP/per-account counts
    login_timeout: float = 60.0  # idle seconds allowed before login
    idle_timeout: float = 600.0  # idle seconds after login: RFC 1939 §3 "at least 10 minutes"
    send_timeout: float = 600.0  # seconds a client may take to accept a reply chunk


def ok(text: str = "") -> Reply:
    return Reply((f"+OK {text}" if text else "+OK").encode() + CRLF)


def err(text: str, code: str | None = None, action: Action = Action.NONE) -> Reply:
    prefix = f"[{code}] " if code else ""
    return Reply(f"-ERR {prefix}{text}".encode() + CRLF, action=action)


async def _lines(lines: list[str]) -> AsyncIterator[bytes]:
    yield "".join(f"{line}\r\n" for line in lines).encode() + b".\r\n"


Handler = Callable[["Session", Command], Awaitable[Reply]]


@dataclass(eq=False)
class Session:
    maildrop: Maildrop
    client_ip: str
    hostname: str = "localhost"
    tls_active: bool = False
    tls_available: bool = False
    allow_plaintext_on_loopback: bool = False
    limits: Pop3Limits = field(default_factory=Pop3Limits)

    state: State = State.AUTHORIZATION
    account: Account | None = None
    commands: int = 0
    bad_commands: int = 0
    auth_failures: int = 0
    _user: str | None = None
    _sasl_pending: bool = False
    _lock: MaildropLock | None = None
    _folder: Folder | None = None
    _entries: list[DropEntry] = field(default_factory=list)
    _deleted: set[int] = field(default_factory=set)  # message numbers, 1-based
    _retrieved: set[int] = field(default_factory=set)
    _closed: bool = False

    # --- the server's side ------------------------------------------------------------------

    def greeting(self) -> Reply:
        return ok(f"{self.hostname} POP3 ready")

    def tls_started(self) -> None:
        self.tls_active = True
        self._user = None

    def line_too_long(self) -> Reply:
        self.commands += 1
        self._sasl_pending = False
        return self._bad("line too long")

    def idle_timeout(self) -> float:
        return self.limits.idle_timeout if self.state is State.TRANSACTION else self.limits.login_timeout

    async def handle_line(self, line: bytes) -> Reply:
        self.commands += 1
        if self.commands > self.limits.max_commands:
            return err("too many commands; closing", CODE_SYS_PERM, Action.CLOSE)
        if self._sasl_pending:
            self._sasl_pending = False
            return await self._sasl_response(strip_line_ending(line).decode("ascii", "replace"))
        try:
            command = parse_command(line)
        except ParseError as exc:
            return self._bad(str(exc))
        handler = DISPATCH.get((self.state, command.name))
        if handler is None:
            if any(name == command.name for _, name in DISPATCH):
                return self._bad(f"{command.name} is not valid in the {self.state.value} state")
            return self._bad("unknown command")
        try:
            return await handler(self, command)
        except MessageGone:
            return err("that message was removed by another client")
        except Exception:
            log.exception("POP3 command %s failed", command.name)
            return err("internal error; try again later", CODE_SYS_TEMP)

    async def close(self) -> None:
        """The connection is gone, however it ended. A dropped connection deletes nothing
        (RFC 1939 §6); messages already retrieved are still marked \\Seen."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.state is State.TRANSACTION and self._retrieved and self.account and self._folder:
                await self.maildrop.update(
                    self.account, self._folder, deleted=[],
                    seen=[self._entries[n - 1] for n in sorted(self._retrieved)],
                )
        except Exception:
            log.exception("POP3: marking retrieved messages seen failed")
        finally:
            await self.release_lock()

    async def release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            await lock.release()

    def _bad(self, text: str) -> Reply:
        self.bad_commands += 1
        if self.bad_commands >= self.limits.max_bad_commands:
            return err(f"{text}; too many bad commands, closing", action=Action.CLOSE)
        return err(text)

    # --- AUTHORIZATION ------------------------------------------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        return self.tls_active or (self.allow_plaintext_on_loopback and is_loopback(self.client_ip))

    def capabilities(self) -> list[str]:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            if self.plaintext_allowed:
                caps += ["USER", f"SASL {MECHANISM_PLAIN}"]
            if self.tls_available and not self.tls_active:
                caps.append("STLS")
        caps.append("IMPLEMENTATION mailsystem")
        return caps

    async def cmd_capa(self, command: Command) -> Reply:
        reply = ok("capability list follows")
        reply.body = _lines(self.capabilities())
        return reply

    async def cmd_stls(self, command: Command) -> Reply:
        if self.tls_active:
            return self._bad("TLS is already active")
        if not self.tls_available:
            return err("TLS is not available", CODE_SYS_PERM)
        if command.args:
            return self._bad("STLS takes no arguments")
        return Reply(b"+OK begin TLS negotiation" + CRLF, action=Action.STARTTLS)

    def _plaintext_refused(self) -> Reply:
        return err("plaintext authentication is not allowed without TLS; use STLS first", CODE_AUTH)

    async def cmd_user(self, command: Command) -> Reply:
        if not self.plaintext_allowed:
            return self._plaintext_refused()
        if len(command.args) != 1:
            return self._bad("USER takes one argument")
        self._user = command.args[0]
        return ok("send PASS")

    async def cmd_pass(self, command: Command) -> Reply:
        if not self.plaintext_allowed:
            return self._plaintext_refused()
        user, self._user = self._user, None
        if user is None:
            return self._bad("send USER first")
        if len(command.args) != 1:
            return self._bad("PASS takes one argument")
        return await self._login(user, command.args[0])

    async def cmd_auth(self, command: Command) -> Reply:
        if not command.args:
            # The RFC 1734 listing that many clients still probe with.
            reply = ok("SASL mechanisms follow")
            reply.body = _lines([MECHANISM_PLAIN] if self.plaintext_allowed else [])
            return reply
        if command.args[0].upper() != MECHANISM_PLAIN:
            return err("unsupported authentication mechanism")
        if not self.plaintext_allowed:
            return self._plaintext_refused()
        if len(command.args) > 2:
            return self._bad("AUTH takes a mechanism and an optional initial response")
        if len(command.args) == 2:
            return await self._sasl_response(command.args[1], initial=True)
        self._sasl_pending = True
        return Reply(b"+ " + CRLF)

    async def _sasl_response(self, text: str, *, initial: bool = False) -> Reply:
        if text == SASL_CANCEL and not initial:
            return err("authentication cancelled")
        if text == "=" and initial:  # RFC 5034 §4: an empty initial response
            text = ""
        try:
            decoded = base64.b64decode(text.encode("ascii"), validate=True)
            authzid, authcid, password = decoded.decode("utf-8").split("\0")
        except (binascii.Error, UnicodeError, ValueError):
            return err("malformed SASL PLAIN response", CODE_AUTH)
        if authzid and not _same_address(authzid, authcid):
            return await self._auth_failed(authcid)
        return await self._login(authcid, password)

    async def _login(self, address: str, password: str) -> Reply:
        login = await self.maildrop.login(address, password, self.client_ip)
        if login.outcome is LoginOutcome.THROTTLED:
            return err("too many failed logins; try again later", CODE_SYS_TEMP, Action.CLOSE)
        if login.outcome is LoginOutcome.FAILED or login.account is None:
            return await self._auth_failed(address)
        account = login.account
        lock = await self.maildrop.lock(account)
        if lock is None:
            return err("the mailbox is open in another POP3 session", CODE_IN_USE)
        try:
            snapshot = await self.maildrop.snapshot(account)
        except BaseException:
            await lock.release()
            raise
        self._lock, self.account, self._folder = lock, account, snapshot.folder
        self._entries = snapshot.entries
        self.state = State.TRANSACTION
        total = sum(e.size for e in self._entries)
        return ok(f"logged in; {len(self._entries)} messages ({total} octets)")

    async def _auth_failed(self, address: str) -> Reply:
        self.auth_failures += 1
        action = Action.CLOSE if self.auth_failures >= self.limits.max_auth_failures else Action.NONE
        return err("authentication failed", CODE_AUTH, action)

    async def cmd_quit_authorization(self, command: Command) -> Reply:
        return Reply(f"+OK {self.hostname} POP3 signing off".encode() + CRLF, action=Action.CLOSE)

    # --- TRANSACTION --------------------------------------------------------------------------

    def _message(self, text: str) -> tuple[int, DropEntry] | Reply:
        number = parse_message_number(text)
        if number is None:
            return self._bad("invalid message number")
        if number > len(self._entries):
            return err(f"no message {number}")
        if number in self._deleted:
            return err(f"message {number} is deleted")
        return number, self._entries[number - 1]

    def _live(self) -> list[tuple[int, DropEntry]]:
        return [(n, e) for n, e in enumerate(self._entries, 1) if n not in self._deleted]

    async def cmd_stat(self, command: Command) -> Reply:
        if command.args:
            return self._bad("STAT takes no arguments")
        live = self._live()
        return ok(f"{len(live)} {sum(e.size for _, e in live)}")

    async def cmd_list(self, command: Command) -> Reply:
        return self._listing(command, lambda e: str(e.size))

    async def cmd_uidl(self, command: Command) -> Reply:
        return self._listing(command, lambda e: e.unique_id)

    def _listing(self, command: Command, value: Callable[[DropEntry], str]) -> Reply:
        if len(command.args) > 1:
            return self._bad(f"{command.name} takes at most one argument")
        if command.args:
            found = self._message(command.args[0])
            if isinstance(found, Reply):
                return found
            number, entry = found
            return ok(f"{number} {value(entry)}")
        live = self._live()
        reply = ok(f"{len(live)} messages")
        reply.body = _lines([f"{n} {value(e)}" for n, e in live])
        return reply

    async def cmd_retr(self, command: Command) -> Reply:
        if len(command.args) != 1:
            return self._bad("RETR takes one argument")
        found = self._message(command.args[0])
        if isinstance(found, Reply):
            return found
        number, entry = found
        chunks = self._encoded(entry, top_lines=None)
        first = await anext(chunks)  # fail here, before +OK, if the message has gone
        self._retrieved.add(number)
        return Reply(f"+OK {entry.size} octets".encode() + CRLF, body=_prepend(first, chunks))

    async def cmd_top(self, command: Command) -> Reply:
        if len(command.args) != 2:
            return self._bad("TOP takes a message number and a line count")
        found = self._message(command.args[0])
        if isinstance(found, Reply):
            return found
        lines = parse_line_count(command.args[1])
        if lines is None:
            return self._bad("invalid line count")
        chunks = self._encoded(found[1], top_lines=lines)
        first = await anext(chunks)
        return Reply(b"+OK top of message follows" + CRLF, body=_prepend(first, chunks))

    async def _encoded(self, entry: DropEntry, *, top_lines: int | None) -> AsyncIterator[bytes]:
        assert self.account is not None
        encoder = WireEncoder()
        if top_lines is None:
            async for chunk in self.maildrop.read(self.account, entry):
                encoded = encoder.feed(chunk)
                if encoded:
                    yield encoded
            yield encoder.finish()
            return
        head = b""
        cut: bytes | None = None
        async for chunk in self.maildrop.read(self.account, entry):
            head += chunk
            cut = top_cut(head, top_lines)
            if cut is not None:
                break
        yield encoder.feed(cut if cut is not None else head) + encoder.finish()

    async def cmd_dele(self, command: Command) -> Reply:
        if len(command.args) != 1:
            return self._bad("DELE takes one argument")
        found = self._message(command.args[0])
        if isinstance(found, Reply):
            return found
        self._deleted.add(found[0])
        return ok(f"message {found[0]} deleted")

    async def cmd_noop(self, command: Command) -> Reply:
        if command.args:
            return self._bad("NOOP takes no arguments")
        return ok()

    async def cmd_rset(self, command: Command) -> Reply:
        if command.args:
            return self._bad("RSET takes no arguments")
        self._deleted.clear()
        live = self._live()
        return ok(f"maildrop has {len(live)} messages ({sum(e.size for _, e in live)} octets)")

    async def cmd_quit_transaction(self, command: Command) -> Reply:
        assert self.account is not None and self._folder is not None
        self.state = State.UPDATE
        deleted = [self._entries[n - 1] for n in sorted(self._deleted)]
        seen = [self._entries[n - 1] for n in sorted(self._retrieved)]
        try:
            removed = await self.maildrop.update(self.account, self._folder, deleted=deleted, seen=seen)
        except Exception:
            log.exception("POP3 UPDATE failed for account %s", self.account.pk)
            return err("some deleted messages not removed", CODE_SYS_TEMP, Action.CLOSE)
        finally:
            self._closed = True
            await self.release_lock()
        return Reply(f"+OK {self.hostname} POP3 signing off ({removed} messages removed)".encode() + CRLF,
                     action=Action.CLOSE)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _same_address(a: str, b: str) -> bool:
    try:
        return normalize_address(a) == normalize_address(b)
    except AddressError:
        return False


_AUTH, _TRANS = State.AUTHORIZATION, State.TRANSACTION
DISPATCH: dict[tuple[State, str], Handler] = {
    (_AUTH, "CAPA"): Session.cmd_capa,
    (_AUTH, "STLS"): Session.cmd_stls,
    (_AUTH, "USER"): Session.cmd_user,
    (_AUTH, "PASS"): Session.cmd_pass,
    (_AUTH, "AUTH"): Session.cmd_auth,
    (_AUTH, "QUIT"): Session.cmd_quit_authorization,
    (_TRANS, "CAPA"): Session.cmd_capa,
    (_TRANS, "STAT"): Session.cmd_stat,
    (_TRANS, "LIST"): Session.cmd_list,
    (_TRANS, "UIDL"): Session.cmd_uidl,
    (_TRANS, "RETR"): Session.cmd_retr,
    (_TRANS, "TOP"): Session.cmd_top,
    (_TRANS, "DELE"): Session.cmd_dele,
    (_TRANS, "NOOP"): Session.cmd_noop,
    (_TRANS, "RSET"): Session.cmd_rset,
    (_TRANS, "QUIT"): Session.cmd_quit_transaction,
}
