from __future__ import annotations

from datetime import UTC, date, timedelta

import pytest

from mailcore.imap import utf7
from mailcore.imap.parser import (
    STAR,
    Atom,
    ParseError,
    String,
    fetch_items,
    literal_at_end,
    parse_command,
    parse_date_time,
    search_program,
    sequence_set,
)


def test_command_with_quoted_string_literal_and_list_is_tokenized() -> None:
    cmd = parse_command(b'a1 LOGIN "al\\"ice" {3}\r\npwd\r\n')
    assert cmd.tag == "a1" and cmd.name == "LOGIN"
    assert cmd.args == [b'al"ice', b"pwd"]
    assert isinstance(cmd.args[1], String) and cmd.args[1].literal


def test_non_synchronizing_literal_is_read() -> None:
    cmd = parse_command(b"t APPEND INBOX (\\Seen) {5+}\r\nhello\r\n")
    assert cmd.args[1] == [Atom("\\Seen")] and cmd.args[2] == b"hello"
    assert literal_at_end(b"t APPEND INBOX {5+}\r\n") == (5, True)
    assert literal_at_end(b"t APPEND INBOX {5}\r\n") == (5, False)


def test_fetch_section_with_spaces_is_one_atom() -> None:
    cmd = parse_command(b"a FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)\r\n")
    items = fetch_items(cmd.args[1])
    assert [i.name for i in items] == ["UID", "BODY"]
    assert items[1].peek and items[1].partial == (0, 100)
    assert items[1].label() == "BODY[HEADER.FIELDS (From To)]<0>"  # echoed as asked
    assert items[1].section == "HEADER.FIELDS (FROM TO)"


@pytest.mark.parametrize("bad", [b"a FETCH 1 (BODY[0])\r\n", b"a FETCH 1 (BODY[HEADER.FIELDS])\r\n",
                                 b"a FETCH 1 (NONSENSE)\r\n"])
def test_invalid_fetch_items_are_rejected(bad: bytes) -> None:
    with pytest.raises(ParseError):
        fetch_items(parse_command(bad).args[1])


@pytest.mark.parametrize("bad", [b"a\r\n", b"a NOOP\n", b'a LOGIN "x\r\n', b"a LOGIN (a\r\n", b"+ NOOP\r\n",
                                 b"a LOGIN {10}\r\nshort\r\n", b"a NOOP  \r\n"])
def test_malformed_commands_raise(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(bad)


def test_sequence_sets_with_star_and_reversed_ranges() -> None:
    s = sequence_set(Atom("1,3:5,*,9:7"))
    assert s.ranges == ((1, 1), (3, 5), (STAR, STAR), (9, 7))
    assert s.resolve(10) == [(1, 1), (3, 5), (10, 10), (7, 9)]
    assert sequence_set(Atom("$")).saved
    for bad in ("0", "1:0", "a", "1,,2", ""):
        with pytest.raises(ParseError):
            sequence_set(Atom(bad))


def test_search_program_nests_or_not_and_lists() -> None:
    cmd = parse_command(b'a SEARCH CHARSET UTF-8 OR FROM "bob" (NOT SEEN SINCE 1-Feb-2024) UID 1:5\r\n')
    charset, key = search_program(cmd.args)
    assert charset == "UTF-8"
    assert key.op == "AND"
    first, second = key.args
    assert first.op == "OR"  # type: ignore[attr-defined]
    assert first.args[1].op == "AND"  # type: ignore[attr-defined]
    assert first.args[1].args[1].args == (date(2024, 2, 1),)  # type: ignore[attr-defined]
    assert second.op == "UIDSET"  # type: ignore[attr-defined]


def test_date_time_is_parsed_with_its_zone() -> None:
    value = parse_date_time(String(b" 7-Feb-2024 10:00:00 +0200"))
    assert (value.hour, value.day, value.utcoffset()) == (10, 7, timedelta(hours=2))
    assert value.astimezone(UTC).hour == 8


def test_modified_utf7_round_trips() -> None:
    for name in ["Entw\u00fcrfe", "\u53f0\u5317", "A&B", "~peter/mail/\u65e5\u672c\u8a9e"]:
        assert utf7.decode(utf7.encode(name)) == name
    assert utf7.encode("A&B") == "A&-B"
    assert utf7.encode("Entw\u00fcrfe") == "Entw&APw-rfe"
    with pytest.raises(utf7.Utf7Error):
        utf7.decode("&Jjo!")
