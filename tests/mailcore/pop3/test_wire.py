"""Wire form of messages: exact sizes, CRLF, byte-stuffing, TOP cuts (pure)."""

from __future__ import annotations

import random

import pytest

from mailcore.pop3.wire import WireEncoder, encode_message, top_cut, wire_size

SAMPLES = [
    b"",
    b"a",
    b".",
    b"\n",
    b"\r",
    b"\r\n",
    b".\r\n",
    b"Subject: x\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n",
    b"Subject: x\n\n.bare\nlf\n",
    b"mixed\r\nlines\nand a \r bare cr\r\r\n.\n",
    b"no final newline",
    b"\r\n.\r\n.\r\n",
]


def unstuff(wire: bytes) -> bytes:
    """What a client gets back: strip the terminator and undo the stuffing."""
    assert wire.endswith(b".\r\n")
    body = wire[:-3]
    lines = body.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@pytest.mark.parametrize("raw", SAMPLES)
def test_size_is_that_of_the_crlf_form_before_stuffing(raw: bytes) -> None:
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert wire_size(raw) == len(crlf)
    sent = unstuff(encode_message(raw))
    # A message without a final line ending gets one, outside the counted size.
    assert sent == (crlf if crlf.endswith(b"\r\n") or not crlf else crlf + b"\r\n")


@pytest.mark.parametrize("raw", SAMPLES)
def test_no_line_of_the_encoded_message_is_a_lone_dot_but_the_last(raw: bytes) -> None:
    wire = encode_message(raw)
    lines = wire.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    assert b"." not in lines[:-2]
    assert all(b"\n" not in line for line in lines)  # bare CRs are sent, and counted, as they are


def test_chunk_boundaries_do_not_change_the_encoding() -> None:
    rng = random.Random(1939)
    alphabet = [b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n."]
    for _ in range(300):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        whole = encode_message(raw)
        encoder = WireEncoder()
        out = b""
        position = 0
        while position < len(raw):
            step = rng.randint(1, 4)
            out += encoder.feed(raw[position:position + step])
            position += step
        out += encoder.finish()
        assert out == whole, raw


def test_top_cut_takes_the_header_blank_line_and_n_body_lines() -> None:
    raw = b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\nthree\r\n"
    assert top_cut(raw, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert top_cut(raw, 2) == b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\n"
    assert top_cut(raw, 3) == raw
    assert top_cut(raw, 4) is None  # needs more, or the whole message
    assert top_cut(b"A: 1\nB: 2\n\nbody\n", 1) == b"A: 1\nB: 2\n\nbody\n"
    assert top_cut(b"A: 1\r\nB: 2", 0) is None  # no blank line yet
