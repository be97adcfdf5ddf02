"""COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951) in both directions, over TLS or not.

Reading is pulled, not pushed: compressed bytes are inflated only as far as the session asks
for lines and literals, at most ``CHUNK`` at a time, so a small "zip bomb" can never grow a
buffer past the line limit (plus one chunk) or a literal's announced size, both checked by the
caller. Writing compresses every flush and ends it with a sync flush, so each response reaches
the client at once. Memory per connection: the inflater needs the full 32 KiB window (the
client chooses it); the deflater uses a 2 KiB window and memLevel 5, about 24 KiB, which every
inflater accepts.
"""

from __future__ import annotations

import asyncio
import zlib

CHUNK = 64 * 1024
DEFLATE_WBITS = -11
DEFLATE_MEMLEVEL = 5
DEFLATE_LEVEL = 6


class InflatingReader:
    """The part of ``asyncio.StreamReader`` the connection uses, over a deflated stream."""

    def __init__(self, raw: asyncio.StreamReader, pending: bytes, limit: int) -> None:
        self.raw = raw
        self.pending = pending  # compressed bytes that arrived with or after the COMPRESS command
        self.limit = limit
        self.inflater = zlib.decompressobj(-15)
        self.buffer = bytearray()

    async def _fill(self) -> None:
        """Add at least one decompressed byte to the buffer (at most CHUNK), or raise at EOF."""
        while True:
            if self.inflater.unconsumed_tail:
                compressed = self.inflater.unconsumed_tail
            elif self.pending:
                compressed, self.pending = self.pending, b""
            else:
                if self.inflater.eof:
                    raise asyncio.IncompleteReadError(bytes(self.buffer), None)
                compressed = await self.raw.read(CHUNK)
                if not compressed:
                    raise asyncio.IncompleteReadError(bytes(self.buffer), None)
            try:
                data = self.inflater.decompress(compressed, CHUNK)
            except zlib.error as exc:
                raise ConnectionResetError(f"bad deflate data: {exc}") from None
            if data:
                self.buffer += data
                return

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        start = 0
        while True:
            index = self.buffer.find(separator, start)
            if index >= 0:
                end = index + len(separator)
                line = bytes(self.buffer[:end])
                del self.buffer[:end]
                return line
            if len(self.buffer) > self.limit:
                raise asyncio.LimitOverrunError("separator not found within the limit", len(self.buffer))
            start = max(0, len(self.buffer) - len(separator) + 1)
            await self._fill()

    async def readexactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


class Deflater:
    def __init__(self) -> None:
        self.deflater = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, DEFLATE_WBITS, DEFLATE_MEMLEVEL)

    def compress(self, data: bytes) -> bytes:
        return self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
