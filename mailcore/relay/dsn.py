"""RFC 3464 delivery status notifications: "failed", a single "delayed" warning, and on
request (NOTIFY=SUCCESS) "relayed" (the next hop offers no DSN) and "delivered" (a local mailbox).

A DSN goes to the envelope sender with the null reverse-path ``<>`` through ``message_submit``
(local senders get it in their INBOX at once, remote ones through the queue). Never to a null
sender, which also means never a bounce of a bounce: every DSN we send has a null sender.
NOTIFY (RFC 3461 §4.1) is honoured: empty means FAILURE,DELAY; NEVER means none. ENVID and
ORCPT are kept in xtext and shown decoded in Original-Envelope-Id / Original-Recipient.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from django.conf import settings
from django.utils import timezone

from mailcore.models import OutboundMessage, OutboundRecipient
from mailcore.smtp.dsn import notify_keywords, orcpt_decoded, xtext_decode

from .encoding import has_8bit
from .schedule import RetryPolicy, give_up_at

log = logging.getLogger("mailcore.relay.dsn")

CRLF = "\r\n"
MAX_DIAGNOSTIC = 900
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")  # RFC 3463 class.subject.detail
_REPLY_CODE = re.compile(r"\b([245])\d\d\b")
_REPORT = re.compile(rb"(?im)^content-type[ \t]*:[ \t]*multipart/report\b[^\r\n]*(?:\r\n[ \t][^\r\n]*)*report-type[ \t]*=[ \t]*\"?delivery-status")

ACTION_NOTIFY = {"failed": "FAILURE", "delayed": "DELAY", "relayed": "SUCCESS", "delivered": "SUCCESS"}
SUCCESS_ACTIONS = ("relayed", "delivered")
_STATUS_CLASS = {"failed": "5", "delayed": "4", "relayed": "2", "delivered": "2"}

SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "relayed": "Relayed Mail: Delivery Status Notification",
    "delivered": "Successful Mail Delivery Report",
}
INTRODUCTIONS = {
    "failed": "Your message could not be delivered to the following recipients:",
    "delayed": "Your message has not been delivered yet to the following recipients; it is still being retried:",
    "relayed": (
        "Your message was handed on to the following recipients' mail servers. Those servers do not "
        "offer delivery notifications, so this is the last report you will get about them:"
    ),
    "delivered": "Your message was delivered to the mailboxes of the following recipients:",
}


def wants_notice(notify: str, action: str) -> bool:
    keywords = notify_keywords(notify)
    return "NEVER" not in keywords and ACTION_NOTIFY[action] in keywords


@dataclass
class ReportEnvelope:
    """The message a report is about (an OutboundMessage, or a message delivered locally)."""

    mail_from: str
    arrival: datetime
    ret: str = ""  # FULL / HDRS / ""
    envid: str = ""  # xtext


@dataclass
class ReportRecipient:
    address: str
    orcpt: str = ""  # "addr-type;xtext"
    reply: str = ""
    last_attempt_at: datetime | None = None
    created_at: datetime | None = None


def _report_envelope(message: OutboundMessage) -> ReportEnvelope:
    return ReportEnvelope(message.mail_from, message.created_at, message.dsn_ret, message.dsn_envid)


def _report_recipient(row: OutboundRecipient) -> ReportRecipient:
    return ReportRecipient(row.address, row.orcpt, row.last_reply, row.last_attempt_at, row.created_at)


def status_code(reply: str, action: str) -> str:
    """The RFC 3463 status for the report: the reply's enhanced code, else from its class."""
    match = _ENHANCED.search(reply)
    if match and match.group(1) == _STATUS_CLASS[action]:
        return ".".join(match.groups())
    if action in SUCCESS_ACTIONS:
        return "2.0.0"
    if action == "delayed":
        return "4.0.0"
    code = _REPLY_CODE.search(reply)
    return "5.0.0" if code is None or code.group(1) == "5" else "4.4.7"  # 4.4.7: gave up, message expired


def original_headers(raw: bytes) -> bytes:
    index = raw.find(b"\r\n\r\n")
    return raw if index < 0 else raw[: index + 2]


def is_international(raw: bytes) -> bool:
    """True for a message whose header section is UTF-8 (RFC 6532: it needed SMTPUTF8)."""
    return not original_headers(raw).isascii()


def is_delivery_report(raw: bytes) -> bool:
    return bool(_REPORT.search(original_headers(raw)))


def _field(text: str) -> str:
    return " ".join(text.split())[:MAX_DIAGNOSTIC]


def dsn_build(
    *,
    envelope: ReportEnvelope,
    recipients: Sequence[ReportRecipient],
    action: str,
    raw: bytes,
    now: datetime,
) -> bytes:
    """The multipart/report: human text, message/delivery-status, then the original (RET)."""
    hostname = settings.MAIL_HOSTNAME
    boundary = f"=_dsn_{uuid.uuid4().hex}"
    policy = RetryPolicy.from_settings()
    subject = SUBJECTS[action]
    human = [f"This is the mail system at {hostname}.", "", INTRODUCTIONS[action], ""]
    for r in recipients:
        human.append(f"<{r.address}>: {_field(r.reply) or 'no reply'}")
    if action == "delayed" and recipients:
        until = give_up_at(policy, recipients[0].created_at or envelope.arrival)
        human += ["", f"Delivery will be retried until {format_datetime(until)}."]
    per_message = [f"Reporting-MTA: dns; {hostname}"]
    if envelope.envid:
        per_message.append(f"Original-Envelope-Id: {_field(xtext_decode(envelope.envid))}")
    per_message.append(f"Arrival-Date: {format_datetime(envelope.arrival)}")
    blocks = [CRLF.join(per_message)]
    for r in recipients:
        lines = []
        if r.orcpt:
            lines.append(f"Original-Recipient: {_field(orcpt_decoded(r.orcpt))}")
        # RFC 6533 §3: an internationalised address is of type utf-8, in a global report.
        address_type = "rfc822" if r.address.isascii() else "utf-8"
        lines += [
            f"Final-Recipient: {address_type}; {r.address}",
            f"Action: {action}",
            f"Status: {status_code(r.reply, action)}",
        ]
        remote = r.reply.split(" said: ", 1)[0] if " said: " in r.reply else ""
        if remote:
            lines.append(f"Remote-MTA: dns; {_field(remote.split('[')[0])}")
        if r.reply:
            lines.append(f"Diagnostic-Code: smtp; {_field(r.reply.split(' said: ', 1)[-1])}")
        if r.last_attempt_at:
            lines.append(f"Last-Attempt-Date: {format_datetime(r.last_attempt_at)}")
        if action == "delayed":
            lines.append(f"Will-Retry-Until: {format_datetime(give_up_at(policy, r.created_at or envelope.arrival))}")
        blocks.append(CRLF.join(lines))
    status_body = (CRLF + CRLF).join(blocks) + CRLF
    # RFC 6533 §3, §6.3: the original of an internationalised message (UTF-8 header fields, RFC
    # 6532) comes back as message/global, or its header as message/global-headers; these, unlike
    # message/rfc822, may carry UTF-8 headers and may be base64-encoded for a 7-bit hop.
    international = is_international(raw)
    if envelope.ret.upper() == "FULL":
        third_type, third_body = ("message/global" if international else "message/rfc822"), raw
    else:
        third_type = "message/global-headers" if international else "text/rfc822-headers"
        third_body = original_headers(raw)
    head = CRLF.join(
        [
            f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
            f"To: <{envelope.mail_from}>",
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
    if status_body.isascii():
        status_head = f"Content-Type: message/delivery-status{CRLF}"
    else:
        status_head = f"Content-Type: message/global-delivery-status{CRLF}Content-Transfer-Encoding: 8bit{CRLF}"
    status_part = f"--{boundary}{CRLF}{status_head}{CRLF}" + status_body
    # RFC 2045 §6.1: no Content-Transfer-Encoding means 7bit. An 8-bit original must say 8bit
    # (RFC 2046 §5.2.1 allows it for message/rfc822, RFC 6532 §3.5 for message/global and
    # message/global-headers) so the relay sends the report with
    # BODY=8BITMIME, or re-encodes it for a hop without 8BITMIME (encoding.body_to_7bit).
    third_cte = f"Content-Transfer-Encoding: 8bit{CRLF}" if has_8bit(third_body) else ""
    third_head = f"--{boundary}{CRLF}Content-Type: {third_type}{CRLF}{third_cte}{CRLF}"
    text = preamble + CRLF + human_part + CRLF + status_part + CRLF + third_head
    return text.encode("utf-8") + third_body.rstrip(b"\r\n") + f"{CRLF}{CRLF}--{boundary}--{CRLF}".encode()


def dsn_send(
    *, message: OutboundMessage, recipients: Sequence[OutboundRecipient], action: str, now: datetime | None = None
) -> int:
    """Send one DSN for ``recipients`` of ``message`` when one is due; returns 1 if sent, else 0.

    Runs inside the caller's transaction (``outcomes_record``), so the status change and the
    notice commit together.
    """
    wanted = [r for r in recipients if wants_notice(r.notify, action)]
    if not message.mail_from or not wanted:
        return 0
    return report_send(
        envelope=_report_envelope(message), recipients=[_report_recipient(r) for r in wanted], action=action,
        raw=bytes(message.blob.data), now=now, about=f"outbound {message.pk}",
    )


def report_send(
    *, envelope: ReportEnvelope, recipients: Sequence[ReportRecipient], action: str, raw: bytes,
    now: datetime | None = None, about: str = "",
) -> int:
    """Build and submit one report (NOTIFY already checked by the caller); 1 if sent, else 0."""
    from .submit import message_submit

    if not envelope.mail_from or not recipients:
        return 0  # null sender: a bounce or similar; RFC 5321 §4.5.5 forbids answering it
    if is_delivery_report(raw):
        return 0
    report = dsn_build(envelope=envelope, recipients=recipients, action=action, raw=raw, now=now or timezone.now())
    result = message_submit(
        raw=report, mail_from="", recipients=[envelope.mail_from], smtputf8=not envelope.mail_from.isascii()
    )
    for address, reason in result.refused:
        # Nothing more can be done: a report about a report is never sent (RFC 5321 §4.5.5).
        log.warning("%s report for %s to <%s> not delivered: %s", action, about, address, reason)
    return 1
