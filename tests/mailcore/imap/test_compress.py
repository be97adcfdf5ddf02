"""COMPRESS=DEFLATE (RFC 4978) with a zlib-wrapped socket client, in the clear and over TLS."""

from __future__ import annotations

import os
import socket
import ssl
import zlib

import pytest

from mailcore import store
from mailcore.models import Account, Folder
from tests.conftest import PASSWORD, make_message

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)


class DeflateClient:
    """Sends and receives raw deflate after COMPRESS, as a client library would."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, leftover: bytes) -> None:
        self.sock = sock
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        self.buf = self.inflater.decompress(leftover)
        self.wire_in = len(leftover)

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH))

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.wire_in += len(chunk)
        self.buf += self.inflater.decompress(chunk)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._more()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def cmd(self, tag: str, text: bytes | str) -> list[bytes]:
        self.send(tag.encode() + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines


def _compressed(raw: Raw) -> DeflateClient:
    assert raw.cmd("z", "COMPRESS DEFLATE") == [b"z OK DEFLATE active\r\n"]
    return DeflateClient(raw.sock, raw.buf)


def _big_message(size: int) -> bytes:
    # Text that compresses, with random lines that do not, to exercise both.
    pair = 64 + 62
    lines = [b"The quick brown fox jumps over the lazy dog, again and again..\r\n"
             + os.urandom(30).hex().encode() + b"\r\n" for _ in range(size // pair + 1)]
    return make_message(subject="Big") + b"".join(lines)


def _fetch_body(client: DeflateClient, tag: str, seq: int) -> bytes:
    client.send(f"{tag} FETCH {seq} BODY.PEEK[]\r\n".encode())
    head = client.line()
    assert head.startswith(b"* %d FETCH (BODY[] {" % seq), head
    size = int(head[head.index(b"{") + 1 : head.index(b"}")])
    body = client.exactly(size)
    assert client.line() == b")\r\n"
    assert client.line().startswith(tag.encode() + b" OK")
    return body


def test_compress_deflate_fetches_big_messages_and_appends(imap_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    messages = [_big_message(3_000_000), _big_message(200_000)]
    for message in messages:
        store.message_append(account=alice, folder=inbox, raw=message)
    raw = Raw(imap_port)
    assert b"COMPRESS=DEFLATE" in raw.cmd("a", "CAPABILITY")[0]
    raw.cmd("b", f'LOGIN alice@a.test "{PASSWORD}"')
    client = _compressed(raw)
    assert client.cmd("c", "SELECT INBOX")[-1].startswith(b"c OK [READ-WRITE]")
    assert _fetch_body(client, "d", 1) == messages[0]
    assert _fetch_body(client, "e", 2) == messages[1]
    # Text compresses: fewer bytes crossed the wire than were fetched.
    assert client.wire_in < len(messages[0]) + len(messages[1])
    # A literal sent compressed, synchronising and not.
    new = _big_message(100_000)
    client.send(b"f APPEND INBOX {%d}\r\n" % len(new))
    assert client.line().startswith(b"+ ")
    client.send(new + b"\r\n")
    assert client.line() == b"* 3 EXISTS\r\n"
    assert client.line() == b"* 3 RECENT\r\n"
    assert client.line().startswith(b"f OK [APPENDUID ")
    assert client.cmd("g", b"APPEND INBOX {%d+}\r\n" % len(new) + new)[-1].startswith(b"g OK [APPENDUID ")
    assert _fetch_body(client, "i", 4) == new
    # Only once per connection (RFC 4978 §3), and no STARTTLS under compression.
    assert client.cmd("j", "COMPRESS DEFLATE") == [b"j NO [COMPRESSIONACTIVE] compression is already active\r\n"]
    assert client.cmd("k", "LOGOUT")[-1] == b"k OK LOGOUT completed\r\n"
    raw.close()


def test_compress_needs_login_and_a_known_mechanism(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    assert raw.cmd("a", "COMPRESS DEFLATE")[-1].startswith(b"a BAD")
    raw.cmd("b", f'LOGIN alice@a.test "{PASSWORD}"')
    assert raw.cmd("c", "COMPRESS LZW")[-1].startswith(b"c BAD")
    assert raw.cmd("d", "COMPRESS")[-1].startswith(b"d BAD")
    assert raw.cmd("e", "NOOP") == [b"e OK NOOP completed\r\n"]
    raw.close()


def test_commands_pipelined_right_after_compress_are_read_compressed(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw.send(b"b COMPRESS DEFLATE\r\n" + deflater.compress(b"c NOOP\r\n") + deflater.flush(zlib.Z_SYNC_FLUSH))
    assert raw.line() == b"b OK DEFLATE active\r\n"
    client = DeflateClient(raw.sock, raw.buf)
    client.deflater = deflater
    assert client.line() == b"c OK NOOP completed\r\n"
    raw.close()


def test_a_deflate_bomb_is_bounded_by_the_line_limit(imap_port: int, alice: Account) -> None:
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    client = _compressed(raw)
    # 64 MiB of "A" without a line end: a few KiB compressed; the server must not inflate it all.
    deflater = client.deflater
    compressed = b"".join(deflater.compress(b"A" * (1 << 20)) for _ in range(64)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert len(compressed) < 100_000
    try:
        raw.sock.sendall(compressed)
        line = client.line()
    except ConnectionError:
        line = b"(connection closed)"  # the server hung up before reading it all: RST may eat the BYE
    assert line in (b"* BYE line too long\r\n", b"(connection closed)")
    with pytest.raises((ConnectionError, OSError)):
        for _ in range(10):
            client.send(b"x NOOP\r\n")
            client.line()
    raw.close()


def test_compress_over_tls(imaps_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    message = _big_message(500_000)
    store.message_append(account=alice, folder=inbox, raw=message)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", imaps_port), timeout=10))
    raw = Raw.__new__(Raw)
    raw.sock, raw.buf = sock, b""
    raw.greeting = raw.line()
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    client = _compressed(raw)
    client.cmd("b", "SELECT INBOX")
    assert _fetch_body(client, "c", 1) == message
    raw.close()
