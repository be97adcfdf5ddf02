"""IMAP command parsing (RFC 3501 §9, RFC 9051 §9): bytes in, commands out, no I/O.

The server hands over one complete command: its lines with every literal ``{n}`` / ``{n+}``
already followed by its ``n`` bytes. The tokenizer yields atoms, strings (quoted or literal)
and parenthesised lists; command-specific pieces (sequence sets, FETCH items, SEARCH keys,
dates) are interpreted by the helpers below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Union

MAX_LIST_DEPTH = 32
MAX_SEARCH_DEPTH = 32
MAX_TOKENS = 100_000

_LITERAL_RE = re.compile(rb"~?\{(\d{1,20})(\+?)\}\r\n")
_TAG_RE = re.compile(r"^[!#$&'+,\-./0-9:;<=>?@A-Z\[\^_`a-z|}~]+$")
_ATOM_STOP = set(b" ()\r\n")
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


class ParseError(ValueError):
    """A command that is not valid syntax; ``tag`` is known when the tag could be read."""

    def __init__(self, message: str, tag: str | None = None) -> None:
        super().__init__(message)
        self.tag = tag


class Atom(str):
    """An unquoted token (atoms, numbers, flags, sequence sets, ``BODY[...]<...>`` items)."""


class String(bytes):
    """A quoted string or a literal."""

    literal: bool = False

    @property
    def text(self) -> str:
        return self.decode("utf-8", "surrogateescape")


Token = Union[Atom, String, "list[Token]"]


@dataclass
class Command:
    tag: str
    name: str
    args: list[Token] = field(default_factory=list)


class Tokenizer:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.count = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data) or self.data.startswith(b"\r\n", self.pos) or self.data[self.pos:] == b"\n"

    def space(self) -> None:
        if self.pos < len(self.data) and self.data[self.pos] == 0x20:
            self.pos += 1
            return
        raise ParseError("expected a space")

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while not self.at_end():
            if out:
                self.space()
            out.append(self.token(0))
        return out

    def token(self, depth: int) -> Token:
        self.count += 1
        if self.count > MAX_TOKENS:
            raise ParseError("too many tokens")
        if self.pos >= len(self.data):
            raise ParseError("unexpected end of command")
        ch = self.data[self.pos]
        if ch == 0x28:  # (
            if depth >= MAX_LIST_DEPTH:
                raise ParseError("lists nested too deeply")
            self.pos += 1
            items: list[Token] = []
            while True:
                if self.pos >= len(self.data):
                    raise ParseError("unterminated list")
                if self.data[self.pos] == 0x29:  # )
                    self.pos += 1
                    return items
                if items:
                    self.space()
                items.append(self.token(depth + 1))
        if ch == 0x22:  # "
            return self.quoted()
        if ch == 0x7B or (ch == 0x7E and self.data[self.pos + 1 : self.pos + 2] == b"{"):  # { or ~{
            return self.literal()
        return self.atom()

    def quoted(self) -> String:
        self.pos += 1
        buf = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise ParseError("unterminated quoted string")
            ch = data[self.pos]
            if ch == 0x22:
                self.pos += 1
                return String(bytes(buf))
            if ch in (0x0D, 0x0A, 0x00):
                raise ParseError("CR, LF or NUL in a quoted string")
            if ch == 0x5C:  # backslash
                nxt = data[self.pos + 1 : self.pos + 2]
                if nxt not in (b"\\", b'"'):
                    raise ParseError("bad escape in a quoted string")
                buf += nxt
                self.pos += 2
                continue
            buf.append(ch)
            self.pos += 1

    def literal(self) -> String:
        match = _LITERAL_RE.match(self.data, self.pos)
        if match is None:
            raise ParseError("bad literal")
        size = int(match.group(1))
        start = match.end()
        if start + size > len(self.data):
            raise ParseError("literal shorter than announced")
        self.pos = start + size
        value = String(self.data[start : self.pos])
        value.literal = True
        return value

    def atom(self) -> Atom:
        data = self.data
        start = self.pos
        while self.pos < len(data):
            ch = data[self.pos]
            if ch == 0x5B:  # [ ... ] may hold spaces and lists (BODY[HEADER.FIELDS (A B)])
                end = data.find(b"]", self.pos)
                if end < 0:
                    raise ParseError("unterminated [")
                self.pos = end + 1
                continue
            if ch in _ATOM_STOP or ch < 0x20 or ch == 0x7F or ch == 0x22 or ch == 0x7B:
                break
            self.pos += 1
        if self.pos == start:
            raise ParseError("expected an atom")
        try:
            return Atom(data[start : self.pos].decode("ascii"))
        except UnicodeDecodeError:
            raise ParseError("8-bit characters in an atom") from None


def parse_command(data: bytes) -> Command:
    """One complete command (ending in CRLF) as tag, upper-cased name and argument tokens."""
    if not data.endswith(b"\n"):
        raise ParseError("command not terminated by CRLF")
    space = data.find(b" ")
    line_end = data.find(b"\r\n")
    if space < 0 or (0 <= line_end < space):
        tag_bytes = data[: line_end if line_end >= 0 else len(data)].strip()
        tag = tag_bytes.decode("ascii", "replace")
        raise ParseError("missing command", tag if tag and _TAG_RE.match(tag) else None)
    tag = data[:space].decode("ascii", "replace")
    if not _TAG_RE.match(tag) or "+" in tag:
        raise ParseError("invalid tag")
    tok = Tokenizer(data, space + 1)
    try:
        name_token = tok.atom()
        if not name_token.isalnum():
            raise ParseError("invalid command name")
        args: list[Token] = []
        if not tok.at_end():
            tok.space()
            args = tok.tokens()
        if not (data.endswith(b"\r\n") and tok.pos == len(data) - 2):
            raise ParseError("garbage after the command")
    except ParseError as exc:
        exc.tag = tag
        raise
    return Command(tag=tag, name=name_token.upper(), args=args)


def literal_at_end(line: bytes) -> tuple[int, bool] | None:
    """When a command line ends with a literal announcement: (size, non-synchronizing)."""
    match = re.search(rb"~?\{(\d{1,20})(\+?)\}\r\n$", line)
    if match is None:
        return None
    return int(match.group(1)), bool(match.group(2))


# --- arguments ------------------------------------------------------------------------------

def astring(token: Token) -> str:
    if isinstance(token, String):
        return token.text
    if isinstance(token, Atom):
        return str(token)
    raise ParseError("expected a string")


def nstring_or_atom(token: Token) -> str | None:
    if isinstance(token, Atom) and token.upper() == "NIL":
        return None
    return astring(token)


def number(token: Token, *, nonzero: bool = False) -> int:
    if not isinstance(token, Atom) or not token.isdigit() or len(token) > 20:
        raise ParseError("expected a number")
    value = int(token)
    if value > 2**63 - 1 or (nonzero and value == 0):
        raise ParseError("number out of range")
    return value


STAR = -1  # "*" in a sequence set: the largest number in use
SAVED = "$"


@dataclass(frozen=True)
class SequenceSet:
    """Ranges (low, high) with STAR for ``*``; or the saved search result (``$``)."""

    ranges: tuple[tuple[int, int], ...]
    saved: bool = False

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Concrete inclusive ranges, low <= high (RFC 3501: 4:2 is 2:4; * is the largest)."""
        out = []
        for low, high in self.ranges:
            lo = largest if low == STAR else low
            hi = largest if high == STAR else high
            if lo > hi:
                lo, hi = hi, lo
            out.append((lo, hi))
        return out


def sequence_set(token: Token) -> SequenceSet:
    if not isinstance(token, Atom):
        raise ParseError("expected a sequence set")
    if token == SAVED:
        return SequenceSet((), saved=True)
    ranges = []
    for part in token.split(","):
        low_text, sep, high_text = part.partition(":")
        low = _seq_number(low_text)
        high = _seq_number(high_text) if sep else low
        ranges.append((low, high))
    return SequenceSet(tuple(ranges))


def _seq_number(text: str) -> int:
    if text == "*":
        return STAR
    if not text.isdigit() or text.startswith("0") or len(text) > 10:
        raise ParseError("invalid sequence set")
    value = int(text)
    if value > 0xFFFFFFFF:
        raise ParseError("sequence number out of range")
    return value


def is_sequence_set(token: Token) -> bool:
    try:
        sequence_set(token)
    except ParseError:
        return False
    return True


def parse_date(token: Token) -> date:
    """RFC 3501 date: d-Mon-yyyy (quoted or not)."""
    text = astring(token)
    match = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", text)
    if match is None or match.group(2).upper() not in _MONTHS:
        raise ParseError("invalid date")
    try:
        return date(int(match.group(3)), _MONTHS.index(match.group(2).upper()) + 1, int(match.group(1)))
    except ValueError:
        raise ParseError("invalid date") from None


def parse_date_time(token: Token) -> datetime:
    """RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be space-padded)."""
    if not isinstance(token, String):
        raise ParseError("date-time must be quoted")
    match = re.fullmatch(r"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", token.text)
    if match is None or match.group(2).upper() not in _MONTHS:
        raise ParseError("invalid date-time")
    offset = timedelta(hours=int(match.group(8)), minutes=int(match.group(9)))
    if match.group(7) == "-":
        offset = -offset
    try:
        return datetime(
            int(match.group(3)), _MONTHS.index(match.group(2).upper()) + 1, int(match.group(1).strip()),
            int(match.group(4)), int(match.group(5)), int(match.group(6)), tzinfo=timezone(offset),
        )  # the zone is kept: INTERNALDATE is returned as given
    except ValueError:
        raise ParseError("invalid date-time") from None


_FLAG_RE = re.compile(r"^\\?[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|}~\[,/]+$")
SYSTEM_FLAGS = {"\\SEEN": "\\Seen", "\\ANSWERED": "\\Answered", "\\FLAGGED": "\\Flagged",
                "\\DELETED": "\\Deleted", "\\DRAFT": "\\Draft"}


def flag_list(token: Token, *, allow_recent: bool = False) -> list[str]:
    items = token if isinstance(token, list) else [token]
    flags: list[str] = []
    for item in items:
        if not isinstance(item, Atom) or not _FLAG_RE.match(item) or "]" in item:
            raise ParseError("invalid flag")
        if item.startswith("\\"):
            canonical = SYSTEM_FLAGS.get(item.upper())
            if canonical is None:
                if item.upper() == "\\RECENT" and allow_recent:
                    continue
                raise ParseError(f"{item} is not a flag that can be set")
            flags.append(canonical)
        else:
            flags.append(str(item))
    return flags


# --- FETCH items ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FetchItem:
    name: str  # FLAGS, UID, BODY, BINARY, BINARY.SIZE, ENVELOPE, ...
    section: str = ""  # "HEADER.FIELDS (FROM TO)", "1.2.TEXT", ...
    peek: bool = False
    partial: tuple[int, int] | None = None  # (start, count)
    has_section: bool = False
    # The section as the response names it: header field names spelt as the client sent them
    # (clients look the response item up by the name they asked for, as Dovecot answers).
    echo: str | None = None

    def label(self) -> str:
        """How the item is named in the response (RFC 3501 §7.4.2)."""
        if not self.has_section:
            return self.name
        text = f"{self.name}[{self.section if self.echo is None else self.echo}]"
        if self.partial is not None:
            text += f"<{self.partial[0]}>"
        return text


_SIMPLE_ITEMS = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID",
                 "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ"}
_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
_SECTION_ITEM_RE = re.compile(r"^(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)\[([^\]]*)\](?:<(\d+)\.(\d+)>)?$",
                              re.IGNORECASE)
_SECTION_RE = re.compile(
    r"^(?:(\d+(?:\.\d+)*)(?:\.(HEADER|HEADER\.FIELDS|HEADER\.FIELDS\.NOT|TEXT|MIME))?"
    r"|(HEADER|HEADER\.FIELDS|HEADER\.FIELDS\.NOT|TEXT))?(?: \((.*)\))?$",
    re.IGNORECASE,
)


def _normalise_section(section: str) -> tuple[str, str]:
    """(the section with field names in upper case, the section as the response echoes it)."""
    match = _SECTION_RE.match(section)
    if match is None:
        raise ParseError("invalid section")
    path, spec_after, spec_alone, fields = match.groups()
    spec = (spec_after or spec_alone or "").upper()
    if (fields is not None) != spec.startswith("HEADER.FIELDS"):
        raise ParseError("invalid section")
    if path and any(p == "0" or p.startswith("0") for p in path.split(".")):
        raise ParseError("invalid section part number")
    text = path or ""
    if spec:
        text = f"{text}.{spec}" if text else spec
    echo = text
    if fields is not None:
        names = []
        for tok in Tokenizer(fields.encode("utf-8", "surrogateescape")).tokens():
            name = astring(tok)
            if not name or not re.fullmatch(r"[!-9;-~]+", name):
                raise ParseError("invalid header field name")
            names.append(name)
        if not names:
            raise ParseError("empty header field list")
        text += " (" + " ".join(n.upper() for n in names) + ")"
        echo += " (" + " ".join(names) + ")"
    return text, echo


def fetch_item(token: Token) -> FetchItem:
    if not isinstance(token, Atom):
        raise ParseError("invalid FETCH item")
    upper = token.upper()
    if upper in _SIMPLE_ITEMS:
        return FetchItem(upper)
    match = _SECTION_ITEM_RE.match(token)
    if match is None:
        raise ParseError(f"unknown FETCH item {token[:40]}")
    name = match.group(1).upper()
    section, echo = _normalise_section(match.group(2))
    partial = None
    if match.group(3) is not None:
        count = int(match.group(4))
        if count == 0 and name != "BINARY.SIZE":
            raise ParseError("a partial range cannot be empty")
        partial = (int(match.group(3)), count)
    peek = name.endswith(".PEEK")
    base = name.removesuffix(".PEEK")
    if base.startswith("BINARY"):
        if section and not re.fullmatch(r"\d+(\.\d+)*", section):
            raise ParseError("BINARY takes only a part number")
        if base == "BINARY.SIZE" and partial is not None:
            raise ParseError("BINARY.SIZE takes no partial range")
    return FetchItem(base, section, peek, partial, True, echo if echo != section else None)


def fetch_items(token: Token) -> list[FetchItem]:
    if isinstance(token, Atom) and token.upper() in _MACROS:
        return [FetchItem(n) for n in _MACROS[token.upper()]]
    items = token if isinstance(token, list) else [token]
    if not items:
        raise ParseError("empty FETCH item list")
    return [fetch_item(t) for t in items]


# --- SEARCH keys ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchKey:
    """One search key: ``op`` (upper-case key name, or "AND"/"OR"/"NOT"/"SEQ"/"UIDSET") and its
    arguments (strings, numbers, dates, sequence sets or child keys)."""

    op: str
    args: tuple[object, ...] = ()


_NO_ARG = {"ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
           "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN"}
_STRING_ARG = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
_DATE_ARG = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_NUMBER_ARG = {"LARGER", "SMALLER", "OLDER", "YOUNGER"}


class SearchParser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def next(self) -> Token:
        if self.pos >= len(self.tokens):
            raise ParseError("missing search argument")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def keys(self) -> SearchKey:
        items = []
        while self.pos < len(self.tokens):
            items.append(self.key(0))
        if not items:
            raise ParseError("missing search key")
        return items[0] if len(items) == 1 else SearchKey("AND", tuple(items))

    def key(self, depth: int) -> SearchKey:
        if depth > MAX_SEARCH_DEPTH:
            raise ParseError("search nested too deeply")
        token = self.next()
        if isinstance(token, list):
            if not token:
                raise ParseError("empty search list")
            inner = SearchParser(token)
            items = []
            while inner.pos < len(inner.tokens):
                items.append(inner.key(depth + 1))
            return items[0] if len(items) == 1 else SearchKey("AND", tuple(items))
        if isinstance(token, String):
            raise ParseError("expected a search key")
        name = token.upper()
        if name in _NO_ARG:
            return SearchKey(name)
        if name in _STRING_ARG:
            return SearchKey(name, (astring(self.next()),))
        if name in _DATE_ARG:
            return SearchKey(name, (parse_date(self.next()),))
        if name in _NUMBER_ARG:
            return SearchKey(name, (number(self.next()),))
        if name in ("KEYWORD", "UNKEYWORD"):
            return SearchKey(name, tuple((flag_list(self.next(), allow_recent=True) or ["\\Recent"])[0:1]))
        if name == "HEADER":
            field_name = astring(self.next())
            return SearchKey(name, (field_name, astring(self.next())))
        if name == "NOT":
            return SearchKey("NOT", (self.key(depth + 1),))
        if name == "OR":
            first = self.key(depth + 1)
            return SearchKey("OR", (first, self.key(depth + 1)))
        if name == "UID":
            return SearchKey("UIDSET", (sequence_set(self.next()),))
        if name == "MODSEQ":
            value = self.next()
            if isinstance(value, String):  # entry name and type (RFC 7162 §3.1.5)
                self.next()
                value = self.next()
            return SearchKey("MODSEQ", (number(value),))
        if is_sequence_set(token):
            return SearchKey("SEQ", (sequence_set(token),))
        raise ParseError(f"unknown search key {token[:40]}")


def search_program(tokens: list[Token]) -> tuple[str | None, SearchKey]:
    """(charset, key) from SEARCH arguments after any RETURN option."""
    charset = None
    if len(tokens) >= 2 and isinstance(tokens[0], Atom) and tokens[0].upper() == "CHARSET":
        charset = astring(tokens[1]).upper()
        tokens = tokens[2:]
    return charset, SearchParser(tokens).keys()


def search_uses(key: SearchKey, op: str) -> bool:
    if key.op == op:
        return True
    return any(isinstance(a, SearchKey) and search_uses(a, op) for a in key.args)
