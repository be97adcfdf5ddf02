"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import base64


class Utf7Error(ValueError):
    pass


def _b64encode(chunk: str) -> str:
    data = chunk.encode("utf-16-be")
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """A Unicode mailbox name in modified UTF-7."""
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64encode("".join(pending)) + "-")
                pending.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64encode("".join(pending)) + "-")
    return "".join(out)


def decode(name: str) -> str:
    """A modified UTF-7 mailbox name as Unicode; Utf7Error when it is not valid."""
    out: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise Utf7Error("mailbox names must be 7-bit (modified UTF-7)")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated modified UTF-7 sequence")
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                data = base64.b64decode(padded, validate=True)
                text = data.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError) as exc:
                raise Utf7Error("invalid modified UTF-7 sequence") from exc
            if encode(text) != "&" + chunk + "-":
                raise Utf7Error("non-canonical modified UTF-7 sequence")
            out.append(text)
        i = end + 1
    return "".join(out)
