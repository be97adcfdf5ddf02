"""RFC 3464 delivery status notifications: "failed" and a single "delayed" warning.

A DSN goes to the envelope sender with the null reverse-path ``<>`` through ``message_submit``
(local senders get it in their INBOX at once, remote ones through the queue). Never to a null
sender, which also means never a bounce of a bounce: every DSN we send has a null sender.
NOTIFY (RFC 3461 §4.1) is honoured: empty means FAILURE,DELAY; NEVER means none.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from email.utils import format_datetime

from django.conf import settings
from django.utils import timezone

from mailcore.models import OutboundMessage, OutboundRecipient

from .schedule import RetryPolicy, give_up_at

log = logging.getLogger("mailcore.relay.dsn")

CRLF = "\r\n"
MAX_DIAGNOSTIC = 900
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")  # RFC 3463 class.subject.detail
_REPLY_CODE = re.compile(r"\b([245])\d\d\b")
_REPORT = re.compile(rb"(?im)^content-type[ \t]*:[ \t]*multipart/report\b[^\r\n]*(?:\r\n[ \t][^\r\n]*)*report-type[ \t]*=[ \t]*\"?delivery-status")

ACTION_NOTIFY = {"failed": "FAILURE", "delayed": "DELAY"}


def wants_notice(notify: str, action: str) -> bool:
    keywords = {k.strip().upper() for k in notify.split(",") if k.strip()} or {"FAILURE", "DELAY"}
    return "NEVER" not in keywords and ACTION_NOTIFY[action] in keywords


def status_code(reply: str, action: str) -> str:
    """The RFC 3463 status for the report: the reply's enhanced code, else from its class."""
    match = _ENHANCED.search(reply)
    if match and (match.group(1) == "5") == (action == "failed"):
        return ".".join(match.groups())
    if action == "delayed":
        return "4.0.0"
    code = _REPLY_CODE.search(reply)
    return "5.0.0" if code is None or code.group(1) == "5" else "4.4.7"  # 4.4.7: gave up, message expired


def original_headers(raw: bytes) -> bytes:
    index = raw.find(b"\r\n\r\n")
    return raw if index < 0 else raw[: index + 2]


def is_delivery_report(raw: bytes) -> bool:
    return bool(_REPORT.search(original_headers(raw)))


def _field(text: str) -> str:
    return " ".join(text.split())[:MAX_DIAGNOSTIC]


def dsn_build(
    *,
    message: OutboundMessage,
    recipients: Sequence[OutboundRecipient],
    action: str,
    raw: bytes,
    now: datetime,
) -> bytes:
    """The multipart/report: human text, message/delivery-status, then the original (RET)."""
    hostname = settings.MAIL_HOSTNAME
    boundary = f"=_dsn_{uuid.uuid4().hex}"
    policy = RetryPolicy.from_settings()
    subject = "Undelivered Mail Returned to Sender" if action == "failed" else "Delayed Mail (still being retried)"
    human = [f"This is the mail system at {hostname}.", ""]
    if action == "failed":
        human.append("Your message could not be delivered to the following recipients:")
    else:
        human.append("Your message has not been delivered yet to the following recipients; it is still being retried:")
    human.append("")
    for r in recipients:
        human.append(f"<{r.address}>: {_field(r.last_reply) or 'no reply'}")
    if action == "delayed" and recipients:
        until = give_up_at(policy, recipients[0].created_at)
        human += ["", f"Delivery will be retried until {format_datetime(until)}."]
    per_message = [f"Reporting-MTA: dns; {hostname}"]
    if message.dsn_envid:
        per_message.append(f"Original-Envelope-Id: {message.dsn_envid}")
    per_message.append(f"Arrival-Date: {format_datetime(message.created_at)}")
    blocks = [CRLF.join(per_message)]
    for r in recipients:
        lines = []
        if r.orcpt:
            lines.append(f"Original-Recipient: {r.orcpt}")
        lines += [
            f"Final-Recipient: rfc822; {r.address}",
            f"Action: {action}",
            f"Status: {status_code(r.last_reply, action)}",
        ]
        remote = r.last_reply.split(" said: ", 1)[0] if " said: " in r.last_reply else ""
        if remote:
            lines.append(f"Remote-MTA: dns; {_field(remote.split('[')[0])}")
        if r.last_reply:
            lines.append(f"Diagnostic-Code: smtp; {_field(r.last_reply.split(' said: ', 1)[-1])}")
        if r.last_attempt_at:
            lines.append(f"Last-Attempt-Date: {format_datetime(r.last_attempt_at)}")
        if action == "delayed":
            lines.append(f"Will-Retry-Until: {format_datetime(give_up_at(policy, r.created_at))}")
        blocks.append(CRLF.join(lines))
    status_body = (CRLF + CRLF).join(blocks) + CRLF
    if message.dsn_ret.upper() == "FULL":
        third_type, third_body = "message/rfc822", raw
    else:
        third_type, third_body = "text/rfc822-headers", original_headers(raw)
    head = CRLF.join(
        [
            f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
            f"To: <{message.mail_from}>",
            f"Subject: {subject}",
            f"Date: {format_datetime(now)}",
            f"Message-ID: <{uuid.uuid4().hex}@{hostname}>",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        ]
    )
    preamble = head + CRLF + CRLF + "This is a MIME-encapsulated message." + CRLF
    human_part = (
        f"--{boundary}{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}Content-Transfer-Encoding: 8bit{CRLF}{CRLF}"
        + CRLF.join(human) + CRLF
    )
    status_part = f"--{boundary}{CRLF}Content-Type: message/delivery-status{CRLF}{CRLF}" + status_body
    third_head = f"--{boundary}{CRLF}Content-Type: {third_type}{CRLF}{CRLF}"
    text = preamble + CRLF + human_part + CRLF + status_part + CRLF + third_head
    return text.encode("utf-8") + third_body.rstrip(b"\r\n") + f"{CRLF}{CRLF}--{boundary}--{CRLF}".encode()


def dsn_send(
    *, message: OutboundMessage, recipients: Sequence[OutboundRecipient], action: str, now: datetime | None = None
) -> int:
    """Send one DSN for ``recipients`` of ``message`` when one is due; returns 1 if sent, else 0.

    Runs inside the caller's transaction (``outcomes_record``), so the status change and the
    notice commit together.
    """
    from .submit import message_submit

    if not message.mail_from:
        return 0  # null sender: a bounce or similar; RFC 5321 §4.5.5 forbids answering it
    wanted = [r for r in recipients if wants_notice(r.notify, action)]
    if not wanted:
        return 0
    raw = bytes(message.blob.data)
    if is_delivery_report(raw):
        return 0
    report = dsn_build(message=message, recipients=wanted, action=action, raw=raw, now=now or timezone.now())
    result = message_submit(raw=report, mail_from="", recipients=[message.mail_from])
    for address, reason in result.refused:
        # Nothing more can be done: a report about a report is never sent (RFC 5321 §4.5.5).
        log.warning("%s report for outbound %s to <%s> not delivered: %s", action, message.pk, address, reason)
    return 1
