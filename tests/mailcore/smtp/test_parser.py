"""Pure parsing helpers: paths, parameters, data checks, enhanced codes."""

from __future__ import annotations

import pytest

from mailcore.smtp.parser import (
    PathError,
    count_received,
    find_bare_line_ending,
    is_relay_spelling,
    only_crlf_line_endings,
    parse_path_argument,
)
from mailcore.smtp.replies import with_enhanced


def test_path_with_parameters() -> None:
    path = parse_path_argument("FROM:<carol@example.org> SIZE=100 body=8bitmime SMTPUTF8", "FROM")
    assert path.address == "carol@example.org"
    assert path.params == {"SIZE": "100", "BODY": "8bitmime", "SMTPUTF8": None}


def test_null_path_bare_address_and_space_after_colon() -> None:
    assert parse_path_argument("FROM:<>", "FROM").address == ""
    assert parse_path_argument("to: alice@a.test", "TO").address == "alice@a.test"


def test_source_route_is_dropped() -> None:
    path = parse_path_argument("TO:<@relay.test,@other.test:bob@remote.test>", "TO")
    assert (path.address, path.had_source_route) == ("bob@remote.test", True)


def test_quoted_local_part_with_brackets_is_kept_whole() -> None:
    assert parse_path_argument('TO:<"a>b"@a.test>', "TO").address == '"a>b"@a.test'


@pytest.mark.parametrize(
    "arg",
    ["FROM:carol", "FROM:<carol@example.org", "FROM:<a@b.test>junk", "FROM:<a@b\r.test>", "FROM:<a@b.test> X=",
     "FROM:<a@b.test> SIZE=1 SIZE=2", "TO:<a@b.test>", "FROM:<a<b@c.test>"],
)
def test_bad_paths_are_refused(arg: str) -> None:
    with pytest.raises(PathError):
        parse_path_argument(arg, "FROM")


@pytest.mark.parametrize(
    ("address", "relay"),
    [("a%b@c.test", True), ("b!a@c.test", True), ('"a@b"@c.test', True), ("a@[1.2.3.4]", True),
     ("a@c.test.", True), ("a.b+tag@c.test", False)],
)
def test_relay_spellings(address: str, relay: bool) -> None:
    assert is_relay_spelling(address) is relay


@pytest.mark.parametrize("data", [b"a\nb", b"a\rb", b"a\r\r\n", b"\n", b"a\r\n\n"])
def test_bare_line_endings_are_found(data: bytes) -> None:
    assert find_bare_line_ending(data) >= 0


def test_crlf_only_data_has_no_bare_line_ending() -> None:
    assert find_bare_line_ending(b"a\r\nb\r\n\r\n") == -1


_LINE_ENDING_SAMPLES = [
    b"", b"a", b"a\r\n", b"a\r\nb\r\n\r\n", b"\r\n.\r\n", b"a\nb", b"a\rb", b"a\r\r\n", b"\n", b"\r",
    b"a\r\n\n", b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\r\n", b"\n\r", b"\r\n\r", b"\n\r\n",
    b"x\r\n.\nMAIL FROM:<a@b>\r\n", b"\r\n\r\n\r", b"..\r\n.\r\n",
]


@pytest.mark.parametrize("data", _LINE_ENDING_SAMPLES)
def test_crlf_counts_agree_with_the_bare_line_ending_search(data: bytes) -> None:
    assert only_crlf_line_endings(data, len(data.split(b"\r\n")) - 1) == (find_bare_line_ending(data) < 0)


def test_crlf_counts_agree_on_random_data() -> None:
    import random

    rng = random.Random(3)
    for _ in range(3000):
        data = bytes(rng.choice(b"\r\n.a") for _ in range(rng.randrange(0, 12)))
        assert only_crlf_line_endings(data, len(data.split(b"\r\n")) - 1) == (find_bare_line_ending(data) < 0), data


def test_received_headers_are_counted_in_the_header_section_only() -> None:
    raw = b"Received: a\r\nreceived: b\r\n c\r\nSubject: x\r\n\r\nReceived: body\r\n"
    assert count_received(raw) == 2


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(b"250 OK", b"250 2.0.0 OK"), (b"250 2.1.5 Fine", b"250 2.1.5 Fine"), (b"500 Error: bad", b"500 5.5.2 Error: bad"),
     (b"354 End data", b"354 End data"), (b"334 VXNlcm5hbWU6", b"334 VXNlcm5hbWU6"), (b"221 Bye", b"221 2.0.0 Bye"),
     (b"502 5.5.1 Too many", b"502 5.5.1 Too many"), (b"554", b"554 5.0.0")],
)
def test_default_enhanced_codes(reply: bytes, expected: bytes) -> None:
    assert with_enhanced(reply) == expected
