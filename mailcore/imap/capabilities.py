"""Capabilities and named response constants. Only complete extensions are listed."""

from __future__ import annotations

from django.conf import settings

BASE = [
    "IMAP4rev1", "IMAP4rev2", "LITERAL+", "BINARY", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE",
    "CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "CONDSTORE", "QRESYNC", "ESEARCH", "SEARCHRES", "LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE", "QUOTA", "QUOTA=RES-STORAGE", "SORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "COMPRESS=DEFLATE", "UNAUTHENTICATE",
]
# Extensions ENABLE accepts (RFC 5161), upper case -> the spelling ENABLED answers with.
ENABLEABLE = {"CONDSTORE": "CONDSTORE", "QRESYNC": "QRESYNC", "IMAP4REV2": "IMAP4rev2"}


def capabilities(*, authenticated: bool, tls: bool, login_allowed: bool, starttls_available: bool) -> list[str]:
    caps = list(BASE)
    if not authenticated:
        if starttls_available and not tls:
            caps.append("STARTTLS")
        if login_allowed:
            caps.append("AUTH=PLAIN")
        else:
            caps.append("LOGINDISABLED")
    caps.append(f"APPENDLIMIT={settings.MAX_MESSAGE_SIZE}")
    return caps


PERMANENT_SYSTEM_FLAGS = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
NAMESPACE = b'* NAMESPACE (("" "/")) NIL NIL\r\n'
SERVER_ID = b'* ID ("name" "mailcore" "vendor" "webmail")\r\n'
