# TEMPORARY STUB (not to be committed)
from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Address:
    name: str
    email: str

@dataclass
class ParsedMessage:
    subject: str = ""
    from_: list = field(default_factory=list)
    sender: list = field(default_factory=list)
    reply_to: list = field(default_factory=list)
    to: list = field(default_factory=list)
    cc: list = field(default_factory=list)
    bcc: list = field(default_factory=list)
    date: datetime | None = None
    message_id: str = ""
    in_reply_to: list = field(default_factory=list)
    references: list = field(default_factory=list)
    thread_subject: str = ""
    header_size: int = 0
    envelope: list = field(default_factory=list)
    bodystructure: dict = field(default_factory=dict)
    attachments: list = field(default_factory=list)
    has_attachments: bool = False
    preview: str = ""
    text: str = ""
    html_part: str | None = None
    text_part: str | None = None

def parse_message(raw: bytes) -> ParsedMessage:
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    subj = str(m.get("Subject", ""))
    frm = [Address(n, e) for n, e in email.utils.getaddresses([str(x) for x in m.get_all("From", [])])]
    to = [Address(n, e) for n, e in email.utils.getaddresses([str(x) for x in m.get_all("To", [])])]
    mid = str(m.get("Message-ID", "")).strip().strip("<>")
    irt = [x.strip("<>") for x in str(m.get("In-Reply-To", "")).split()]
    refs = [x.strip("<>") for x in str(m.get("References", "")).split()]
    i = raw.find(b"\r\n\r\n")
    body = raw[i+4:] if i >= 0 else b""
    return ParsedMessage(subject=subj, from_=frm, to=to, message_id=mid, in_reply_to=irt, references=refs,
        thread_subject=subj.lower().removeprefix("re: "), header_size=i+4 if i>=0 else len(raw),
        preview=body[:200].decode("utf-8","replace"), text=body.decode("utf-8","replace"))
