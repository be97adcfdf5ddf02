"""Composing: new, reply, reply all, forward; drafts saved as you type; send."""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from django.conf import settings
from django.contrib import messages as flash
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.http import require_http_methods, require_POST

from mailcore import store
from mailcore.models import Account, Folder, Message
from mailcore.relay.submit import message_submit

from .. import reading, selectors
from ..forms import ComposeForm, attachment_limit
from ..outgoing import (
    DRAFT_FIELD_PREFIX,
    Attachment,
    Outgoing,
    build_message,
    format_addresses,
    forward_subject,
    make_message_id,
    reply_subject,
)
from .common import account_of, hx_redirect, mail_view
from .mailbox import _sidebar_context

DRAFT_FLAGS = ["\\Draft", "\\Seen"]


class SendRefused(Exception):
    pass


def _kept_attachments(account: Account, source_id: int | None, parts: list[str]) -> list[Attachment]:
    if not source_id or not parts:
        return []
    source = Message.objects.select_related("blob").filter(pk=source_id, account=account).first()
    if source is None:
        return []
    raw = bytes(source.blob.data)
    out = []
    for part in parts:
        item = selectors.attachment_of(source, part)
        data = reading.part_bytes(raw, source.bodystructure, part) if item else None
        if item is not None and data is not None:
            out.append(Attachment(filename=str(item.get("filename") or "attachment"),
                                  content_type=str(item.get("content_type") or "application/octet-stream"),
                                  data=data))
    return out


QUOTE_MODES = ("reply", "forward")


@dataclass
class Quote:
    """What a reply or forward carries of its original, in both renderings."""

    message: Message
    mode: str
    intro: list[str]  # the attribution line, or the forwarded headers block
    plain: str  # appended to the text: "On ..., ... wrote:" and "> " lines, or headers and text
    html: str  # appended to the HTML: a blockquote under the attribution, or headers and original
    related: list[Attachment]  # the original's cid: images the HTML shows


def _sender_of(message: Message) -> str:
    return email.utils.formataddr((message.from_name, message.from_email)) if message.from_name else message.from_email


def quote_of(account: Account, message_id: int | None, mode: str) -> Quote | None:
    """The quote of one of ``account``'s messages (None for anything else)."""
    if not message_id or mode not in QUOTE_MODES:
        return None
    original = Message.objects.select_related("blob").filter(pk=message_id, account=account).first()
    if original is None:
        return None
    raw = bytes(original.blob.data)
    text = reading.plain_text_body(raw, original.bodystructure, original.text_part, original.html_part)
    html_source = reading.part_text(raw, original.bodystructure, original.html_part) if original.html_part else None
    original_html = reading.quotable_html(html_source) if html_source is not None else reading.text_as_html(text)
    when = timezone.localtime(original.date or original.received_at).strftime("%a, %d %b %Y at %H:%M")
    if mode == "forward":
        intro = ["---------- Forwarded message ---------", f"From: {_sender_of(original)}", f"Date: {when}",
                 f"Subject: {original.subject}", f"To: {original.to_text}"]
        if original.cc_text:
            intro.append(f"Cc: {original.cc_text}")
        plain = "\n".join(intro) + f"\n\n{text}"
        html = reading.forward_html(original_html, intro)
    else:
        intro = [f"On {when}, {_sender_of(original)} wrote:"]
        plain = f"{intro[0]}\n{reading.quote_text(text)}\n"
        html = reading.quote_html(original_html, intro[0])
    related = []
    if html_source is not None:
        for item in original.attachments or []:
            if (isinstance(item, dict) and item.get("content_id") and str(item.get("content_type", "")).startswith("image/")
                    and f"cid:{item['content_id']}" in original_html):
                data = reading.part_bytes(raw, original.bodystructure, str(item.get("part")))
                if data is not None:
                    related.append(Attachment(filename=str(item.get("filename") or "image"),
                                              content_type=str(item["content_type"]), data=data,
                                              content_id=str(item["content_id"])))
    return Quote(message=original, mode=mode, intro=intro, plain=plain, html=html, related=related)


def _outgoing(account: Account, form: ComposeForm, uploads: list[UploadedFile], kept: list[Attachment]) -> Outgoing:
    data = form.cleaned_data
    references = [r.strip("<>") for r in (data.get("references") or "").split() if r.strip("<>")]
    files = [Attachment(filename=f.name or "attachment", content_type=f.content_type or "application/octet-stream",
                        data=f.read()) for f in uploads]
    outgoing = Outgoing(
        from_name=account.display_name, from_address=account.address,
        to=data.get("to") or [], cc=data.get("cc") or [], bcc=data.get("bcc") or [],
        subject=data.get("subject") or "", body=data.get("body") or "", html=data.get("html") or "",
        in_reply_to=(data.get("in_reply_to") or "").strip("<> "), references=references,
        attachments=kept + files, raw_fields=dict(form.raw_fields),
    )
    # Rich text: the quote travels by reference and is appended here, to both renderings (in
    # plain text it is in the Message field itself, where it can be trimmed).
    quote = quote_of(account, data.get("quote"), data.get("quote_mode") or "")
    if quote is not None:
        outgoing.body = f"{outgoing.body.rstrip()}\n\n{quote.plain}"
        outgoing.html = f"{outgoing.html}<br>{quote.html}"
        outgoing.related = quote.related
        outgoing.draft_quote = f"{quote.message.pk} {quote.mode}"
    return outgoing


def _draft_save(account: Account, outgoing: Outgoing, replaces: int | None) -> Message:
    """Append the new draft, then expunge the one it replaces: IMAP clients see an ordinary
    message in Drafts that changes UID as it is edited."""
    drafts = selectors.special_folder(account, Folder.SpecialUse.DRAFTS)
    raw = build_message(outgoing, message_id=make_message_id(settings.MAIL_HOSTNAME), date=timezone.now(),
                        include_bcc=True)
    with transaction.atomic():
        appended = store.message_append(account=account, folder=drafts, raw=raw, flags=DRAFT_FLAGS)
        if replaces:
            old = selectors.entries_for_messages(account, drafts, [replaces])
            if old:
                store.folder_expunge(account=account, folder=drafts, uids=old, only_deleted=False)
    return Message.objects.get(pk=appended.message_id)


def _draft_parts(message: Message) -> str:
    return ",".join(str(a.get("part")) for a in message.attachments or []
                    if isinstance(a, dict) and a.get("disposition") != "inline")


def _kept_size(account: Account, post: Any) -> int:
    source = post.get("keep_from", "")
    parts = [p for p in post.get("keep", "").split(",") if p]
    if not source.isdigit() or not parts:
        return 0
    message = Message.objects.filter(pk=int(source), account=account).only("attachments").first()
    if message is None:
        return 0
    return sum(int(a.get("size") or 0) for a in message.attachments or []
               if isinstance(a, dict) and str(a.get("part")) in parts)


def _initial_for(account: Account, request: HttpRequest) -> dict[str, Any]:
    """Prefilled fields for a reply, reply all, forward or a resumed draft."""
    signature = f"\n\n-- \n{account.signature}" if account.signature else ""
    get = request.GET
    for key in ("reply", "forward", "draft"):
        value = get.get(key, "")
        if value.isdigit():
            original = (selectors.draft_for_user if key == "draft" else selectors.message_for_user)(account, int(value))
            break
    else:
        return {"body": signature, "to": get.get("to", "")}
    raw = bytes(original.blob.data)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    if key == "draft":
        html_part = parsed.get_body(preferencelist=("html",))
        html = html_part.get_content() if isinstance(html_part, EmailMessage) and html_part.get_content_subtype() == "html" else ""
        body_part = parsed.get_body(preferencelist=("plain",))
        body = body_part.get_content().replace("\r\n", "\n").removesuffix("\n") if isinstance(body_part, EmailMessage) else ""
        resumed: dict[str, Any] = {}
        quoted_id, _, quoted_mode = str(parsed.get(DRAFT_FIELD_PREFIX + "Quote") or "").strip().partition(" ")
        if html and quoted_id.isdigit() and quote_of(account, int(quoted_id), quoted_mode) is not None:
            # The quote is appended again when sent: the editor gets only what was typed.
            html = html.partition(reading.QUOTE_MARK)[0].removesuffix("<br>")
            resumed = {"quote": int(quoted_id), "quote_mode": quoted_mode}
        return {
            **{name.lower(): str(parsed.get(name) or parsed.get(DRAFT_FIELD_PREFIX + name) or "")
               for name in ("To", "Cc", "Bcc")},
            "subject": str(parsed.get("Subject", "")), "body": body, "html": html,
            "in_reply_to": str(parsed.get("In-Reply-To", "")).strip().strip("<>"),
            "references": str(parsed.get("References", "")),
            "draft": original.pk, "keep_from": original.pk, "keep": _draft_parts(original), **resumed,
        }
    mode = "forward" if key == "forward" else "reply"
    quote = quote_of(account, original.pk, mode)
    assert quote is not None
    # An HTML original is answered in rich text, quoting its HTML; the plain-text field holds
    # the "> " quote for when the writer switches rich text off.
    rich: dict[str, Any] = {}
    if original.html_part:
        signature_html = ("<div>-- <br>" + "<br>".join(escape(line) for line in account.signature.splitlines())
                          + "</div>") if account.signature else ""
        rich = {"html": f"<div><br></div>{signature_html}", "quote": original.pk, "quote_mode": mode}
    if key == "forward":
        return {
            "subject": forward_subject(original.subject), "body": f"{signature}\n\n{quote.plain}",
            "keep_from": original.pk, "keep": _draft_parts(original), **rich,
        }
    reply_to = email.utils.getaddresses([str(v) for v in parsed.get_all("Reply-To", [])])
    own = selectors.own_addresses(account)
    to_pairs = [(n, a) for n, a in reply_to if a] or [(original.from_name, original.from_email)]
    if original.from_email.lower() in own and not reply_to:
        # Replying to one's own message (from Sent) goes to its recipients, as in Gmail.
        to_pairs = [(n, a) for n, a in email.utils.getaddresses([str(v) for v in parsed.get_all("To", [])])
                    if a and a.lower() not in own] or to_pairs
    to_pairs = _dedupe(to_pairs, set())
    cc_pairs: list[tuple[str, str]] = []
    if get.get("all") == "1":
        taken = {a.lower() for _, a in to_pairs} | own
        cc_pairs = _dedupe(email.utils.getaddresses([str(v) for v in parsed.get_all("To", []) + parsed.get_all("Cc", [])]),
                           taken)
    references = [*(original.references or []), original.message_id] if original.message_id else list(original.references or [])
    return {
        "to": format_addresses(to_pairs), "cc": format_addresses(cc_pairs),
        "subject": reply_subject(original.subject),
        "body": f"{signature}\n\n{quote.plain}",
        "in_reply_to": original.message_id,
        "references": " ".join(f"<{r}>" for r in dict.fromkeys(references) if r),
        **rich,
    }


def _dedupe(pairs: list[tuple[str, str]], taken: set[str]) -> list[tuple[str, str]]:
    """Addresses once each (case-insensitively), none of ``taken`` (which grows)."""
    out = []
    for name, address in pairs:
        if address and address.lower() not in taken:
            taken.add(address.lower())
            out.append((name, address))
    return out


def _render(request: HttpRequest, form: ComposeForm, *, status: int = 200, note: str = "",
            warning: str = "") -> HttpResponse:
    account = account_of(request)
    keep_from = form["keep_from"].value()
    kept: list[dict[str, Any]] = []
    keep_parts = [p for p in str(form["keep"].value() or "").split(",") if p]
    if keep_from and str(keep_from).isdigit() and keep_parts:
        source = Message.objects.filter(pk=int(keep_from), account=account).only("attachments").first()
        if source is not None:
            kept = [a for a in source.attachments or [] if isinstance(a, dict) and str(a.get("part")) in keep_parts]
    # Whatever reaches the editor is cleaned again here: a draft may be any message someone
    # moved into Drafts, and this page runs in our own origin.
    editor_html = reading.compose_html_clean(str(form["html"].value() or ""))
    quote_id = form["quote"].value()
    quote = quote_of(account, int(quote_id), str(form["quote_mode"].value() or "")) \
        if quote_id and str(quote_id).isdigit() and len(str(quote_id)) < 19 else None
    context = {"form": form, "kept": kept, "limit": attachment_limit(), "note": note, "editor_html": editor_html,
               "quote": quote, "warning": warning}
    if getattr(request, "htmx", False):
        return render(request, "webmail/_compose_form.html", context, status=200)
    context.update(_sidebar_context(account, None))
    return render(request, "webmail/compose.html", context, status=status)


@require_http_methods(["GET", "POST"])
@mail_view
def compose(request: HttpRequest) -> HttpResponse:
    account = account_of(request)
    if request.method == "GET":
        try:
            initial = _initial_for(account, request)
        except Http404:
            # Deleted meanwhile, perhaps from another device (or never this account's: the
            # same answer, so nothing tells whether another account's message exists).
            signature = f"\n\n-- \n{account.signature}" if account.signature else ""
            return _render(request, ComposeForm(initial={"body": signature}), status=404,
                           warning=GONE_ON_OPEN["draft" if request.GET.get("draft") else
                                                "forward" if request.GET.get("forward") else "reply"])
        return _render(request, ComposeForm(initial=initial))
    form = ComposeForm(request.POST, request.FILES, kept_size=_kept_size(account, request.POST))
    if not form.is_valid():
        return _keep_typed(request, form)
    data = form.cleaned_data
    lost = _lost_originals(account, data)
    if lost:
        return _send_without_originals(request, lost)
    kept = _kept_attachments(account, data.get("keep_from"), data.get("keep") or [])
    outgoing = _outgoing(account, form, data.get("attachments") or [], kept)
    raw = build_message(outgoing, message_id=make_message_id(settings.MAIL_HOSTNAME), date=timezone.now())
    if len(raw) > settings.MAX_MESSAGE_SIZE:
        form.add_error("attachments", "The message is larger than the server accepts; remove an attachment.")
        return _render(request, form, status=400)
    try:
        with transaction.atomic():
            result = message_submit(raw=raw, mail_from=account.address, recipients=outgoing.recipients,
                                    account=account)
            if result.refused:
                raise SendRefused("; ".join(f"{address}: {reason}" for address, reason in result.refused))
            sent = selectors.special_folder(account, Folder.SpecialUse.SENT)
            store.message_append(account=account, folder=sent, raw=raw, flags=["\\Seen"])
            answered = bool(outgoing.in_reply_to) and _mark_answered(account, outgoing.in_reply_to)
            if data.get("draft"):
                drafts = selectors.special_folder(account, Folder.SpecialUse.DRAFTS)
                old = selectors.entries_for_messages(account, drafts, [data["draft"]])
                if old:
                    store.folder_expunge(account=account, folder=drafts, uids=old, only_deleted=False)
    except SendRefused as exc:
        form.add_error("to", f"Not sent: {exc}")
        return _render(request, form, status=400)
    except (store.QuotaExceeded, store.MessageTooLarge) as exc:
        form.add_error(None, f"Not sent: {exc}.")
        return _render(request, form, status=400)
    queued = len(result.queued)
    note = "Message sent." if not queued else f"Message sent ({queued} remote recipient(s) queued)."
    if outgoing.in_reply_to and not answered:
        note += " The message it answers is no longer in your mailbox, so it was not marked as answered."
    flash.success(request, note)
    inbox = selectors.special_folder(account, Folder.SpecialUse.INBOX)
    return hx_redirect(request, reverse("folder", args=[inbox.pk]))


def _keep_typed(request: HttpRequest, form: ComposeForm) -> HttpResponse:
    """A send refused for bad input: keep everything, uploaded files included (saved as a draft)."""
    if request.FILES.getlist("attachments") and "attachments" not in form.errors:
        form = _form_keeping_uploads(request, request.POST.copy()) or form
    return _render(request, form, status=400)


def _form_keeping_uploads(request: HttpRequest, values: QueryDict) -> ComposeForm | None:
    """Files cannot be handed back to the browser: save them with the rest of ``values`` as a
    draft, and return the form over that draft (None if the values do not make a draft)."""
    account = account_of(request)
    draft_form = ComposeForm(values, sending=False)
    if not draft_form.is_valid():
        return None
    data = draft_form.cleaned_data
    kept = _kept_attachments(account, data.get("keep_from"), data.get("keep") or [])
    uploads = list(request.FILES.getlist("attachments"))
    draft = _draft_save(account, _outgoing(account, draft_form, uploads, kept), data.get("draft"))
    values["draft"] = str(draft.pk)
    values["keep_from"] = str(draft.pk)
    values["keep"] = _draft_parts(draft)
    form = ComposeForm(values, kept_size=_kept_size(account, values))
    form.is_valid()  # the same refusal, now over the saved draft's values
    return form


GONE_ON_OPEN = {
    "reply": "The message you wanted to reply to no longer exists: it was deleted, perhaps from another "
             "device. You can still write a new message here.",
    "forward": "The message you wanted to forward no longer exists: it was deleted, perhaps from another "
               "device. You can still write a new message here.",
    "draft": "That draft no longer exists: it was sent or deleted, perhaps from another device.",
}


@dataclass
class Lost:
    """What a reply or forward can no longer carry because a message it takes them from was
    deleted after the editor opened (perhaps from another device)."""

    quote: str = ""  # "reply" or "forward": the original quoted by reference (rich text) is gone
    attachments: int = 0  # attachments kept from a message that is gone ...
    from_draft: bool = False  # ... which was this very draft (sent or deleted elsewhere)

    def __bool__(self) -> bool:
        return bool(self.quote or self.attachments)

    def explain(self) -> str:
        gone = []
        files = "1 attachment" if self.attachments == 1 else f"{self.attachments} attachments"
        with_quote = self.attachments and not self.from_draft  # the quoted original held them
        if self.quote:
            whose, what = ("you are forwarding", "the forwarded message") if self.quote == "forward" else \
                ("you are answering", "the quoted text")
            what += f" and its {files}" if with_quote else ""
            gone.append(f"the message {whose} was deleted after you opened it, perhaps from another device, "
                        f"so {what} can no longer be included")
        if self.attachments and not (self.quote and with_quote):
            source = "this draft was sent or deleted elsewhere" if self.from_draft else \
                "the message you are forwarding was deleted after you opened it, perhaps from another device"
            gone.append(f"{source}, so its {files} can no longer be included")
        return f"Not sent: {'; '.join(gone)}. Everything you wrote is kept here: press Send again to send it without."


def _lost_originals(account: Account, data: dict[str, Any]) -> Lost:
    lost = Lost()
    quote_id, mode = data.get("quote"), data.get("quote_mode") or ""
    if quote_id and mode in QUOTE_MODES and not Message.objects.filter(pk=quote_id, account=account).exists():
        lost.quote = mode
    keep_from, keep = data.get("keep_from"), data.get("keep") or []
    if keep_from and keep and not Message.objects.filter(pk=keep_from, account=account).exists():
        lost.attachments = len(keep)
        lost.from_draft = keep_from == data.get("draft")
    return lost


def _send_without_originals(request: HttpRequest, lost: Lost) -> HttpResponse:
    """Refuse this Send once, saying what is gone, with the form as typed minus what is gone:
    the next Send goes without it. In-Reply-To and References stay: they are only Message-IDs,
    and the recipients' copies still thread by them."""
    values = request.POST.copy()
    if lost.quote:
        values["quote"] = values["quote_mode"] = ""
    if lost.attachments:
        values["keep"] = values["keep_from"] = ""
    form = None
    if request.FILES.getlist("attachments"):
        form = _form_keeping_uploads(request, values)
    if form is None:
        form = ComposeForm(values, kept_size=_kept_size(account_of(request), values))
        form.is_valid()
    form.add_error(None, lost.explain())
    return _render(request, form, status=409)


def _mark_answered(account: Account, message_id: str) -> bool:
    """Flag the answered message \\Answered; False when it is no longer in the mailbox."""
    original = Message.objects.filter(account=account, message_id=message_id).values_list("pk", flat=True).first()
    if original is None:
        return False
    for folder_id, uids in selectors.standings_of(account, [original]).items():
        folder = selectors.folder_for_user(account, folder_id)
        store.flags_store(account=account, folder=folder, uids=uids, mode="add", flags=["\\Answered"])
        break
    return True


@require_POST
@mail_view
def draft_save(request: HttpRequest) -> JsonResponse:
    """Autosave: the form as it stands (without new uploads) replaces the previous draft."""
    account = account_of(request)
    form = ComposeForm(request.POST, sending=False)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    data = form.cleaned_data
    kept = _kept_attachments(account, data.get("keep_from"), data.get("keep") or [])
    draft = _draft_save(account, _outgoing(account, form, [], kept), data.get("draft"))
    return JsonResponse({
        "draft": draft.pk, "keep_from": draft.pk, "keep": _draft_parts(draft),
        "saved_at": timezone.localtime().strftime("%H:%M:%S"),
    })
