"""Building outgoing messages (sends and drafts) with the standard library: no ORM here."""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage

from mailcore.addresses import AddressError, normalize_address


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str = ""  # set for images the HTML shows with cid:


@dataclass
class Outgoing:
    from_name: str
    from_address: str
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    bcc: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    body: str = ""
    html: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    # Images the HTML part refers to by cid: (a quoted or forwarded original's), sent as
    # multipart/related beside it.
    related: list[Attachment] = field(default_factory=list)
    # Drafts: "<message id> <reply|forward>" of the quoted original (X-Draft-Quote).
    draft_quote: str = ""
    # Drafts keep address fields as typed when they do not parse yet.
    raw_fields: dict[str, str] = field(default_factory=dict)

    @property
    def recipients(self) -> list[str]:
        return list(dict.fromkeys(a for _, a in [*self.to, *self.cc, *self.bcc]))


DRAFT_FIELD_PREFIX = "X-Draft-"


class AddressListError(ValueError):
    pass


def _split_list(value: str) -> list[str]:
    """Split at commas and semicolons that are outside quotes and angle brackets."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = angle = False
    for ch in value:
        if ch == '"' and not angle:
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        if ch in ",;" and not quoted and not angle:
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current))
    return [p.strip() for p in pieces if p.strip()]


def parse_address_field(value: str) -> list[tuple[str, str]]:
    """"Ann <ann@x.test>, bob@y.test" → [(name, canonical address)]; AddressListError names the bad one."""
    out: list[tuple[str, str]] = []
    for piece in _split_list(value):
        name, address = email.utils.parseaddr(piece)
        if not address or "@" not in address or (" " in piece and "<" not in piece and "@" not in name
                                                   and piece != address):
            raise AddressListError(f"“{piece}” is not a valid email address")
        try:
            out.append((name, normalize_address(address)))
        except AddressError:
            raise AddressListError(f"“{piece}” is not a valid email address") from None
    return out


def _header_address(name: str, address: str) -> Address:
    local, _, domain = address.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def make_message_id(hostname: str) -> str:
    return email.utils.make_msgid(domain=hostname)


def build_message(
    outgoing: Outgoing, *, message_id: str, date: datetime, include_bcc: bool = False
) -> bytes:
    """RFC 5322 bytes with CRLF line ends. Bcc is written only into drafts (``include_bcc``)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = _header_address(outgoing.from_name, outgoing.from_address)
    if outgoing.to:
        msg["To"] = [_header_address(n, a) for n, a in outgoing.to]
    if outgoing.cc:
        msg["Cc"] = [_header_address(n, a) for n, a in outgoing.cc]
    if include_bcc and outgoing.bcc:
        msg["Bcc"] = [_header_address(n, a) for n, a in outgoing.bcc]
    for name, text in outgoing.raw_fields.items():
        if name not in msg and text.strip():
            flat = text.replace("\r", " ").replace("\n", " ")
            try:
                msg[name] = flat
            except (ValueError, TypeError, IndexError):
                # The stdlib address parser gives up on some half-typed values ("bob@"): keep
                # them as typed in an unstructured field that the draft is resumed from.
                msg[f"{DRAFT_FIELD_PREFIX}{name}"] = flat
    msg["Subject"] = outgoing.subject.replace("\r", " ").replace("\n", " ")
    msg["Date"] = email.utils.format_datetime(date)
    msg["Message-ID"] = message_id
    if outgoing.in_reply_to:
        msg["In-Reply-To"] = f"<{outgoing.in_reply_to}>"
    if outgoing.references:
        msg["References"] = " ".join(f"<{r}>" for r in outgoing.references)
    if include_bcc and outgoing.draft_quote:
        msg[f"{DRAFT_FIELD_PREFIX}Quote"] = outgoing.draft_quote
    msg["MIME-Version"] = "1.0"
    msg.set_content(outgoing.body.replace("\r\n", "\n"))
    if outgoing.html:
        msg.add_alternative(outgoing.html, subtype="html")
        html_part = msg.get_payload()[1]  # type: ignore[index]
        assert isinstance(html_part, EmailMessage)
        for image in outgoing.related:
            maintype, _, subtype = image.content_type.partition("/")
            if maintype != "image" or not subtype or "\n" in image.content_type:
                continue
            html_part.add_related(image.data, maintype=maintype, subtype=subtype,
                                  cid=f"<{image.content_id}>", filename=image.filename, disposition="inline")
    for item in outgoing.attachments:
        maintype, _, subtype = item.content_type.partition("/")
        if not subtype or "\n" in item.content_type:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.filename)
    return msg.as_bytes(policy=email.policy.SMTP)


def reply_subject(subject: str) -> str:
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def forward_subject(subject: str) -> str:
    return subject if subject[:4].lower() in ("fwd:", "fw: ") else f"Fwd: {subject}"


def format_addresses(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(email.utils.formataddr((n, a)) if n else a for n, a in pairs)
