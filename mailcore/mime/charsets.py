"""Turning bytes in a declared (or undeclared, or wrong) charset into text, without ever raising."""

from __future__ import annotations

import codecs
import re

# Labels mail clients use for charsets whose Python codec is a strict subset of what is really
# sent; the WHATWG Encoding Standard makes the same substitutions.
_SUPERSETS: dict[str, str] = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "iso-2022-jp": "iso2022_jp_ext",
    "unicode-1-1-utf-7": "utf-7",
    "x-unknown": "",
    "unknown-8bit": "",
    "x-user-defined": "",
}

# Python codecs that a hostile charset label must not select: they interpret escapes or
# raise on every input, and are no mail charset.
_REFUSED_CODECS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode", "mbcs", "oem", "palmos"}
)
# UTF-7, UTF-16 and the escape codecs can produce lone surrogates, which PostgreSQL JSONB rejects.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _codec_name(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    if "*" in label:  # RFC 2231 language suffix: "utf-8*en"
        label = label.split("*", 1)[0]
    label = _SUPERSETS.get(label, label)
    if not label:
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    # codecs.lookup also finds bytes-to-bytes codecs (base64, zlib, rot13): never use those.
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def decode_fallback(data: bytes) -> str:
    """Text of undeclared bytes: UTF-8 when it is valid UTF-8, else windows-1252, else latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset; unknown or missing charsets fall back; never raises."""
    codec = _codec_name(charset)
    if codec is None or codec == "cp1252" and _looks_utf8(data):
        text = decode_fallback(data)
    else:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            # Mislabelled UTF-8 is the most common lie; after that, keep what the label gives.
            if codec != "utf-8" and _looks_utf8(data):
                text = data.decode("utf-8")
            elif codec == "utf-8":
                text = data.decode("utf-8", "replace")
            else:
                try:
                    text = data.decode(codec, "replace")
                except Exception:
                    text = decode_fallback(data)
        except Exception:
            text = decode_fallback(data)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATE_RE.search(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _looks_utf8(data: bytes) -> bool:
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
