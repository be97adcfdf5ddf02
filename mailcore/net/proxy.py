"""PROXY protocol v1 and v2 (HAProxy's spec) for listeners behind a TCP balancer.

Protocol-agnostic: SMTP, IMAP and POP3 listeners call :func:`read_proxy_header` before their
greeting when the listener's role is named in ``PROXY_PROTOCOL_LISTENERS``. The parser is pure
(:func:`parse_proxy_header`) and is tested by feeding bytes.

Only the client's source address is used. ``PROXY UNKNOWN`` (v1) and the ``LOCAL`` command or an
unspecified family (v2) mean "use the real peer" and come back as ``None``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # including CRLF (spec §2.1)
V2_MAX_PAYLOAD = 4096  # addresses plus TLVs; the spec allows 64 KiB, balancers send far less
DEFAULT_TIMEOUT = 5.0

Address = tuple[str, int]


class ProxyError(ValueError):
    """A connection that should have started with a PROXY header did not."""


class ProxyIncomplete(ProxyError):
    """More bytes are needed to parse the header."""


def _port(text: bytes) -> int:
    if not text.isdigit() or (len(text) > 1 and text.startswith(b"0")):
        raise ProxyError(f"bad port {text!r}")
    value = int(text)
    if value > 65535:
        raise ProxyError(f"bad port {text!r}")
    return value


def parse_v1(line: bytes) -> Address | None:
    """Parse one complete v1 line (ending in CRLF)."""
    if len(line) > V1_MAX_LENGTH or not line.endswith(b"\r\n") or not line.startswith(V1_PREFIX):
        raise ProxyError("malformed PROXY v1 line")
    fields = line[:-2].split(b" ")
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return None
    if len(fields) != 6:
        raise ProxyError("PROXY v1 line needs 6 fields")
    _, family, src, dst, sport, dport = fields
    try:
        source = ipaddress.ip_address(src.decode("ascii"))
        ipaddress.ip_address(dst.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyError("bad address in PROXY v1 line") from None
    if (family, source.version) not in ((b"TCP4", 4), (b"TCP6", 6)):
        raise ProxyError("PROXY v1 family does not match the address")
    _port(dport)
    return str(source), _port(sport)


def parse_v2(data: bytes) -> tuple[Address | None, int]:
    """Parse a v2 header at the start of ``data``; returns (source, bytes consumed)."""
    if len(data) < 16:
        raise ProxyIncomplete("PROXY v2 header is 16 bytes at least")
    if not data.startswith(V2_SIGNATURE):
        raise ProxyError("no PROXY v2 signature")
    ver_cmd, family, length = struct.unpack("!BBH", data[12:16])
    if ver_cmd >> 4 != 2:
        raise ProxyError("PROXY v2 version is not 2")
    if length > V2_MAX_PAYLOAD:
        raise ProxyError("PROXY v2 payload too long")
    total = 16 + length
    if len(data) < total:
        raise ProxyIncomplete("PROXY v2 payload is incomplete")
    payload = data[16:total]
    command = ver_cmd & 0x0F
    if command == 0x0:  # LOCAL: health check from the balancer itself
        return None, total
    if command != 0x1:
        raise ProxyError("unknown PROXY v2 command")
    if family == 0x11:  # TCP over IPv4
        if length < 12:
            raise ProxyError("PROXY v2 IPv4 payload too short")
        src = ipaddress.IPv4Address(payload[0:4])
        (sport,) = struct.unpack("!H", payload[8:10])
        return (str(src), sport), total
    if family == 0x21:  # TCP over IPv6
        if length < 36:
            raise ProxyError("PROXY v2 IPv6 payload too short")
        src6 = ipaddress.IPv6Address(payload[0:16])
        (sport,) = struct.unpack("!H", payload[32:34])
        return (str(src6), sport), total
    if family == 0x00:  # UNSPEC
        return None, total
    raise ProxyError(f"unsupported PROXY v2 family {family:#x}")


def parse_proxy_header(data: bytes) -> tuple[Address | None, int]:
    """Parse a v1 or v2 header at the start of ``data``: (source or None, bytes consumed).

    Raises :class:`ProxyIncomplete` when more bytes are needed, :class:`ProxyError` when the
    bytes cannot be a PROXY header.
    """
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < len(V2_SIGNATURE):
        raise ProxyIncomplete("need more bytes")
    if data.startswith(V2_SIGNATURE):
        return parse_v2(data)
    if not V1_PREFIX.startswith(data[:6]) and not data.startswith(V1_PREFIX):
        raise ProxyError("no PROXY header")
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyError("PROXY v1 line too long")
        raise ProxyIncomplete("need more bytes")
    return parse_v1(data[: end + 2]), end + 2


async def read_proxy_header(reader: asyncio.StreamReader, *, timeout: float = DEFAULT_TIMEOUT) -> Address | None:
    """Read exactly one PROXY header from ``reader`` and return the client's source address.

    ``None`` means the header said to use the real peer (v1 UNKNOWN, v2 LOCAL/UNSPEC).
    Raises :class:`ProxyError` on a malformed header, end of stream or timeout; the caller
    closes the connection.
    """

    async def _read() -> Address | None:
        head = await reader.readexactly(12)
        if head == V2_SIGNATURE:
            fixed = await reader.readexactly(4)
            (length,) = struct.unpack("!H", fixed[2:4])
            if length > V2_MAX_PAYLOAD:
                raise ProxyError("PROXY v2 payload too long")
            payload = await reader.readexactly(length)
            return parse_v2(head + fixed + payload)[0]
        if not head.startswith(V1_PREFIX):
            raise ProxyError("no PROXY header")
        data = bytearray(head)
        while not data.endswith(b"\r\n"):
            if len(data) >= V1_MAX_LENGTH:
                raise ProxyError("PROXY v1 line too long")
            data += await reader.readexactly(1)
        return parse_v1(bytes(data))

    try:
        return await asyncio.wait_for(_read(), timeout)
    except asyncio.IncompleteReadError:
        raise ProxyError("connection closed inside the PROXY header") from None
    except TimeoutError:
        raise ProxyError("no PROXY header in time") from None


def build_v1(source: Address, destination: Address) -> bytes:
    """A v1 header, for tests and for clients of our own that sit behind nothing."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode("ascii")


def build_v2(source: Address | None, destination: Address | None = None) -> bytes:
    """A v2 header (PROXY command, TCP), or LOCAL when ``source`` is None."""
    if source is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, 0)
    destination = destination or (("::1" if ":" in source[0] else "127.0.0.1"), 0)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    payload = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(payload)) + payload
