"""RFC 2047 words, RFC 2231 parameters, charsets and subject normalisation."""

from __future__ import annotations

import pytest

from mailcore.mime import decode_bytes, decode_header_value, decode_params, normalize_thread_subject
from mailcore.mime.headers import parse_params_header


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain text", "plain text"),
        ("=?utf-8?q?J=C3=B6rg?=", "Jörg"),
        ("=?UTF-8?B?SMOpbGxv?= world", "Héllo world"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # white space between words is dropped
        ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
        ("=?utf-8?B?5pel?= =?utf-8?B?5pys?=", "日本"),
        ("=?utf-8?Q?=E6=97?= =?utf-8?Q?=A5?=", "日"),  # a character split across two words
        ("=?iso-8859-1?q?caf=E9?= au lait", "café au lait"),
        ("=?utf-8*en?q?hi?=", "hi"),  # RFC 2231 language in an encoded word
        ("=?x-unknown?q?abc?=", "abc"),
        ("broken =?utf-8?q?unterminated", "broken =?utf-8?q?unterminated"),
        ("=?utf-8?q?with spaces inside?=", "with spaces inside"),
        ("Gr\u00fc\u00dfe", "Grüße"),
        ("a\x00b", "ab"),
        (b"Gr\xc3\xbc\xc3\x9fe", "Grüße"),  # RFC 6532 raw UTF-8
        (b"Gr\xfc\xdfe", "Grüße"),  # raw latin-1
        (b"folded\r\n line", "folded line"),
    ],
)
def test_decode_header_value(raw: str | bytes, expected: str) -> None:
    assert decode_header_value(raw) == expected


def test_malformed_encoded_words_never_raise() -> None:
    for raw in ("=?utf-8?b?not base64!?=", "=?utf-8?q?=ZZ=?=", "=??q?x?=", "=?utf-8?x?y?=", "=?" * 5000):
        assert isinstance(decode_header_value(raw), str)


def test_rfc2231_continuations_with_charset() -> None:
    params = [["filename*0*", "utf-8''Rechnung%20M%C3%A4rz"], ["filename*1*", "%202024.pdf"]]
    assert decode_params(params)["filename"] == "Rechnung März 2024.pdf"


def test_rfc2231_unordered_and_mixed_segments() -> None:
    params = [["name*1", " part two"], ["name*0*", "iso-8859-1'de'Gr%FC%DFe"], ["name", "fallback"]]
    assert decode_params(params)["name"] == "Grüße part two"


def test_rfc2231_single_extended_value() -> None:
    assert decode_params([["filename*", "UTF-8''%E2%82%AC.txt"]])["filename"] == "€.txt"


def test_rfc2047_in_quoted_parameter() -> None:
    assert decode_params([["name", "=?utf-8?B?w6l0w6kgMjAyNC5qcGc=?="]])["name"] == "été 2024.jpg"


def test_parameter_parsing_keeps_values_and_order() -> None:
    head, params = parse_params_header('multipart/mixed; BOUNDARY="a;b\\"c"; charset=utf-8 ; junk; x=')
    assert head == "multipart/mixed"
    assert params == [["boundary", 'a;b"c'], ["charset", "utf-8"], ["x", ""]]


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("iso-8859-1", "Café"),
        ("windows-1252", "\u201cq\u201d €"),
        ("shift_jis", "こんにちは"),
        ("koi8-r", "Привет"),
        ("gb2312", "你好"),
        ("iso-2022-jp", "日本語"),
        ("big5", "繁體"),
        ("utf-7", "Grüß"),
        ("euc-kr", "안녕"),
    ],
)
def test_legacy_charsets(charset: str, text: str) -> None:
    assert decode_bytes(text.encode(charset), charset) == text


def test_gb2312_label_decodes_gbk_characters() -> None:
    assert decode_bytes("镕".encode("gbk"), "gb2312") == "镕"


@pytest.mark.parametrize("charset", [None, "", "x-bogus", "base64", "rot13", "zlib", '"utf-8"', "utf-8*en"])
def test_unknown_or_non_text_charsets_never_raise(charset: str | None) -> None:
    assert decode_bytes(b"abc \xe9", charset) in ("abc é", "abc \ufffd")


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (b"+2D0-", "utf-7"),
        (b"\\ud800", "unicode_escape"),
        (b"\\ud800", "raw-unicode-escape"),
        (b"\x00\xd8", "utf-16-le"),
    ],
)
def test_decoded_text_never_holds_lone_surrogates(data: bytes, charset: str) -> None:
    decode_bytes(data, charset).encode("utf-8")


def test_mislabelled_utf8_is_read_as_utf8() -> None:
    assert decode_bytes("naïve".encode(), "us-ascii") == "naïve"
    assert decode_bytes("naïve".encode(), "iso-8859-1") == "naïve"


def test_invalid_bytes_in_declared_charset_are_replaced() -> None:
    assert decode_bytes(b"ok \xff\xfe", "utf-8") == "ok \ufffd\ufffd"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "hello"),
        ("Re: Hello", "hello"),
        ("RE: re: Re:Hello", "hello"),
        ("Fwd: Fw: FW: hello", "hello"),
        ("AW: WG: SV: VS: Hallo", "hallo"),
        ("RE[2]: Re(3): hello", "hello"),
        ("[dev] Re: [dev] hello", "hello"),
        ("Re: [python-dev] AW: Fwd: RE[2]: PEP 999  discussion", "pep 999 discussion"),
        ("  Hello \t  World  ", "hello world"),
        ("Hello (fwd)", "hello"),
        ("Réunion", "réunion"),
        ("Re:", ""),
        ("Regarding: x", "regarding: x"),
        ("Rechnung 12", "rechnung 12"),
    ],
)
def test_thread_subject_normalisation(subject: str, expected: str) -> None:
    assert normalize_thread_subject(subject) == expected
