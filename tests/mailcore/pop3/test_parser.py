"""The command parser, fed bytes (no database, no sockets)."""

from __future__ import annotations

import pytest

from mailcore.pop3.parser import (
    MAX_COMMAND_LINE,
    Command,
    ParseError,
    parse_command,
    parse_line_count,
    parse_message_number,
)


@pytest.mark.parametrize(("line", "expected"), [
    (b"STAT\r\n", Command("STAT")),
    (b"stat\r\n", Command("STAT")),
    (b"LiSt 3\r\n", Command("LIST", ["3"])),
    (b"TOP 1 10\n", Command("TOP", ["1", "10"])),
    (b"USER alice@a.test\r\n", Command("USER", ["alice@a.test"])),
    (b"PASS correct horse  battery staple \r\n", Command("PASS", ["correct horse  battery staple "])),
    (b"PASS\r\n", Command("PASS", [])),
    (b"AUTH PLAIN " + b"A" * 1000 + b"\r\n", Command("AUTH", ["PLAIN", "A" * 1000])),
    (b"CAPA", Command("CAPA")),
])
def test_commands_parse_into_upper_case_names_and_arguments(line: bytes, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(("line", "message"), [
    (b"\r\n", "unknown command"),
    (b"ST\r\n", "unknown command"),
    (b"STATS\r\n", "unknown command"),
    (b"ST4T\r\n", "unknown command"),
    (b"LIST  1\r\n", "single spaces"),
    (b"LIST 1 \r\n", "single spaces"),
    (b"RETR 1 2 3 4 5\r\n", "too many arguments"),
    (b"APOP " + b"x" * 41 + b" digest\r\n", "argument too long"),
    (b"USER " + b"x" * 251 + b"\r\n", "too long"),
    (b"NOOP " + b"x" * MAX_COMMAND_LINE + b"\r\n", "too long"),
    (b"AUTH PLAIN " + b"A" * 3000 + b"\r\n", "too long"),
    (b"USER a\x00b\r\n", "control characters"),
    (b"USER a\tb\r\n", "control characters"),
    (b"USER a\rb\r\n", "control characters"),
    (b"USER \xc3\x28\r\n", "UTF-8"),
    (b"\xd0\xa1TAT\r\n", "unknown command"),
])
def test_malformed_lines_raise_parse_error(line: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_command(line)


def test_user_may_name_an_address_longer_than_40_characters() -> None:
    address = "firstname.lastname@engineering.example-company.example"
    assert parse_command(f"USER {address}\r\n".encode()).args == [address]


def test_a_line_of_exactly_255_octets_with_crlf_is_accepted() -> None:
    line = b"USER " + b"x" * 40
    assert parse_command(line + b"\r\n").args == ["x" * 40]
    assert len(b"NOOP " + b"x" * 248 + b"\r\n") == MAX_COMMAND_LINE
    with pytest.raises(ParseError):  # argument too long, but not line too long
        parse_command(b"NOOP " + b"x" * 248 + b"\r\n")


@pytest.mark.parametrize(("text", "number"), [
    ("1", 1), ("42", 42), ("0042", 42), ("0", None), ("-1", None), ("+1", None), ("1.0", None),
    ("", None), ("abc", None), ("\u0663", None), ("99999999999", None),
])
def test_message_numbers_are_positive_decimals(text: str, number: int | None) -> None:
    assert parse_message_number(text) == number


@pytest.mark.parametrize(("text", "count"), [("0", 0), ("10", 10), ("-1", None), ("x", None)])
def test_top_line_counts_are_non_negative(text: str, count: int | None) -> None:
    assert parse_line_count(text) == count
