"""PROXY protocol v1/v2 parsing (pure) and reading from a stream."""

from __future__ import annotations

import asyncio

import pytest

from mailcore.net.proxy import (
    ProxyError,
    ProxyIncomplete,
    build_v1,
    build_v2,
    parse_proxy_header,
    parse_v1,
    read_proxy_header,
)


def test_v1_tcp4_and_tcp6_give_the_source_address() -> None:
    assert parse_v1(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n") == ("192.0.2.7", 56324)
    assert parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 587\r\n") == ("2001:db8::7", 4000)


def test_v1_unknown_means_use_the_real_peer() -> None:
    assert parse_v1(b"PROXY UNKNOWN\r\n") is None
    assert parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") is None


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 25\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 0056 25\r\n",
        b"PROXY TCP4 not-an-ip 198.51.100.1 1 25\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 1 25\n",
        b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
    ],
)
def test_v1_malformed_lines_are_errors(line: bytes) -> None:
    with pytest.raises(ProxyError):
        parse_v1(line)


def test_v2_ipv4_ipv6_and_local() -> None:
    assert parse_proxy_header(build_v2(("192.0.2.7", 1234))) == (("192.0.2.7", 1234), 28)
    header = build_v2(("2001:db8::7", 4321))
    assert parse_proxy_header(header + b"EHLO") == (("2001:db8::7", 4321), len(header))
    assert parse_proxy_header(build_v2(None)) == (None, 16)


def test_v2_with_tlvs_consumes_them() -> None:
    header = bytearray(build_v2(("192.0.2.7", 1)))
    header[14:16] = (12 + 5).to_bytes(2, "big")
    header += b"\x04\x00\x02ok"
    assert parse_proxy_header(bytes(header)) == (("192.0.2.7", 1), 33)


def test_partial_headers_ask_for_more_and_garbage_is_refused() -> None:
    full = build_v2(("192.0.2.7", 1))
    for cut in (1, 12, 15, 20):
        with pytest.raises(ProxyIncomplete):
            parse_proxy_header(full[:cut])
    with pytest.raises(ProxyIncomplete):
        parse_proxy_header(b"PROXY TCP4 1.2")
    with pytest.raises(ProxyError):
        parse_proxy_header(b"EHLO example.org\r\n")
    bad_version = bytearray(full)
    bad_version[12] = 0x11
    with pytest.raises(ProxyError):
        parse_proxy_header(bytes(bad_version))


def _read(data: bytes, *, eof: bool = True, timeout: float = 1.0) -> tuple[object, bytes]:
    async def run() -> tuple[object, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        try:
            result: object = await read_proxy_header(reader, timeout=timeout)
        except ProxyError as exc:
            result = exc
        rest = await reader.read() if eof else b""
        return result, rest

    return asyncio.run(run())


def test_read_proxy_header_leaves_the_following_bytes_in_the_stream() -> None:
    assert _read(build_v1(("192.0.2.9", 5), ("192.0.2.1", 25)) + b"EHLO x\r\n") == (("192.0.2.9", 5), b"EHLO x\r\n")
    assert _read(build_v2(("192.0.2.9", 5)) + b"\x16\x03") == (("192.0.2.9", 5), b"\x16\x03")


def test_read_proxy_header_refuses_garbage_eof_and_silence() -> None:
    assert isinstance(_read(b"EHLO example.org\r\n")[0], ProxyError)
    assert isinstance(_read(b"PROXY TCP4 1.2.3.4")[0], ProxyError)
    assert isinstance(_read(b"", eof=False, timeout=0.1)[0], ProxyError)
