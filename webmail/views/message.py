"""Reading: the conversation page, the sanitised body for the sandboxed iframe, attachments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from mailcore import store
from mailcore.models import Folder, Message

from .. import reading, selectors
from .common import account_of, mail_view
from .mailbox import _sidebar_context

INLINE_SALT = "webmail.inline-image"
INLINE_MAX_AGE = 24 * 3600
BODY_CSP = "default-src 'none'; img-src data: {images}; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"


@dataclass
class Shown:
    message: Message
    folders: list[Folder]
    collapsed: bool
    text: str = ""
    has_html: bool = False
    images_blocked: bool = False
    attachments: list[dict[str, Any]] = field(default_factory=list)


def _raw(message: Message) -> bytes:
    return bytes(message.blob.data)


def inline_url(request: HttpRequest, message: Message, content_id: str) -> str | None:
    for item in message.attachments or []:
        if isinstance(item, dict) and (item.get("content_id") or "") == content_id:
            token = signing.dumps([message.account_id, message.pk, str(item.get("part"))], salt=INLINE_SALT)
            return request.build_absolute_uri(reverse("inline_image", args=[token]))
    return None


def _clean_html(request: HttpRequest, message: Message, images: bool) -> tuple[str, bool] | None:
    if not message.html_part:
        return None
    html = reading.part_text(_raw(message), message.bodystructure, message.html_part)
    if html is None:
        return None
    return reading.sanitize_html(html, inline_url=lambda cid: inline_url(request, message, cid),
                                 allow_remote_images=images)


@require_GET
@mail_view
def message_view(request: HttpRequest, message_id: int) -> HttpResponse:
    account = account_of(request)
    message = selectors.message_for_user(account, message_id)
    thread = selectors.thread_for_user(account, message, whole=account.conversation_view)
    standings = selectors.standings_of(account, [message.pk])
    folder = None
    wanted = request.GET.get("folder", "")
    folder_ids = list(standings)
    if wanted.isdigit() and int(wanted) in standings:
        folder = selectors.folder_for_user(account, int(wanted))
    elif folder_ids:
        folder = selectors.folder_for_user(account, folder_ids[0])
    if folder is not None and not message.seen:
        store.flags_store(account=account, folder=folder, uids=standings[folder.pk], mode="add", flags=["\\Seen"])
        message.seen = True
    images = request.GET.get("images") == "1"
    newer = older = None
    if folder is not None:
        grouped = account.conversation_view and folder.special_use != Folder.SpecialUse.DRAFTS
        newer, older = selectors.neighbours(folder, message, conversations=grouped)
    # Read messages are collapsed, but for the one opened and the newest; only the others'
    # bodies are read.
    collapsed_ids = {item.pk for item in thread if item.pk != message.pk and item.seen and item.pk != thread[-1].pk}
    gone = selectors.blobs_attached([item for item in thread if item.pk not in collapsed_ids], known=[message])
    thread = [item for item in thread if item not in gone]  # deleted meanwhile, by another session
    shown: list[Shown] = []
    for item in thread:
        item_folders = [e.folder for e in item.entries.all()]
        collapsed = item.pk in collapsed_ids
        entry = Shown(message=item, folders=item_folders, collapsed=collapsed,
                      attachments=[a for a in item.attachments or [] if isinstance(a, dict)
                                   and a.get("disposition") != "inline"])
        if not collapsed:
            cleaned = _clean_html(request, item, images)
            entry.has_html = cleaned is not None
            entry.images_blocked = bool(cleaned and cleaned[1])
            if cleaned is None:
                entry.text = reading.plain_text_body(_raw(item), item.bodystructure, item.text_part, item.html_part)
        shown.append(entry)
    context = {
        **_sidebar_context(account, folder),
        "message": message,
        "thread": shown,
        "folder": folder,
        "images": images,
        "subject": message.subject or "(no subject)",
        "newer": newer,
        "older": older,
        # With conversation view, the toolbar acts on the whole conversation in this folder.
        "selection": f"t{message.thread_id}" if account.conversation_view and message.thread_id else str(message.pk),
        "flagged": any(item.message.flagged for item in shown) if account.conversation_view else message.flagged,
    }
    return render(request, "webmail/message.html", context)


@require_GET
@mail_view
def message_body(request: HttpRequest, message_id: int) -> HttpResponse:
    """The sanitised HTML body as its own document, for ``<iframe sandbox>``, under a CSP that
    forbids script, frames, forms and every fetch but our inline images (and remote images
    when the reader asked for them)."""
    account = account_of(request)
    message = selectors.message_for_user(account, message_id)
    images = request.GET.get("images") == "1"
    cleaned = _clean_html(request, message, images)
    if cleaned is None:
        text = reading.plain_text_body(_raw(message), message.bodystructure, message.text_part, message.html_part)
        body = f"<pre style=\"white-space:pre-wrap;font:14px/1.5 system-ui,sans-serif\">{escape(text)}</pre>"
    else:
        body = cleaned[0]
    document = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        "<style>body{margin:0;padding:8px;font:14px/1.5 system-ui,sans-serif;color:#202124;"
        "word-wrap:break-word}img{max-width:100%;height:auto}</style></head><body>"
        f"{body}</body></html>"
    )
    response = HttpResponse(document, content_type="text/html; charset=utf-8")
    own = request.build_absolute_uri(reverse("inline_image", args=["x"])).removesuffix("x/")
    response["Content-Security-Policy"] = BODY_CSP.format(images=f"{own} https: http:" if images else own)
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


def _part_response(message: Message, part: str, *, inline: bool) -> HttpResponse:
    item = selectors.attachment_of(message, part)
    if item is None:
        raise Http404("no such attachment")
    data = reading.part_bytes(_raw(message), message.bodystructure, part)
    if data is None:
        raise Http404("no such attachment")
    content_type = str(item.get("content_type") or "application/octet-stream")
    if inline and not content_type.startswith("image/"):
        raise Http404("not an image")
    if "\n" in content_type or "\r" in content_type or content_type.startswith("text/html"):
        content_type = "application/octet-stream"
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(not inline, str(item.get("filename") or "attachment")) or ""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
@mail_view
def attachment(request: HttpRequest, message_id: int, part: str) -> HttpResponse:
    message = selectors.message_for_user(account_of(request), message_id)
    return _part_response(message, part, inline=False)


@require_GET
def inline_image(request: HttpRequest, token: str) -> HttpResponse:
    """A ``cid:`` image of a message. Addressed by a signed token rather than the session:
    the sandboxed iframe has an opaque origin, so the browser sends it no SameSite cookie."""
    try:
        account_id, message_id, part = signing.loads(token, salt=INLINE_SALT, max_age=INLINE_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        raise Http404("no such image") from None
    message = Message.objects.select_related("blob").filter(pk=message_id, account_id=account_id).first()
    if message is None:
        raise Http404("no such image")
    return _part_response(message, str(part), inline=True)
