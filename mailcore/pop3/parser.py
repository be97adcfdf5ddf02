"""POP3 command lines: bytes in, a :class:`Command` out. No I/O.

RFC 2449 §4: keywords are 3-4 characters, case-insensitive; arguments are up to 40
characters, separated by single spaces; a command line is at most 255 octets with the CRLF.
Exceptions follow the practice of deployed servers: ``PASS`` takes the rest of the line
(passwords may contain spaces), ``USER`` may name an address longer than 40 characters, and a
SASL line (RFC 5034) may be longer than 255 octets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_COMMAND_LINE = 255  # RFC 2449 §4, CRLF included
MAX_SASL_LINE = 2048  # RFC 5034 §4: a SASL response may exceed 255 octets
MAX_ARGUMENT = 40  # RFC 2449 §4
MAX_ARGUMENTS = 4

REST_OF_LINE = frozenset({"PASS"})
# Addresses are often longer than 40 characters; USER is bounded by the line length only.
LONG_ARGUMENTS = frozenset({"AUTH", "USER"})
LONG_LINE = frozenset({"AUTH", "PASS"})


class ParseError(ValueError):
    """The line is not a POP3 command; the message is safe to send to the client."""


@dataclass(frozen=True)
class Command:
    name: str
    args: list[str] = field(default_factory=list)


def strip_line_ending(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def parse_command(line: bytes) -> Command:
    """Parse one command line (with or without its line ending)."""
    text_bytes = strip_line_ending(line)
    if any(b < 0x20 or b == 0x7F for b in text_bytes):
        raise ParseError("control characters are not allowed in commands")
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("commands must be UTF-8 text") from None
    keyword, _, rest = text.partition(" ")
    name = keyword.upper()
    if not 3 <= len(name) <= 4 or not name.isascii() or not name.isalpha():
        raise ParseError("unknown command")
    limit = MAX_SASL_LINE if name in LONG_LINE else MAX_COMMAND_LINE
    if len(text_bytes) + 2 > limit:
        raise ParseError("command line too long")
    if name in REST_OF_LINE:
        return Command(name, [rest] if rest else [])
    args = rest.split(" ") if rest else []
    if any(a == "" for a in args):
        raise ParseError("arguments are separated by single spaces")
    if len(args) > MAX_ARGUMENTS:
        raise ParseError("too many arguments")
    if name not in LONG_ARGUMENTS and any(len(a) > MAX_ARGUMENT for a in args):
        raise ParseError("argument too long")
    return Command(name, args)


def parse_message_number(text: str) -> int | None:
    """A positive decimal message number (RFC 1939 §5), or None if it is not one."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if number > 0 else None


def parse_line_count(text: str) -> int | None:
    """The non-negative line count of TOP, or None."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    return int(text)
