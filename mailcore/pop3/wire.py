"""A stored message as POP3 sends it: CRLF line endings, byte-stuffed, ended by ``CRLF.CRLF``.

Pure functions, no I/O. The stored blob is kept verbatim; a bare LF in it is sent as CRLF
(RFC 1939 §3 wants CRLF), and the octet count of LIST/STAT is that of the CRLF form before
byte-stuffing (RFC 1939 §5 "exact size").
"""

from __future__ import annotations

TERMINATOR = b".\r\n"


def wire_size(raw: bytes) -> int:
    """Octets of ``raw`` with every bare LF counted as CRLF; byte-stuffing not included."""
    return len(raw) + raw.count(b"\n") - raw.count(b"\r\n")


class WireEncoder:
    """Turns a blob fed in chunks of any size into byte-stuffed CRLF lines.

    A CR at the end of a chunk is held back until the next byte is known, so a CRLF split
    across two chunks is not doubled; the start-of-line state crosses chunks for stuffing.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._at_line_start = True

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        if data.endswith(b"\r"):
            data, self._pending = data[:-1], b"\r"
        else:
            self._pending = b""
        return self._encode(data)

    def finish(self) -> bytes:
        """The rest, a CRLF if the message did not end with one, and the terminating ``.CRLF``."""
        data = self._encode(self._pending)
        self._pending = b""
        if not self._at_line_start:
            data += b"\r\n"
        self._at_line_start = True
        return data + TERMINATOR

    def _encode(self, data: bytes) -> bytes:
        if not data:
            return b""
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._at_line_start and data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..")
        self._at_line_start = data.endswith(b"\r\n")
        return data


def encode_message(raw: bytes) -> bytes:
    """The whole multi-line body of RETR for ``raw`` (without the status line)."""
    encoder = WireEncoder()
    return encoder.feed(raw) + encoder.finish()


def top_cut(raw: bytes, body_lines: int) -> bytes | None:
    """The part of ``raw`` that TOP sends: the header, the blank line and ``body_lines`` lines.

    ``raw`` may be a prefix of the message: None means more bytes are needed to decide. A
    message without a blank line is all header and is sent whole once complete.
    """
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    ends = [(i, n) for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
    if not ends:
        return None
    start, width = min(ends)
    position = start + width
    for _ in range(body_lines):
        newline = raw.find(b"\n", position)
        if newline < 0:
            return None
        position = newline + 1
    return raw[:position]
