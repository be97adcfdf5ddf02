"""The IMAP session state machine (RFC 3501 §3, RFC 9051): no sockets.

The server feeds complete parsed commands to :meth:`Session.handle`; the session writes its
responses through a :class:`SessionIO` and reads continuation lines (AUTHENTICATE, IDLE) from
it. Database work runs through ``self.db`` (a thread pool in the server), never holding a
transaction across a network wait.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from mailcore import store
from mailcore.auth import LoginThrottle, authenticate_mail
from mailcore.mime import decoded_part, iter_nodes, parse_message, section_bytes
from mailcore.models import Account, Folder

from . import ordering, selectors
from . import response as fmt
from .capabilities import ENABLEABLE, NAMESPACE, PERMANENT_SYSTEM_FLAGS, SERVER_ID, capabilities
from .notify import RESYNC, Notifier
from .parser import (
    Atom,
    Command,
    FetchItem,
    ParseError,
    SearchKey,
    SequenceSet,
    String,
    Token,
    astring,
    fetch_items,
    flag_list,
    number,
    parse_date_time,
    search_program,
    search_uses,
    sequence_set,
)
from .utf7 import Utf7Error, decode, encode

log = logging.getLogger(__name__)
T = TypeVar("T")

BOGUS_LIMIT = 50
AUTH_FAILURE_CLOSE = 3
IDLE_POLL_SECONDS = 60.0
FETCH_BODY_BYTES = 4 * 1024 * 1024
FETCH_META_BATCH = 500
REPORTED_MEMORY = 10_000
_REV1_ONLY_SEARCH_KEYS = ("RECENT", "NEW", "OLD")


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class SessionIO(Protocol):
    """What the session needs from a connection."""

    client_ip: str
    is_tls: bool
    is_loopback: bool
    starttls_available: bool

    async def write(self, data: bytes) -> None: ...

    async def read_line(self, timeout: float | None = None) -> bytes: ...

    async def starttls(self) -> None: ...

    @property
    def compressing(self) -> bool: ...

    async def start_compression(self) -> None: ...


class SharedRedisThrottle(LoginThrottle):
    """LoginThrottle over one connection pool per process instead of a new client per check."""

    _shared: redis.Redis | None = None
    _shared_url = ""

    def _redis(self) -> redis.Redis:
        cls = SharedRedisThrottle
        if cls._shared is None or cls._shared_url != settings.REDIS_URL:
            cls._shared = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
            cls._shared_url = settings.REDIS_URL
        return cls._shared


class FatalIOError(Exception):
    """Raised by the I/O layer when the connection has to end (a limit was exceeded)."""


class MailboxGone(Exception):
    """The selected mailbox was deleted by another session: the connection ends with BYE."""


class CommandError(Exception):
    """Ends a command with a tagged NO or BAD (``kind``) and an optional response code."""

    def __init__(self, kind: str, text: str, code: str = "") -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text
        self.code = code


def no(text: str, code: str = "") -> CommandError:
    return CommandError("NO", text, code)


def bad(text: str, code: str = "") -> CommandError:
    return CommandError("BAD", text, code)


def uid_set_text(uids: Sequence[int]) -> str:
    """1,2,3,5 -> "1:3,5" (order kept as given, runs compressed)."""
    parts: list[str] = []
    i = 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        parts.append(str(uids[i]) if i == j else f"{uids[i]}:{uids[j]}")
        i = j + 1
    return ",".join(parts)


async def _default_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await sync_to_async(fn, thread_sensitive=False)(*args, **kwargs)


@dataclass
class Selected:
    folder: Folder
    readonly: bool
    uids: list[int]
    recent: set[int]
    modseq: int
    uid_next: int
    keywords: set[str] = field(default_factory=set)
    pending_expunge: set[int] = field(default_factory=set)
    # The SEARCHRES result variable "$" (RFC 5182): UIDs, empty at SELECT.
    saved: list[int] = field(default_factory=list)
    # uid -> modseq already reported by this session (own STORE), not to be repeated.
    reported: dict[int, int] = field(default_factory=dict)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def saved_uids(self) -> list[int]:
        return [u for u in self.saved if self.seq_of(u) is not None]

    def uids_for_seqs(self, seqset: SequenceSet) -> list[int]:
        if seqset.saved:
            return self.saved_uids()
        total = len(self.uids)
        out: set[int] = set()
        for lo, hi in seqset.resolve(total):
            if lo < 1 or hi > total:
                raise bad("invalid message sequence number")
            out.update(self.uids[lo - 1 : hi])
        return sorted(out)

    def uids_for_uidset(self, seqset: SequenceSet) -> list[int]:
        if seqset.saved:
            return self.saved_uids()
        largest = self.uids[-1] if self.uids else 0
        out: set[int] = set()
        for lo, hi in seqset.resolve(largest):
            a = bisect.bisect_left(self.uids, lo)
            b = bisect.bisect_right(self.uids, hi)
            out.update(self.uids[a:b])
        return sorted(out)

    def uid_ranges(self, seqset: SequenceSet) -> list[tuple[int, int]]:
        if seqset.saved:
            return [(u, u) for u in self.saved_uids()]
        largest = self.uids[-1] if self.uids else 0
        return seqset.resolve(largest)

    def seq_ranges_as_uids(self, seqset: SequenceSet) -> list[tuple[int, int]]:
        if seqset.saved:
            return [(u, u) for u in self.saved_uids()]
        total = len(self.uids)
        out = []
        for lo, hi in seqset.resolve(total):
            lo, hi = max(lo, 1), min(hi, total)
            if lo <= hi:
                out.append((self.uids[lo - 1], self.uids[hi - 1]))
        return out


Handler = Callable[["Session", Command], Awaitable[None]]


class Session:
    def __init__(
        self,
        io: SessionIO,
        *,
        db: Callable[..., Awaitable[Any]] = _default_db,
        throttle: LoginThrottle | None = None,
        notifications: bool = True,
        notifier: Notifier | None = None,
    ) -> None:
        self.io = io
        self.db = db
        self.throttle = throttle or SharedRedisThrottle()
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.selected: Selected | None = None
        self.enabled: set[str] = set()
        self.bogus = 0
        self.auth_failures = 0
        self.out: list[bytes] = []
        self.notifications = notifications
        self.wakeup = asyncio.Event()
        self.dirty = False
        self.notifier = notifier
        self._events_account: int | None = None

    # --- output ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out.append(data)

    def untagged(self, text: str | bytes) -> None:
        self.out.append(b"* " + (text.encode() if isinstance(text, str) else text) + b"\r\n")

    async def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            await self.io.write(data)

    def login_allowed(self) -> bool:
        return self.io.is_tls or (self.io.is_loopback and bool(settings.ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK))

    def capability_text(self) -> str:
        return " ".join(capabilities(authenticated=self.state is not State.NOT_AUTHENTICATED, tls=self.io.is_tls,
                                     login_allowed=self.login_allowed(),
                                     starttls_available=self.io.starttls_available))

    def greeting(self) -> bytes:
        return f"* OK [CAPABILITY {self.capability_text()}] {settings.MAIL_HOSTNAME} IMAP ready\r\n".encode()

    # --- dispatch ---------------------------------------------------------------------------

    async def handle(self, command: Command) -> None:
        name = command.name
        args = command.args
        if name == "UID":
            if not args or not isinstance(args[0], Atom):
                await self.finish(command.tag, "BAD", "UID needs a command")
                return
            name = "UID " + args[0].upper()
            args = args[1:]
        handler = DISPATCH.get((self.state, name))
        if handler is None:
            self.bogus += 1
            known = any(key[1] == name for key in DISPATCH)
            text = f"{name} is not allowed in the {self.state.value} state" if known else "unknown command"
            await self.finish(command.tag, "BAD", text)
            if self.bogus >= BOGUS_LIMIT:
                self.untagged("BYE too many bad commands")
                self.state = State.LOGOUT
                await self.flush()
            return
        try:
            await handler(self, Command(command.tag, name, args))
        except MailboxGone:
            # RFC 3501/9051 have no way to take a client out of the selected state but BYE
            # (§7.1.5); Dovecot does the same ("Selected mailbox was deleted").
            self.out.clear()
            self.selected = None
            self.untagged("BYE selected mailbox was deleted, have to disconnect")
            self.state = State.LOGOUT
            await self.flush()
        except CommandError as exc:
            if exc.kind == "BAD":
                self.bogus += 1
            code = f"[{exc.code}] " if exc.code else ""
            await self.finish(command.tag, exc.kind, code + exc.text)
        except ParseError as exc:
            self.bogus += 1
            await self.finish(command.tag, "BAD", str(exc))
        except (OSError, FatalIOError):
            raise
        except Exception:
            # A bug or a database failure in one command must not take the connection down.
            log.exception("IMAP %s failed", name)
            self.out.clear()
            await self.finish(command.tag, "NO", "[SERVERBUG] internal error; try again")

    async def parse_error(self, exc: ParseError) -> None:
        self.bogus += 1
        if exc.tag:
            await self.finish(exc.tag, "BAD", str(exc))
        else:
            self.untagged(f"BAD {exc}")
            await self.flush()
        if self.bogus >= BOGUS_LIMIT:
            self.untagged("BYE too many bad commands")
            self.state = State.LOGOUT
            await self.flush()

    async def finish(self, tag: str, kind: str, text: str) -> None:
        self.send(f"{tag} {kind} {text}\r\n".encode("utf-8", "replace"))
        await self.flush()

    async def close(self) -> None:
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        if self._events_account is not None and self.notifier is not None:
            self.notifier.unregister(self._events_account, self._on_event)
        self._events_account = None

    # --- notifications (IDLE across processes) ----------------------------------------------

    async def _subscribe(self) -> None:
        if not self.notifications or self.notifier is None or self.account is None:
            return
        self._events_account = self.account.pk
        await self.notifier.register(self.account.pk, self._on_event)

    @property
    def notified(self) -> bool:
        """Whether changes by others arrive as events now (else look at the database)."""
        return (self._events_account is not None and self.notifier is not None
                and self.notifier.listening(self._events_account))

    def _on_event(self, event: dict[str, Any]) -> None:
        if event is RESYNC:
            self.dirty = True
            self.wakeup.set()
            return
        sel = self.selected
        if sel is None or event.get("folder") != sel.folder.pk:
            return
        modseq = int(event.get("modseq") or 0)
        if modseq and modseq <= sel.modseq:
            return  # already part of what this session has looked at (its own APPEND...)
        self.dirty = True
        self.wakeup.set()

    # --- selected-state synchronisation -----------------------------------------------------

    async def sync(self, *, allow_expunge: bool) -> None:
        """Report changes made elsewhere: EXPUNGE (when allowed), EXISTS, RECENT, FETCH FLAGS."""
        sel = self.selected
        if sel is None:
            return
        self.dirty = False
        delta = await self.db(selectors.folder_delta, sel.folder.pk, sel.modseq, sel.uid_next)
        if delta is None:
            # The folder was deleted elsewhere (a RENAME keeps the folder row, so a renamed
            # mailbox stays selected under its new name).
            raise MailboxGone()
        else:
            sel.modseq = max(sel.modseq, delta.highest_modseq)
            known = set(sel.uids)
            sel.pending_expunge.update(u for u in delta.expunged if u in known)
            if delta.new:
                new_uids = [u for u, _ in delta.new if u >= sel.uid_next]
                sel.uids.extend(new_uids)
                sel.uid_next = delta.uid_next
                recent_candidates = [u for u, r in delta.new if r]
                if recent_candidates and not sel.readonly and not self.rev2:
                    claimed = await self.db(store.recent_claim, folder=sel.folder.pk, uids=recent_candidates)
                    sel.recent.update(claimed)
                self.untagged(f"{len(sel.uids)} EXISTS")
                if not self.rev2:
                    self.untagged(f"{len(sel.recent)} RECENT")
            for uid, flags, modseq in delta.changed:
                if uid in sel.pending_expunge or sel.reported.get(uid, 0) >= modseq:
                    continue
                seq = sel.seq_of(uid)
                if seq is None:
                    continue
                flag_text = self._flags_with_recent(sel, uid, flags)
                extra = f" MODSEQ ({modseq})" if "CONDSTORE" in self.enabled else ""
                self.untagged(f"{seq} FETCH (UID {uid} FLAGS {flag_text}{extra})")
            sel.reported.clear()
        if allow_expunge and sel.pending_expunge:
            self._send_expunges(sorted(sel.pending_expunge))
            sel.pending_expunge.clear()

    def own_change(self, sel: Selected, modseq: int) -> bool:
        """After a write of this session to the selected folder that took ``modseq``: when that
        is the next MODSEQ after what the session has looked at, nothing else changed the
        folder in between (MODSEQs are taken one at a time under the folder lock), so the
        session is up to date without a delta query, and its own event will be ignored."""
        if modseq and modseq == sel.modseq + 1:
            sel.modseq = modseq
            return True
        return False

    def send_pending_expunges(self) -> None:
        sel = self.selected
        if sel is not None and sel.pending_expunge:
            self._send_expunges(sorted(sel.pending_expunge))
            sel.pending_expunge.clear()

    async def sync_if_notified(self, *, allow_expunge: bool) -> None:
        """Sync after FETCH/STORE/SEARCH only when an event said the folder changed (or Redis is
        unavailable); NOOP, CHECK and IDLE always look at the database."""
        if self.dirty or not self.notified:
            await self.sync(allow_expunge=allow_expunge)

    def _send_expunges(self, uids: Sequence[int]) -> None:
        sel = self.selected
        assert sel is not None
        vanished = []
        for uid in uids:
            seq = sel.seq_of(uid)
            if seq is None:
                continue
            if "QRESYNC" in self.enabled:
                vanished.append(uid)  # RFC 7162 §3.2.10: VANISHED replaces EXPUNGE
            else:
                self.untagged(f"{seq} EXPUNGE")
            del sel.uids[seq - 1]
            sel.recent.discard(uid)
            sel.pending_expunge.discard(uid)
        if vanished:
            self.untagged(f"VANISHED {uid_set_text(sorted(vanished))}")

    def _flags_with_recent(self, sel: Selected, uid: int, flags: Sequence[str]) -> str:
        self.announce_keywords(sel, flags)
        values = list(flags)
        if uid in sel.recent:
            values.append("\\Recent")
        return "(" + " ".join(values) + ")"

    def announce_keywords(self, sel: Selected, flags: Sequence[str]) -> None:
        """A keyword new to the mailbox is announced with FLAGS first (RFC 3501 §7.2.6)."""
        new = [f for f in flags if not f.startswith("\\") and f not in sel.keywords]
        if not new:
            return
        sel.keywords.update(new)
        self.untagged(f"FLAGS ({self.flags_text(sel)})")
        if not sel.readonly:
            self.untagged(f"OK [PERMANENTFLAGS ({self.flags_text(sel)} \\*)] flags permitted")

    @staticmethod
    def flags_text(sel: Selected) -> str:
        return " ".join(PERMANENT_SYSTEM_FLAGS + sorted(sel.keywords))

    # --- helpers ----------------------------------------------------------------------------

    def mailbox_name(self, token: Token, invalid: str = "NONEXISTENT") -> str:
        """The folder name a mailbox argument names; a name that cannot be a folder's answers
        NO with ``invalid``: NONEXISTENT when looking a mailbox up, CANNOT when making one."""
        raw = astring(token)
        try:
            name = self.decode_name(raw)
        except Utf7Error as exc:
            raise no(str(exc), invalid) from None
        try:
            return store.folder_name_normalize(name)
        except store.FolderError as exc:
            if name.upper() == "INBOX":
                return "INBOX"
            raise no(str(exc), invalid) from None

    async def folder_or_no(self, name: str, code: str = "NONEXISTENT", *, placeholder: bool = False) -> Folder:
        """The named folder, or a tagged NO. A \\Noselect placeholder (left by DELETE of a
        folder with children) is found only with ``placeholder`` (DELETE, RENAME); for
        everything else it holds no messages and answers as a missing mailbox would."""
        assert self.account is not None
        return self.selectable_or_no(name, await self.db(selectors.folder_get, self.account, name), code,
                                     placeholder=placeholder)

    @staticmethod
    def selectable_or_no(name: str, folder: Folder | None, code: str = "NONEXISTENT", *,
                         placeholder: bool = False) -> Folder:
        if folder is None:
            raise no("no such mailbox", code)
        if folder.noselect and not placeholder:
            raise no(f"{name} is not selectable (\\Noselect): it only holds child mailboxes", code)
        return folder

    @property
    def rev2(self) -> bool:
        """IMAP4rev2 enabled (RFC 9051 Appendix E): no \\Recent, ESEARCH for SEARCH, UTF-8
        mailbox names instead of modified UTF-7."""
        return "IMAP4REV2" in self.enabled

    def check_search_keys(self, key: SearchKey) -> None:
        """RFC 9051 removed the RECENT, NEW and OLD search keys (Appendix E): in IMAP4rev2 they
        are not part of the grammar, so a command using them is a BAD."""
        if self.rev2:
            for op in _REV1_ONLY_SEARCH_KEYS:
                if search_uses(key, op):
                    raise bad(f"{op} is not a search key in IMAP4rev2")

    def check_status_items(self, items: Sequence[str]) -> None:
        """STATUS RECENT does not exist in IMAP4rev2 (RFC 9051 status-att, Appendix E)."""
        if any(i not in STATUS_ITEMS for i in items):
            raise bad("unknown STATUS item")
        if self.rev2 and "RECENT" in items:
            raise bad("RECENT is not a STATUS item in IMAP4rev2")

    def list_name(self, name: str) -> bytes:
        if name == "INBOX":
            return b"INBOX"
        return fmt.astring(name if self.rev2 else encode(name))

    def decode_name(self, raw: str) -> str:
        return raw if self.rev2 else decode(raw)

    def require_selected(self) -> Selected:
        assert self.selected is not None
        return self.selected


# ==== command handlers ==========================================================================

async def cmd_capability(s: Session, c: Command) -> None:
    s.untagged(f"CAPABILITY {s.capability_text()}")
    await s.finish(c.tag, "OK", "CAPABILITY completed")


async def cmd_noop(s: Session, c: Command) -> None:
    if c.args:
        raise bad("NOOP takes no arguments")
    await s.sync(allow_expunge=True)
    await s.finish(c.tag, "OK", f"{c.name} completed")


async def cmd_logout(s: Session, c: Command) -> None:
    s.untagged("BYE logging out")
    s.state = State.LOGOUT
    await s.finish(c.tag, "OK", "LOGOUT completed")


async def cmd_id(s: Session, c: Command) -> None:
    s.send(SERVER_ID)
    await s.finish(c.tag, "OK", "ID completed")


async def cmd_compress(s: Session, c: Command) -> None:
    if len(c.args) != 1 or not isinstance(c.args[0], Atom):
        raise bad("COMPRESS needs a mechanism")
    if c.args[0].upper() != "DEFLATE":
        raise bad("unknown compression mechanism; this server offers DEFLATE")
    if s.io.compressing:
        raise no("compression is already active", "COMPRESSIONACTIVE")
    await s.finish(c.tag, "OK", "DEFLATE active")
    await s.io.start_compression()


async def cmd_starttls(s: Session, c: Command) -> None:
    if s.io.compressing:
        raise bad("TLS has to come before COMPRESS")
    if s.io.is_tls or not s.io.starttls_available:
        raise bad("TLS is already active" if s.io.is_tls else "STARTTLS is not available here")
    await s.finish(c.tag, "OK", "Begin TLS negotiation now")
    await s.io.starttls()


_BLOCKED = object()


def _check_login(throttle: LoginThrottle, ip: str, address: str, password: str) -> Any:
    """The throttle, the password and the throttle's reset in one trip to the database thread:
    _BLOCKED, the account, or None."""
    blocked, failures = throttle.check(ip, address)
    if blocked:
        return _BLOCKED
    account = authenticate_mail(address, password)
    if account is not None and failures:
        throttle.record_success(ip, address)
    return account


async def _login(s: Session, tag: str, address: str, password: str) -> None:
    ip = s.io.client_ip
    account = await s.db(_check_login, s.throttle, ip, address, password)
    if account is _BLOCKED:
        raise no("too many failed logins; try again later", "UNAVAILABLE")
    if account is None:
        await s.db(s.throttle.record_failure, ip, address)
        s.auth_failures += 1
        await asyncio.sleep(min(0.2 * s.auth_failures, 1.0))
        if s.auth_failures >= AUTH_FAILURE_CLOSE:
            s.send(f"{tag} NO [AUTHENTICATIONFAILED] invalid credentials\r\n".encode())
            s.untagged("BYE too many failed logins")
            s.state = State.LOGOUT
            await s.flush()
            return
        raise no("invalid credentials", "AUTHENTICATIONFAILED")
    s.account = account
    s.state = State.AUTHENTICATED
    await s._subscribe()
    await s.finish(tag, "OK", f"[CAPABILITY {s.capability_text()}] logged in")


async def cmd_login(s: Session, c: Command) -> None:
    if len(c.args) != 2:
        raise bad("LOGIN needs a user name and a password")
    if not s.login_allowed():
        raise no("use STARTTLS first", "PRIVACYREQUIRED")
    await _login(s, c.tag, astring(c.args[0]), astring(c.args[1]))


async def cmd_authenticate(s: Session, c: Command) -> None:
    if not c.args or not isinstance(c.args[0], Atom) or len(c.args) > 2:
        raise bad("AUTHENTICATE needs a mechanism")
    if c.args[0].upper() != "PLAIN":
        raise no("unsupported mechanism", "CANNOT")
    if not s.login_allowed():
        raise no("use STARTTLS first", "PRIVACYREQUIRED")
    if len(c.args) == 2:
        initial = astring(c.args[1]).encode()
        if initial == b"=":
            initial = b""
    else:
        s.send(b"+ \r\n")
        await s.flush()
        initial = (await s.io.read_line()).rstrip(b"\r\n")
    if initial == b"*":
        raise bad("authentication cancelled")
    try:
        decoded = base64.b64decode(initial, validate=True)
        authzid, authcid, password = decoded.split(b"\0")
        address, secret = authcid.decode(), password.decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad("invalid SASL PLAIN response") from None
    if authzid and authzid != authcid:
        raise no("cannot act as another user", "AUTHORIZATIONFAILED")
    await _login(s, c.tag, address, secret)


async def cmd_unauthenticate(s: Session, c: Command) -> None:
    """RFC 8437: back to the not authenticated state, forgetting the user, the selected mailbox
    and what was ENABLEd; TLS and compression stay."""
    if c.args:
        raise bad("UNAUTHENTICATE takes no arguments")
    await s._unsubscribe()
    s.selected = None
    s.account = None
    s.enabled = set()
    s.dirty = False
    s.auth_failures = 0
    s.state = State.NOT_AUTHENTICATED
    await s.finish(c.tag, "OK", "UNAUTHENTICATE completed")


async def cmd_enable(s: Session, c: Command) -> None:
    if not c.args:
        raise bad("ENABLE needs a capability")
    newly = []
    for token in c.args:
        name = astring(token).upper()
        if name in ENABLEABLE and name not in s.enabled:
            s.enabled.add(name)
            newly.append(ENABLEABLE[name])
    if "QRESYNC" in s.enabled:
        s.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    s.untagged("ENABLED" + "".join(" " + n for n in newly))
    await s.finish(c.tag, "OK", "ENABLE completed")


async def cmd_namespace(s: Session, c: Command) -> None:
    s.send(NAMESPACE)
    await s.finish(c.tag, "OK", "NAMESPACE completed")


# --- mailboxes --------------------------------------------------------------------------------

async def _select(s: Session, c: Command, *, readonly: bool) -> None:
    if not c.args or len(c.args) > 2:
        raise bad(f"{c.name} needs a mailbox name")
    condstore = False
    qresync: list[Token] | None = None
    if len(c.args) == 2:
        params = c.args[1]
        if not isinstance(params, list):
            raise bad("invalid SELECT parameters")
        i = 0
        while i < len(params):
            p = params[i]
            word = p.upper() if isinstance(p, Atom) else ""
            nxt = params[i + 1] if i + 1 < len(params) else None
            if word == "CONDSTORE":
                condstore = True
            elif word == "QRESYNC" and isinstance(nxt, list):
                if "QRESYNC" not in s.enabled:
                    raise bad("QRESYNC must be enabled first")
                if not 2 <= len(nxt) <= 4:
                    raise bad("invalid QRESYNC parameters")
                qresync = nxt
                i += 1
            else:
                raise bad("unknown SELECT parameter")
            i += 1
    if s.selected is not None:
        s.selected = None
        s.state = State.AUTHENTICATED
        s.untagged("OK [CLOSED] previous mailbox closed")
    name = s.mailbox_name(c.args[0])
    assert s.account is not None
    found, snap = await s.db(selectors.folder_select, s.account, name)
    folder = s.selectable_or_no(name, found)
    assert snap is not None
    if condstore:
        s.enabled.add("CONDSTORE")
    if s.rev2:
        recent: set[int] = set()  # IMAP4rev2 has no \Recent (RFC 9051 Appendix E)
    elif readonly:
        recent = set(snap.recent)
    else:
        recent = set(await s.db(store.recent_claim, folder=folder.pk, uids=snap.recent)) if snap.recent else set()
    sel = Selected(folder=folder, readonly=readonly, uids=snap.uids, recent=recent, modseq=snap.highest_modseq,
                   uid_next=snap.uid_next, keywords=set(snap.keywords))
    flags = s.flags_text(sel)
    s.untagged(f"FLAGS ({flags})")
    if readonly:
        s.untagged("OK [PERMANENTFLAGS ()] read-only mailbox")
    else:
        s.untagged(f"OK [PERMANENTFLAGS ({flags} \\*)] flags permitted")
    s.untagged(f"{len(sel.uids)} EXISTS")
    if s.rev2:
        # RFC 9051 §6.3.2: the mailbox's LIST response instead of RECENT and UNSEEN.
        attributes = await s.db(selectors.folder_attributes, folder)
        s.untagged(f"LIST ({' '.join(attributes)}) \"/\" ".encode() + s.list_name(folder.name))
    else:
        s.untagged(f"{len(recent)} RECENT")
    if snap.first_unseen_uid is not None and not s.rev2:
        seq = sel.seq_of(snap.first_unseen_uid)
        if seq is not None:
            s.untagged(f"OK [UNSEEN {seq}] first unseen message")
    s.untagged(f"OK [UIDVALIDITY {snap.uidvalidity}] UIDs valid")
    s.untagged(f"OK [UIDNEXT {snap.uid_next}] predicted next UID")
    s.untagged(f"OK [HIGHESTMODSEQ {snap.highest_modseq}] highest")
    s.selected = sel
    s.state = State.SELECTED
    if qresync is not None:
        await _qresync_report(s, sel, snap.uidvalidity, qresync)
    await s.finish(c.tag, "OK", f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {c.name} completed")


async def _qresync_report(s: Session, sel: Selected, uidvalidity: int, params: list[Token]) -> None:
    """RFC 7162 §3.2.5: what changed since the client's MODSEQ, when its UIDVALIDITY is current."""
    if number(params[0], nonzero=True) != uidvalidity:
        return
    since = number(params[1], nonzero=True)
    known = sel.uids_for_uidset(sequence_set(params[2])) if len(params) >= 3 and isinstance(params[2], Atom) \
        else None
    known_range = None
    if len(params) >= 3 and isinstance(params[2], Atom):
        known_range = sequence_set(params[2]).resolve(sel.uid_next)
    await _vanished_earlier(s, sel, since, known_range)
    changed = await s.db(selectors.changed_since, sel.folder.pk, since, sel.modseq)
    for uid, flags, modseq in changed:
        if (known is not None and uid not in known) or sel.seq_of(uid) is None:
            continue
        s.untagged(f"{sel.seq_of(uid)} FETCH (UID {uid} FLAGS {s._flags_with_recent(sel, uid, flags)} "
                   f"MODSEQ ({modseq}))")


async def _vanished_earlier(s: Session, sel: Selected, since: int, ranges: list[tuple[int, int]] | None) -> None:
    gone = await s.db(selectors.expunged_since, sel.folder.pk, since, sel.modseq)
    if ranges is not None:
        gone = [u for u in gone if any(lo <= u <= hi for lo, hi in ranges)]
    if gone:
        s.untagged(f"VANISHED (EARLIER) {uid_set_text(gone)}")


async def cmd_select(s: Session, c: Command) -> None:
    await _select(s, c, readonly=False)


async def cmd_examine(s: Session, c: Command) -> None:
    await _select(s, c, readonly=True)


async def cmd_create(s: Session, c: Command) -> None:
    if len(c.args) not in (1, 2):
        raise bad("CREATE needs a mailbox name")
    assert s.account is not None
    name = s.mailbox_name(c.args[0], invalid="CANNOT")
    special = ""
    if len(c.args) == 2:
        opts = c.args[1]
        if not (isinstance(opts, list) and len(opts) == 2 and isinstance(opts[0], Atom)
                and opts[0].upper() == "USE" and isinstance(opts[1], list) and len(opts[1]) <= 1):
            raise bad("invalid CREATE parameters")
        if opts[1]:
            wanted = astring(opts[1][0]).lower()
            match = [v for v in Folder.SpecialUse.values if v and v.lower() == wanted]
            if not match:
                raise no("that special use is not supported", "USEATTR")
            special = match[0]
    try:
        await s.db(store.folder_create, account=s.account, name=name, special_use=special, subscribe=False)
    except store.FolderExists as exc:
        raise no(str(exc), "ALREADYEXISTS") from None
    except store.FolderError as exc:
        raise no(str(exc), "CANNOT") from None
    requested = s.decode_name(astring(c.args[0])).rstrip(Folder.DELIMITER)
    if s.rev2 and requested != name:
        # RFC 9051 §6.3.4: a name the server normalised (INBOX's case) is reported with OLDNAME.
        s.untagged(b'LIST () "/" ' + s.list_name(name) + b' ("OLDNAME" (' + s.list_name(requested) + b"))")
    await s.finish(c.tag, "OK", "CREATE completed")


async def cmd_delete(s: Session, c: Command) -> None:
    if len(c.args) != 1:
        raise bad("DELETE needs a mailbox name")
    assert s.account is not None
    folder = await s.folder_or_no(s.mailbox_name(c.args[0]), placeholder=True)
    if folder.is_inbox:
        raise no("INBOX cannot be deleted", "CANNOT")
    try:
        # RFC 3501 §6.3.4: a folder with children loses its messages and stays as \Noselect.
        await s.db(store.folder_delete, account=s.account, folder=folder)
    except store.FolderHasChildren as exc:
        raise no(str(exc), "HASCHILDREN") from None
    except store.FolderNotFound as exc:
        raise no(str(exc), "NONEXISTENT") from None
    except store.FolderError as exc:
        raise no(str(exc), "CANNOT") from None
    if s.selected is not None and s.selected.folder.pk == folder.pk:
        s.selected = None
        s.state = State.AUTHENTICATED
    await s.finish(c.tag, "OK", "DELETE completed")


async def cmd_rename(s: Session, c: Command) -> None:
    if len(c.args) != 2:
        raise bad("RENAME needs two mailbox names")
    assert s.account is not None
    folder = await s.folder_or_no(s.mailbox_name(c.args[0]), placeholder=True)
    new_name = s.mailbox_name(c.args[1], invalid="CANNOT")
    try:
        await s.db(store.folder_rename, account=s.account, folder=folder, new_name=new_name)
    except store.FolderExists as exc:
        raise no(str(exc), "ALREADYEXISTS") from None
    except store.FolderNotFound as exc:
        raise no(str(exc), "NONEXISTENT") from None
    except store.FolderError as exc:
        raise no(str(exc), "CANNOT") from None
    await s.finish(c.tag, "OK", "RENAME completed")


async def _subscribe(s: Session, c: Command, subscribed: bool) -> None:
    if len(c.args) != 1:
        raise bad(f"{c.name} needs a mailbox name")
    assert s.account is not None
    # A subscription is a name: it may name no mailbox at all (RFC 3501 §6.3.6).
    # UNSUBSCRIBE of a name that is not subscribed is a no-op that succeeds, as in Dovecot.
    await s.db(store.folder_subscribe, account=s.account, name=s.mailbox_name(c.args[0]), subscribed=subscribed)
    await s.finish(c.tag, "OK", f"{c.name} completed")


async def cmd_subscribe(s: Session, c: Command) -> None:
    await _subscribe(s, c, True)


async def cmd_unsubscribe(s: Session, c: Command) -> None:
    await _subscribe(s, c, False)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


_LIST_SELECT = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_LIST_RETURN = {"SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"}


def _list_options(tokens: list[Token]) -> tuple[set[str], set[str], list[str], list[Token]]:
    """RFC 5258 LIST-EXTENDED: (selection options, return options, STATUS items, remaining args)."""
    args = list(tokens)
    selection: set[str] = set()
    returns: set[str] = set()
    status_items: list[str] = []
    first = args[0] if args else None
    if isinstance(first, list):
        args.pop(0)
        selection = {astring(t).upper() for t in first}
        if not selection <= _LIST_SELECT:
            raise bad("unknown LIST selection option")
        if selection == {"RECURSIVEMATCH"} or selection == {"RECURSIVEMATCH", "REMOTE"}:
            raise bad("RECURSIVEMATCH needs another selection option")
    if len(args) >= 2 and isinstance(args[-2], Atom) and args[-2].upper() == "RETURN":
        opts = args[-1]
        if not isinstance(opts, list):
            raise bad("RETURN needs a list")
        args = args[:-2]
        i = 0
        while i < len(opts):
            word = astring(opts[i]).upper()
            if word not in _LIST_RETURN:
                raise bad("unknown LIST return option")
            returns.add(word)
            if word == "STATUS":
                items = opts[i + 1] if i + 1 < len(opts) else None
                if not isinstance(items, list) or not items:
                    raise bad("STATUS needs a list of items")
                status_items = [astring(t).upper() for t in items]
                if any(x not in STATUS_ITEMS for x in status_items):
                    raise bad("unknown STATUS item")
                i += 1
            i += 1
    return selection, returns, status_items, args


async def _list(s: Session, c: Command, *, lsub: bool) -> None:
    assert s.account is not None
    selection: set[str] = set()
    returns: set[str] = set()
    status_items: list[str] = []
    args = list(c.args)
    if not lsub:
        selection, returns, status_items, args = _list_options(args)
        s.check_status_items(status_items)
    if len(args) != 2:
        raise bad(f"{c.name} needs a reference and a mailbox pattern")
    raw_patterns = args[1] if isinstance(args[1], list) and not lsub else [args[1]]
    try:
        reference = s.decode_name(astring(args[0]))
        patterns = [s.decode_name(astring(p)) for p in raw_patterns]
    except Utf7Error as exc:
        raise bad(str(exc)) from None
    word = "LSUB" if lsub else "LIST"
    if patterns == [""]:
        s.untagged(f'{word} (\\Noselect) "/" ""')
        await s.finish(c.tag, "OK", f"{c.name} completed")
        return
    regexes = []
    for pattern in patterns:
        full = reference + pattern if not reference or reference.endswith("/") or pattern.startswith("/") \
            else reference + "/" + pattern
        regexes.append(_pattern_regex(full))
        if full[:5].upper() == "INBOX":
            regexes.append(_pattern_regex("INBOX" + full[5:]))
    folders = await s.db(selectors.folders_list, s.account)
    by_name = {f.name: f for f in folders}
    names = sorted(by_name)
    subscribed = await s.db(selectors.subscriptions, s.account) if (
        lsub or "SUBSCRIBED" in selection or "SUBSCRIBED" in returns) else set()
    subscribed_only = "SUBSCRIBED" in selection
    special_only = "SPECIAL-USE" in selection
    show_subscribed = subscribed_only or "SUBSCRIBED" in returns

    def matches(name: str) -> bool:
        return any(r.match(name) for r in regexes)

    def has_child(name: str) -> bool:
        prefix = name + "/"
        start = bisect.bisect_left(names, prefix)
        return start < len(names) and names[start].startswith(prefix)

    def parents(name: str) -> list[str]:
        parts = name.split("/")
        return ["/".join(parts[:depth]) for depth in range(1, len(parts))]

    # RFC 3501 §6.3.9 (LSUB) and RFC 5258 §3.5 (RECURSIVEMATCH): a name that does not match
    # itself is still listed when a subscribed child of it is hidden by the pattern ("%").
    child_subscribed: set[str] = set()
    if lsub or "RECURSIVEMATCH" in selection:
        for name in subscribed:
            for parent in parents(name):
                if not matches(name) or "RECURSIVEMATCH" in selection:
                    child_subscribed.add(parent)
    if lsub or subscribed_only:
        candidates = sorted(subscribed | {n for n in child_subscribed if matches(n)})
    else:
        candidates = names
    for name in candidates:
        if not matches(name):
            continue
        folder = by_name.get(name)
        is_subscribed = name in subscribed
        if lsub:
            attrs = [] if is_subscribed and folder is not None and not folder.noselect else ["\\Noselect"]
            s.untagged(f"LSUB ({' '.join(attrs)}) \"/\" ".encode() + s.list_name(name))
            continue
        child_info = ""
        if special_only and (folder is None or folder.special_use in ("", Folder.SpecialUse.INBOX)):
            continue
        if subscribed_only and not is_subscribed:
            # Listed only for CHILDINFO (RFC 5258 §3.5): a subscribed child exists below it.
            child_info = ' ("CHILDINFO" ("SUBSCRIBED"))'
        elif "RECURSIVEMATCH" in selection and subscribed_only and name in child_subscribed:
            child_info = ' ("CHILDINFO" ("SUBSCRIBED"))'
        attrs = []
        if folder is None:
            attrs.append("\\NonExistent")
        elif folder.noselect:
            attrs.append("\\Noselect")
        if folder is not None or has_child(name):
            attrs.append("\\HasChildren" if has_child(name) else "\\HasNoChildren")
        if show_subscribed and is_subscribed:
            attrs.append("\\Subscribed")
        if folder is not None and folder.special_use and folder.special_use != Folder.SpecialUse.INBOX:
            attrs.append(folder.special_use)
        s.untagged(f"{word} ({' '.join(attrs)}) \"/\" ".encode() + s.list_name(name) + child_info.encode())
        if status_items and folder is not None and not folder.noselect:
            st = await s.db(selectors.folder_status, folder)
            s.untagged(b"STATUS " + s.list_name(name) + f" ({_status_text(st, status_items)})".encode())
    await s.finish(c.tag, "OK", f"{c.name} completed")


async def cmd_list(s: Session, c: Command) -> None:
    await _list(s, c, lsub=False)


async def cmd_lsub(s: Session, c: Command) -> None:
    await _list(s, c, lsub=True)


STATUS_ITEMS = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED",
                "DELETED-STORAGE"}


def _status_text(st: selectors.FolderStatus, items: list[str]) -> str:
    # DELETED-STORAGE (RFC 9208): what EXPUNGE would free, in the STORAGE unit (KiB).
    values = {"MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.uid_next, "UIDVALIDITY": st.uidvalidity,
              "UNSEEN": st.unseen, "HIGHESTMODSEQ": st.highest_modseq, "SIZE": st.size, "DELETED": st.deleted,
              "DELETED-STORAGE": (st.deleted_size + 1023) // 1024}
    return " ".join(f"{i} {values[i]}" for i in items)


async def cmd_status(s: Session, c: Command) -> None:
    if len(c.args) != 2 or not isinstance(c.args[1], list) or not c.args[1]:
        raise bad("STATUS needs a mailbox name and a list of items")
    items = [astring(t).upper() for t in c.args[1]]
    s.check_status_items(items)
    folder = await s.folder_or_no(s.mailbox_name(c.args[0]))
    st = await s.db(selectors.folder_status, folder)
    s.untagged(b"STATUS " + s.list_name(folder.name) + f" ({_status_text(st, items)})".encode())
    await s.finish(c.tag, "OK", "STATUS completed")


async def cmd_append(s: Session, c: Command) -> None:
    args = list(c.args)
    if len(args) < 2:
        raise bad("APPEND needs a mailbox name and a message")
    assert s.account is not None
    name = s.mailbox_name(args.pop(0))
    message = args.pop()
    if not isinstance(message, String):
        raise bad("APPEND needs the message as a literal")
    flags: list[str] = []
    internal: datetime | None = None
    for extra in args:
        if isinstance(extra, list):
            flags = flag_list(extra)
        elif isinstance(extra, String) and internal is None:
            internal = parse_date_time(extra)
        else:
            raise bad("invalid APPEND arguments")
    if len(message) > settings.MAX_MESSAGE_SIZE:
        raise no("message too large", "TOOBIG")
    if not message:
        raise no("empty message", "CANNOT")
    folder = await s.folder_or_no(name, "TRYCREATE")
    sel = s.selected if s.selected is not None and s.selected.folder.pk == folder.pk else None
    # A rev1 session appending to its selected (read-write) mailbox is the first to see the
    # message: it takes \Recent at once instead of claiming it in another statement.
    take_recent = sel is not None and not sel.readonly and not s.rev2
    try:
        appended = await s.db(store.message_append, account=s.account, folder=folder, raw=bytes(message),
                              flags=flags, internal_date=internal, recent=not take_recent)
    except store.QuotaExceeded as exc:
        raise no(str(exc), "OVERQUOTA") from None
    except store.MessageTooLarge as exc:
        raise no(str(exc), "TOOBIG") from None
    if sel is not None:
        if take_recent:
            sel.recent.add(appended.uid)
        # A keyword new to the selected mailbox is announced before the message (RFC 3501 §7.2.6).
        s.announce_keywords(sel, flags)
        if appended.uid >= sel.uid_next and s.own_change(sel, appended.modseq):
            sel.uids.append(appended.uid)
            sel.uid_next = appended.uid + 1
            s.untagged(f"{len(sel.uids)} EXISTS")
            if not s.rev2:
                s.untagged(f"{len(sel.recent)} RECENT")
            s.send_pending_expunges()
        else:
            await s.sync(allow_expunge=True)
    await s.finish(c.tag, "OK", f"[APPENDUID {appended.uidvalidity} {appended.uid}] APPEND completed")


async def cmd_idle(s: Session, c: Command) -> None:
    if c.args:
        raise bad("IDLE takes no arguments")
    s.wakeup.clear()
    await s.sync(allow_expunge=True)
    s.send(b"+ idling\r\n")
    await s.flush()
    reader = asyncio.ensure_future(s.io.read_line(timeout=float(IDLE_TIMEOUT_SECONDS)))
    waiter: asyncio.Future[Any] | None = None
    try:
        while True:
            waiter = asyncio.ensure_future(s.wakeup.wait())
            done, _ = await asyncio.wait({reader, waiter}, timeout=IDLE_POLL_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                line = reader.result()
                if line.rstrip(b"\r\n").upper() != b"DONE":
                    raise bad("expected DONE")
                break
            if not waiter.done():
                waiter.cancel()
            # Cleared before looking, so an event that lands during the sync wakes us again.
            s.wakeup.clear()
            if s.selected is not None:
                await s.sync(allow_expunge=True)
                await s.flush()
    finally:
        for task in (reader, waiter):
            if task is not None and not task.done():
                task.cancel()
    await s.finish(c.tag, "OK", "IDLE terminated")


IDLE_TIMEOUT_SECONDS = 30 * 60


# --- quota (RFC 9208) ------------------------------------------------------------------------

async def _quota_response(s: Session) -> bool:
    """The account's one quota root is "" when it has a limit; unlimited accounts have none."""
    assert s.account is not None
    used, limit = await s.db(selectors.account_usage, s.account)
    if not limit:
        return False
    s.untagged(f'QUOTA "" (STORAGE {(used + 1023) // 1024} {limit // 1024})')
    return True


async def cmd_getquotaroot(s: Session, c: Command) -> None:
    if len(c.args) != 1:
        raise bad("GETQUOTAROOT needs a mailbox name")
    folder = await s.folder_or_no(s.mailbox_name(c.args[0]))
    assert s.account is not None
    _, limit = await s.db(selectors.account_usage, s.account)
    s.untagged(b"QUOTAROOT " + s.list_name(folder.name) + (b' ""' if limit else b""))
    await _quota_response(s)
    await s.finish(c.tag, "OK", "GETQUOTAROOT completed")


async def cmd_getquota(s: Session, c: Command) -> None:
    if len(c.args) != 1:
        raise bad("GETQUOTA needs a quota root")
    if astring(c.args[0]) != "" or not await _quota_response(s):
        raise no("no such quota root", "NONEXISTENT")
    await s.finish(c.tag, "OK", "GETQUOTA completed")


async def cmd_setquota(s: Session, c: Command) -> None:
    raise no("quotas are set by the administrator", "NOPERM")


# --- selected state ---------------------------------------------------------------------------

async def cmd_check(s: Session, c: Command) -> None:
    await s.sync(allow_expunge=True)
    await s.finish(c.tag, "OK", "CHECK completed")


async def cmd_close(s: Session, c: Command) -> None:
    sel = s.require_selected()
    assert s.account is not None
    if not sel.readonly:
        await s.db(store.folder_expunge, account=s.account, folder=sel.folder, uids=None)
    s.selected = None
    s.state = State.AUTHENTICATED
    await s.finish(c.tag, "OK", "CLOSE completed")


async def cmd_unselect(s: Session, c: Command) -> None:
    s.selected = None
    s.state = State.AUTHENTICATED
    await s.finish(c.tag, "OK", "UNSELECT completed")


async def _expunge(s: Session, c: Command, uids: list[int] | None) -> None:
    sel = s.require_selected()
    assert s.account is not None
    if sel.readonly:
        raise no("mailbox is read-only", "READ-ONLY")
    # Plain EXPUNGE names no UIDs: the store removes every \Deleted entry of the folder (one
    # query instead of an IN list of the whole mailbox); ones this session never saw are
    # simply never announced.
    gone = await s.db(store.folder_expunge, account=s.account, folder=sel.folder, uids=uids)
    s._send_expunges(gone)
    if gone and s.own_change(sel, gone.modseq):
        s.send_pending_expunges()
    else:
        await s.sync(allow_expunge=True)
    code = ""
    if "CONDSTORE" in s.enabled:
        code = f"[HIGHESTMODSEQ {sel.modseq}] "
    await s.finish(c.tag, "OK", f"{code}{c.name} completed")


async def cmd_expunge(s: Session, c: Command) -> None:
    if c.args:
        raise bad("EXPUNGE takes no arguments")
    await _expunge(s, c, None)


async def cmd_uid_expunge(s: Session, c: Command) -> None:
    if len(c.args) != 1:
        raise bad("UID EXPUNGE needs a UID set")
    sel = s.require_selected()
    await _expunge(s, c, sel.uids_for_uidset(sequence_set(c.args[0])))


def _target_uids(s: Session, c: Command, token: Token) -> list[int]:
    sel = s.require_selected()
    seqset = sequence_set(token)
    return sel.uids_for_uidset(seqset) if c.name.startswith("UID ") else sel.uids_for_seqs(seqset)


async def _copy(s: Session, c: Command, *, move: bool) -> None:
    if len(c.args) != 2:
        raise bad(f"{c.name} needs a message set and a mailbox")
    sel = s.require_selected()
    assert s.account is not None
    uids = _target_uids(s, c, c.args[0])
    target = await s.folder_or_no(s.mailbox_name(c.args[1]), "TRYCREATE")
    if move and sel.readonly:
        raise no("mailbox is read-only", "READ-ONLY")
    service = store.message_move if move else store.message_copy
    try:
        if move and target.pk == sel.folder.pk and uids:
            # RFC 6851 §3.3 allows a move within one mailbox: new UIDs, the old ones expunged.
            pairs = await s.db(store.message_copy, account=s.account, source=sel.folder, uids=uids, target=target)
            await s.db(store.folder_expunge, account=s.account, folder=sel.folder, uids=uids, only_deleted=False)
        else:
            pairs = await s.db(service, account=s.account, source=sel.folder, uids=uids, target=target) \
                if uids else []
    except store.QuotaExceeded as exc:
        raise no(str(exc), "OVERQUOTA") from None
    code = ""
    if pairs:
        code = (f"[COPYUID {target.uidvalidity} {uid_set_text([p[0] for p in pairs])} "
                f"{uid_set_text([p[1] for p in pairs])}] ")
    if move:
        if code:
            s.untagged(f"OK {code}moved")
        s._send_expunges(uids)
        await s.sync(allow_expunge=True)
        await s.finish(c.tag, "OK", f"{c.name} completed")
        return
    if target.pk == sel.folder.pk:
        await s.sync(allow_expunge=False)
    await s.finish(c.tag, "OK", f"{code}{c.name} completed")


async def cmd_copy(s: Session, c: Command) -> None:
    await _copy(s, c, move=False)


async def cmd_move(s: Session, c: Command) -> None:
    await _copy(s, c, move=True)


_STORE_RE = re.compile(r"^([+-]?)FLAGS(\.SILENT)?$", re.IGNORECASE)


async def cmd_store(s: Session, c: Command) -> None:
    args = list(c.args)
    if len(args) < 3:
        raise bad("STORE needs a message set, an item and flags")
    sel = s.require_selected()
    assert s.account is not None
    uids = _target_uids(s, c, args[0])
    unchanged_since = None
    if isinstance(args[1], list):
        mods = args.pop(1)
        assert isinstance(mods, list)
        if len(mods) != 2 or not isinstance(mods[0], Atom) or mods[0].upper() != "UNCHANGEDSINCE":
            raise bad("unknown STORE modifier")
        unchanged_since = number(mods[1])
        s.enabled.add("CONDSTORE")
    item = args[1]
    match = _STORE_RE.match(item) if isinstance(item, Atom) else None
    if match is None or len(args) < 3:
        raise bad("invalid STORE item")
    flags = flag_list(args[2] if len(args) == 3 else args[2:])  # type: ignore[arg-type]
    if sel.readonly:
        raise no("mailbox is read-only", "READ-ONLY")
    mode = {"": "set", "+": "add", "-": "remove"}[match.group(1)]
    silent = bool(match.group(2))
    result = await s.db(store.flags_store, account=s.account, folder=sel.folder, uids=uids, mode=mode,
                        flags=flags, unchanged_since=unchanged_since) if uids else store.FlagsResult()
    condstore = "CONDSTORE" in s.enabled
    changed = set(result.changed)
    if result.changed:
        s.own_change(sel, result.entries[result.changed[0]][1])
    for uid in sorted(result.entries):
        flags_now, modseq = result.entries[uid]
        if uid in changed:
            sel.reported[uid] = modseq
            if len(sel.reported) > REPORTED_MEMORY:
                sel.reported.clear()
        if uid in result.failed:
            continue
        seq = sel.seq_of(uid)
        if seq is None:
            continue
        if silent and not (condstore and uid in changed):
            continue
        parts = []
        if c.name.startswith("UID "):
            parts.append(f"UID {uid}")
        if not silent:
            parts.append("FLAGS " + s._flags_with_recent(sel, uid, flags_now))
        if condstore:
            parts.append(f"MODSEQ ({modseq})")
        s.untagged(f"{seq} FETCH ({' '.join(parts)})")
    await s.sync_if_notified(allow_expunge=c.name.startswith("UID "))
    code = ""
    if result.failed:
        failed = result.failed if c.name.startswith("UID ") else [sel.seq_of(u) or 0 for u in result.failed]
        code = f"[MODIFIED {uid_set_text(sorted(failed))}] "
    await s.finish(c.tag, "OK", f"{code}{c.name} completed")


# --- FETCH ------------------------------------------------------------------------------------

def _section_node(structure: dict[str, Any], section: str) -> dict[str, Any] | None:
    if not section:
        return structure
    for path, node in iter_nodes(structure):
        if path == section:
            return node
    return None


def _fetch_body(item: FetchItem, raw: bytes, structure: dict[str, Any]) -> bytes | None:
    if item.name in ("BINARY", "BINARY.SIZE"):
        if not item.section:
            return raw
        node = _section_node(structure, item.section)
        if node is None or "parts" in node:
            return None
        encoding = (node.get("encoding") or "7bit").lower()
        if encoding not in ("7bit", "8bit", "binary", "base64", "quoted-printable"):
            raise no("unknown content transfer encoding", "UNKNOWN-CTE")
        return decoded_part(raw, node)
    return section_bytes(raw, structure, item.section)


def _partial(data: bytes, item: FetchItem) -> bytes:
    if item.partial is None:
        return data
    start, count = item.partial
    return data[start : start + count]


# Formatted ENVELOPEs by message id, for every session of the process (on the event loop
# only): a message's stored envelope never changes, and clients fetch the same ones again and
# again (every resync of a message list). Bounded by emptying it when full.
_ENVELOPES: dict[int, bytes] = {}
ENVELOPE_CACHE_SIZE = 20_000


def _envelope(message_id: int, env: Any) -> bytes:
    cached = _ENVELOPES.get(message_id)
    if cached is not None:
        return cached
    text = b"ENVELOPE " + fmt.envelope(env or [])
    if env:  # a row stored without metadata and fetched without its body has none yet
        if len(_ENVELOPES) >= ENVELOPE_CACHE_SIZE:
            _ENVELOPES.clear()
        _ENVELOPES[message_id] = text
    return text


def _format_fetch(s: Session, sel: Selected, row: dict[str, Any], items: list[FetchItem], uid_cmd: bool,
                  extra_flags: bool) -> bytes:
    parts: list[bytes] = []
    names = {i.name for i in items}
    structure = row.get("message__bodystructure")
    env = row.get("message__envelope")
    raw: bytes | None = row.get("raw")
    if raw is not None and not structure:
        parsed = parse_message(raw)  # rows stored before the MIME parser landed lack the metadata
        structure, env = parsed.bodystructure, env or parsed.envelope
    if uid_cmd and "UID" not in names:
        parts.append(b"UID %d" % row["uid"])
    for item in items:
        name = item.name
        if name == "UID":
            parts.append(b"UID %d" % row["uid"])
        elif name == "FLAGS":
            parts.append(b"FLAGS " + s._flags_with_recent(sel, row["uid"], row["flags"]).encode())
        elif name == "INTERNALDATE":
            parts.append(b"INTERNALDATE " + fmt.internal_date(row["received_at"], row["message__received_tz"]))
        elif name == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % row["message__size"])
        elif name == "MODSEQ":
            parts.append(b"MODSEQ (%d)" % row["modseq"])
        elif name == "ENVELOPE":
            parts.append(_envelope(row["message_id"], env))
        elif name == "BODYSTRUCTURE":
            parts.append(b"BODYSTRUCTURE " + fmt.bodystructure(structure or {}, extended=True))
        elif name == "BODY" and not item.has_section:
            parts.append(b"BODY " + fmt.bodystructure(structure or {}, extended=False))
        elif name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
            assert raw is not None
            section = {"RFC822": "", "RFC822.HEADER": "HEADER", "RFC822.TEXT": "TEXT"}[name]
            data = section_bytes(raw, structure or {}, section) if structure else (
                raw if not section else raw[: row["message__header_size"]] if section == "HEADER"
                else raw[row["message__header_size"]:])
            parts.append(name.encode() + b" " + fmt.literal(data or b""))
        else:
            assert raw is not None
            data = _fetch_body(item, raw, structure or {})
            label = item.label().encode()
            if name == "BINARY.SIZE":
                parts.append(label + (b" %d" % len(data) if data is not None else b" NIL"))
            elif data is None:
                parts.append(label + b" NIL")
            else:
                data = _partial(data, item)
                if name == "BINARY" and b"\0" in data:
                    parts.append(label + b" " + fmt.literal8(data))
                else:
                    parts.append(label + b" " + fmt.literal(data))
    if extra_flags and "FLAGS" not in names:
        parts.append(b"FLAGS " + s._flags_with_recent(sel, row["uid"], row["flags"]).encode())
    if "CONDSTORE" in s.enabled and "MODSEQ" not in names:
        parts.append(b"MODSEQ (%d)" % row["modseq"])
    seq = sel.seq_of(row["uid"]) or 0
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"


async def cmd_fetch(s: Session, c: Command) -> None:
    if len(c.args) not in (2, 3):
        raise bad("FETCH needs a message set and items")
    sel = s.require_selected()
    assert s.account is not None
    uid_cmd = c.name.startswith("UID ")
    uids = _target_uids(s, c, c.args[0])
    items = fetch_items(c.args[1])
    changed_since = None
    vanished = False
    if len(c.args) == 3:
        mods = c.args[2]
        if not isinstance(mods, list) or not mods:
            raise bad("invalid FETCH modifiers")
        i = 0
        while i < len(mods):
            word = astring(mods[i]).upper()
            if word == "CHANGEDSINCE" and i + 1 < len(mods):
                changed_since = number(mods[i + 1])
                s.enabled.add("CONDSTORE")
                i += 2
            elif word == "VANISHED" and uid_cmd and "QRESYNC" in s.enabled:
                vanished = True
                i += 1
            else:
                raise bad("unknown FETCH modifier")
        if vanished and changed_since is None:
            raise bad("VANISHED needs CHANGEDSINCE")
    names = {i.name for i in items}
    need_body = bool(names & {"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE"}) or any(
        i.has_section for i in items)
    need_structure = need_body or bool(names & {"BODYSTRUCTURE", "BODY"})
    need_envelope = "ENVELOPE" in names
    sets_seen = any((i.name in ("BODY", "BINARY") and i.has_section and not i.peek) or i.name in (
        "RFC822", "RFC822.TEXT") for i in items)
    if vanished and changed_since is not None:
        await _vanished_earlier(s, sel, changed_since, sequence_set(c.args[0]).resolve(sel.uid_next))
    uids = [u for u in uids if u not in sel.pending_expunge]
    seen_changed: set[int] = set()
    if sets_seen and not sel.readonly and uids:
        result = await s.db(store.flags_store, account=s.account, folder=sel.folder, uids=uids, mode="add",
                            flags=["\\Seen"])
        seen_changed = set(result.changed)
        for uid in seen_changed:
            sel.reported[uid] = result.entries[uid][1]
        if result.changed:
            s.own_change(sel, result.entries[result.changed[0]][1])
    for start in range(0, len(uids), FETCH_META_BATCH):
        chunk = uids[start : start + FETCH_META_BATCH]
        # One message's bytes come with its row (one round trip); more are loaded in groups.
        preloaded = need_body and len(chunk) == 1
        rows = await s.db(selectors.fetch_rows, sel.folder.pk, chunk, structure=need_structure,
                          envelope=need_envelope, body=preloaded)
        if changed_since is not None:
            rows = [r for r in rows if r["modseq"] > changed_since]
        # Message bytes are loaded a few megabytes at a time and written out before the next.
        group: list[dict[str, Any]] = []
        group_size = 0
        for index, row in enumerate(rows):
            if need_body:
                group.append(row)
                group_size += row["message__size"]
                if group_size < FETCH_BODY_BYTES and index + 1 < len(rows):
                    continue
                if not preloaded:
                    await s.db(selectors.blobs_load, group)
            else:
                group = [row]
            for item_row in group:
                s.send(_format_fetch(s, sel, item_row, items, uid_cmd, item_row["uid"] in seen_changed))
                item_row.pop("raw", None)
            group, group_size = [], 0
            if need_body or len(s.out) >= FETCH_META_BATCH:
                await s.flush()
    await s.sync_if_notified(allow_expunge=uid_cmd)
    await s.finish(c.tag, "OK", f"{c.name} completed")


# --- SEARCH -----------------------------------------------------------------------------------

async def cmd_search(s: Session, c: Command) -> None:
    sel = s.require_selected()
    uid_cmd = c.name.startswith("UID ")
    args = list(c.args)
    esearch: list[str] | None = None
    if len(args) >= 2 and isinstance(args[0], Atom) and args[0].upper() == "RETURN":
        if not isinstance(args[1], list):
            raise bad("RETURN needs a list")
        esearch = [astring(t).upper() for t in args[1]] or ["ALL"]
        if any(o not in ("MIN", "MAX", "ALL", "COUNT", "SAVE") for o in esearch):
            raise bad("unknown RETURN option")
        args = args[2:]
    if esearch is None and s.rev2:
        esearch = ["ALL"]  # RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH
    charset, key = search_program(args)
    if charset is not None and charset not in ("UTF-8", "US-ASCII"):
        raise no("unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    s.check_search_keys(key)
    compiler = selectors.SearchCompiler(sel.folder.pk, sel.seq_ranges_as_uids, sel.uid_ranges, sel.recent)
    save = esearch is not None and "SAVE" in esearch
    if save:
        sel.saved = []  # a failing SEARCH leaves "$" empty (RFC 5182 §2.1)
    matches = await s.db(selectors.search_uids, sel.folder.pk, key, compiler, max_uid=sel.uid_next)
    known = [(u, m) for u, m in matches if sel.seq_of(u) is not None]
    if save and esearch is not None:
        found = [u for u, _ in known]
        # RFC 5182 §2.4: with MIN and/or MAX (and neither ALL nor COUNT) only those are saved.
        if found and ("MIN" in esearch or "MAX" in esearch) and not ({"ALL", "COUNT"} & set(esearch)):
            picked = ({found[0]} if "MIN" in esearch else set()) | ({found[-1]} if "MAX" in esearch else set())
            found = sorted(picked)
        sel.saved = found
        esearch = [o for o in esearch if o != "SAVE"]
    numbers = [u for u, _ in known] if uid_cmd else [sel.seq_of(u) or 0 for u, _ in known]
    modseq_used = search_uses(key, "MODSEQ")
    if modseq_used:
        s.enabled.add("CONDSTORE")
    highest = max((m for _, m in known), default=0)
    if esearch == []:
        pass  # RETURN (SAVE) alone: no untagged result
    elif esearch is None:
        text = "SEARCH" + "".join(f" {n}" for n in numbers)
        if modseq_used and numbers:
            text += f" (MODSEQ {highest})"
        s.untagged(text)
    else:
        parts = [f'(TAG "{c.tag}")']
        if uid_cmd:
            parts.append("UID")
        if numbers:
            if "MIN" in esearch:
                parts.append(f"MIN {min(numbers)}")
            if "MAX" in esearch:
                parts.append(f"MAX {max(numbers)}")
            if "ALL" in esearch:
                parts.append(f"ALL {uid_set_text(sorted(numbers))}")
        if "COUNT" in esearch:
            parts.append(f"COUNT {len(numbers)}")
        if modseq_used and numbers:
            parts.append(f"MODSEQ {highest}")
        s.untagged("ESEARCH " + " ".join(parts))
    await s.sync_if_notified(allow_expunge=uid_cmd)
    await s.finish(c.tag, "OK", f"{c.name} completed")


async def _matching_rows(s: Session, sel: Selected, args: list[Token]) -> list[dict[str, Any]]:
    """Rows for SORT/THREAD: charset then search keys, as SEARCH."""
    if not args:
        raise bad("missing charset")
    charset = astring(args[0]).upper()
    if charset not in ("UTF-8", "US-ASCII"):
        raise no("unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    _, key = search_program(args[1:])
    s.check_search_keys(key)
    compiler = selectors.SearchCompiler(sel.folder.pk, sel.seq_ranges_as_uids, sel.uid_ranges, sel.recent)
    matches = await s.db(selectors.search_uids, sel.folder.pk, key, compiler, max_uid=sel.uid_next)
    uids = [u for u, _ in matches if sel.seq_of(u) is not None]
    rows = await s.db(selectors.ordering_rows, sel.folder.pk, uids) if uids else []
    for row in rows:
        row["seq"] = sel.seq_of(row["uid"])
    return rows


async def cmd_sort(s: Session, c: Command) -> None:
    sel = s.require_selected()
    uid_cmd = c.name.startswith("UID ")
    if len(c.args) < 3 or not isinstance(c.args[0], list) or not c.args[0]:
        raise bad("SORT needs criteria, a charset and search keys")
    criteria: list[tuple[str, bool]] = []
    reverse = False
    for token in c.args[0]:
        word = astring(token).upper()
        if word == "REVERSE" and not reverse:
            reverse = True
            continue
        if word not in ordering.SORT_KEYS:
            raise bad("unknown sort criterion")
        criteria.append((word, reverse))
        reverse = False
    if reverse or not criteria:
        raise bad("REVERSE must precede a sort key")
    rows = await _matching_rows(s, sel, list(c.args[1:]))
    ordered = ordering.sort_rows(rows, criteria)
    s.untagged("SORT" + "".join(f" {r['uid'] if uid_cmd else r['seq']}" for r in ordered))
    await s.sync_if_notified(allow_expunge=uid_cmd)
    await s.finish(c.tag, "OK", f"{c.name} completed")


async def cmd_thread(s: Session, c: Command) -> None:
    sel = s.require_selected()
    uid_cmd = c.name.startswith("UID ")
    if len(c.args) < 3:
        raise bad("THREAD needs an algorithm, a charset and search keys")
    algorithm = astring(c.args[0]).upper()
    if algorithm not in ("REFERENCES", "ORDEREDSUBJECT"):
        raise bad("unknown threading algorithm")
    rows = await _matching_rows(s, sel, list(c.args[1:]))
    if algorithm == "REFERENCES":
        roots = ordering.thread_references(rows)
    else:
        roots = ordering.thread_ordered_subject(rows)
    s.untagged("THREAD " + ordering.format_threads(roots, lambda r: r["uid"] if uid_cmd else r["seq"]))
    await s.sync_if_notified(allow_expunge=uid_cmd)
    await s.finish(c.tag, "OK", f"{c.name} completed")


# ==== dispatch table ============================================================================

_ANY = (State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED)
_AUTH = (State.AUTHENTICATED, State.SELECTED)
_SEL = (State.SELECTED,)

_COMMANDS: list[tuple[tuple[State, ...], str, Handler]] = [
    (_ANY, "CAPABILITY", cmd_capability),
    (_ANY, "NOOP", cmd_noop),
    (_ANY, "LOGOUT", cmd_logout),
    (_ANY, "ID", cmd_id),
    ((State.NOT_AUTHENTICATED,), "STARTTLS", cmd_starttls),
    ((State.NOT_AUTHENTICATED,), "LOGIN", cmd_login),
    ((State.NOT_AUTHENTICATED,), "AUTHENTICATE", cmd_authenticate),
    # RFC 5161 §3.1 and RFC 9051 §6.3.1: only in the authenticated state, before a SELECT.
    ((State.AUTHENTICATED,), "ENABLE", cmd_enable),
    (_AUTH, "NAMESPACE", cmd_namespace),
    (_AUTH, "COMPRESS", cmd_compress),
    (_AUTH, "UNAUTHENTICATE", cmd_unauthenticate),
    (_AUTH, "SELECT", cmd_select),
    (_AUTH, "EXAMINE", cmd_examine),
    (_AUTH, "CREATE", cmd_create),
    (_AUTH, "DELETE", cmd_delete),
    (_AUTH, "RENAME", cmd_rename),
    (_AUTH, "SUBSCRIBE", cmd_subscribe),
    (_AUTH, "UNSUBSCRIBE", cmd_unsubscribe),
    (_AUTH, "LIST", cmd_list),
    (_AUTH, "LSUB", cmd_lsub),
    (_AUTH, "STATUS", cmd_status),
    (_AUTH, "APPEND", cmd_append),
    (_AUTH, "IDLE", cmd_idle),
    (_AUTH, "GETQUOTA", cmd_getquota),
    (_AUTH, "GETQUOTAROOT", cmd_getquotaroot),
    (_AUTH, "SETQUOTA", cmd_setquota),
    (_SEL, "CHECK", cmd_check),
    (_SEL, "CLOSE", cmd_close),
    (_SEL, "UNSELECT", cmd_unselect),
    (_SEL, "EXPUNGE", cmd_expunge),
    (_SEL, "UID EXPUNGE", cmd_uid_expunge),
    (_SEL, "SEARCH", cmd_search),
    (_SEL, "UID SEARCH", cmd_search),
    (_SEL, "SORT", cmd_sort),
    (_SEL, "UID SORT", cmd_sort),
    (_SEL, "THREAD", cmd_thread),
    (_SEL, "UID THREAD", cmd_thread),
    (_SEL, "FETCH", cmd_fetch),
    (_SEL, "UID FETCH", cmd_fetch),
    (_SEL, "STORE", cmd_store),
    (_SEL, "UID STORE", cmd_store),
    (_SEL, "COPY", cmd_copy),
    (_SEL, "UID COPY", cmd_copy),
    (_SEL, "MOVE", cmd_move),
    (_SEL, "UID MOVE", cmd_move),
]

DISPATCH: dict[tuple[State, str], Handler] = {
    (state, name): handler for states, name, handler in _COMMANDS for state in states
}
