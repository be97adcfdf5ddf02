"""Reply texts and enhanced status codes (RFC 5321 §4.2, RFC 3463, RFC 2034).

Every final reply carries an enhanced status code. Replies that aiosmtpd writes itself get the
default code for their basic code from :data:`DEFAULT_ENHANCED` (added in ``MailSMTP.push``).
"""

from __future__ import annotations

import re

# Defaults when a reply has no enhanced code of its own (RFC 3463 §3 and RFC 5248).
DEFAULT_ENHANCED: dict[int, str] = {
    211: "2.0.0",
    214: "2.0.0",
    221: "2.0.0",
    235: "2.7.0",
    250: "2.0.0",
    251: "2.1.5",
    252: "2.5.0",
    421: "4.7.0",
    450: "4.2.0",
    451: "4.3.0",
    452: "4.3.1",
    454: "4.7.0",
    500: "5.5.2",
    501: "5.5.4",
    502: "5.5.1",
    503: "5.5.1",
    504: "5.5.4",
    521: "5.3.2",
    530: "5.7.0",
    534: "5.7.9",
    535: "5.7.8",
    538: "5.7.11",
    550: "5.0.0",
    551: "5.1.6",
    552: "5.3.4",
    553: "5.1.3",
    554: "5.0.0",
    555: "5.5.4",
}

# Replies that carry no enhanced code: the greeting and HELO/EHLO (RFC 2034 §3) are written
# raw; 334 (AUTH challenges) and 354 are intermediate and RFC 3463 has no class 3.
NO_ENHANCED = frozenset({220, 334, 354})

_HAS_ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}(?: |$)")


def with_enhanced(reply: bytes) -> bytes:
    """Add the default enhanced status code to a one-line reply that lacks one."""
    if len(reply) < 3 or not reply[:3].isdigit():
        return reply
    code = int(reply[:3])
    if code in NO_ENHANCED:
        return reply
    sep, text = reply[3:4], reply[4:]
    if _HAS_ENHANCED.match(text):
        return reply
    enhanced = DEFAULT_ENHANCED.get(code, f"{code // 100}.0.0")
    return reply[:3] + (sep or b" ") + enhanced.encode("ascii") + (b" " + text if text else b"")


# Named replies used by our own code.
OK = "250 2.0.0 OK"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
QUEUED = "250 2.0.0 OK: queued as {id}"
DATA_GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"
BYE = "221 2.0.0 Bye"

AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_THROTTLED = "454 4.7.0 Too many failed logins, try again later"
AUTH_TOO_MANY_FAILURES = "421 4.7.0 Too many failed logins, closing connection"
AUTH_NOT_AVAILABLE = "502 5.5.1 AUTH is not available on this port"
AUTH_ALREADY = "503 5.5.1 Already authenticated"
AUTH_MECHANISM_UNKNOWN = "504 5.5.4 Unrecognized authentication type"
AUTH_NEEDS_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_ABORTED = "501 5.7.0 Authentication aborted"
AUTH_BAD_BASE64 = "501 5.5.2 Cannot decode the base64 response"

SYNTAX_MAIL = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"
SYNTAX_RCPT = "501 5.5.4 Syntax: RCPT TO:<address> [parameters]"
SYNTAX_BDAT = "501 5.5.4 Syntax: BDAT <size> [LAST]"
BAD_ADDRESS = "553 5.1.3 Bad address syntax: {reason}"
LINE_BREAK_IN_COMMAND = "501 5.5.2 Line breaks are not allowed inside a command"
PARAM_UNKNOWN = "555 5.5.4 Parameter {name} is not recognised"
NESTED_MAIL = "503 5.5.1 Nested MAIL command"
NEED_MAIL = "503 5.5.1 Need MAIL command first"
NEED_RCPT = "503 5.5.1 Need RCPT command first"
NEED_HELO = "503 5.5.1 Send EHLO or HELO first"
BDAT_THEN_DATA = "503 5.5.1 DATA is not allowed after BDAT"
SMTPUTF8_NEEDS_EHLO = "555 5.5.4 SMTPUTF8 requires EHLO"

RELAY_DENIED = "554 5.7.1 Relay access denied: <{address}>"
UNKNOWN_USER = "550 5.1.1 No such user here: <{address}>"
MAILBOX_FULL = "452 4.2.2 Mailbox full: <{address}>"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds the fixed maximum of {limit} bytes"
SEND_AS_DENIED = "553 5.7.1 Sender address <{address}> is not yours to send as"
DMARC_REJECT = (
    "550 5.7.1 Message refused: it fails the DMARC policy of {domain} (p=reject): neither SPF nor DKIM "
    "authenticated the From: domain"
)
FROM_UNUSABLE = (
    "550 5.7.1 Message refused: {reason}; DMARC needs one From: field whose addresses all have a domain "
    "(RFC 7489 section 6.6.1)"
)
LOOP_DETECTED = "554 5.4.6 Too many Received headers: mail loop"
BARE_LINE_ENDING = "550 5.6.0 Message refused: bare CR or LF in message data (RFC 5321 §2.3.8)"
LINE_TOO_LONG = "500 5.5.6 Line too long (RFC 5321 §4.5.3.1.6)"
STORAGE_ERROR = "451 4.3.0 Temporary storage error, try again later"
NO_VALID_RECIPIENTS = "554 5.5.1 No valid recipients"
TOO_MANY_MESSAGES = "421 4.7.0 Too many messages on this connection, closing"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors on this connection, closing"
TIMEOUT = "421 4.4.2 Idle timeout, closing connection"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
