"""The mailbox: folders with counts, the message list, and actions on a selection."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from mailcore import store
from mailcore.models import Account, Folder

from .. import selectors
from ..conversations import participants, recipients_label
from ..listing import Row, RowBuilder, render_rows
from ..selectors import Cursor
from .common import account_of, hx_redirect, mail_view

SEEN = "\\Seen"
FLAGGED = "\\Flagged"


def _sidebar_context(account: Account, current: Folder | None,
                     folders: list[Folder] | None = None) -> dict[str, object]:
    folders = selectors.folders_for_account(account) if folders is None else folders
    return {"folders": folders, "current": current,
            "move_targets": [f for f in folders if f != current and not f.noselect]}


@require_GET
@mail_view
def index(request: HttpRequest) -> HttpResponseBase:
    inbox = selectors.special_folder(account_of(request), Folder.SpecialUse.INBOX)
    return redirect("folder", folder_id=inbox.pk)


def _list_context(request: HttpRequest, folder: Folder) -> dict[str, object]:
    account = account_of(request)
    after = Cursor.decode(request.GET.get("after"))
    drafts = folder.special_use == Folder.SpecialUse.DRAFTS
    # Drafts stay one row each (each is resumed on its own), as in Gmail.
    grouped = account.conversation_view and not drafts
    page = selectors.folder_page(folder, after=after, size=account.page_size, conversations=grouped)
    build = RowBuilder(folder.pk, drafts=drafts)
    rows: list[Row] = []
    if page.conversations:
        own = selectors.own_addresses(account)
        sent = folder.special_use == Folder.SpecialUse.SENT
        for conversation in page.conversations:
            conversation.names = (recipients_label(conversation.message.to_text) if sent
                                  else participants(conversation.senders, own))
            rows.append(build.conversation(conversation))
    elif not grouped:
        rows = [build.message(entry) for entry in page.entries]
    action_url = reverse("folder_action", args=[folder.pk])
    return {
        "folder": folder,
        "page": page,
        "rows": rows,
        "rows_html": render_rows(rows, action_url),
        "conversations": grouped,
        "action_url": action_url,
        "folder_url": reverse("folder", args=[folder.pk]),
        "after": after.encode() if after else "",
        "next_after": page.next_cursor.encode() if page.next_cursor else "",
        "is_trash": folder.special_use in (Folder.SpecialUse.TRASH, Folder.SpecialUse.JUNK),
        "is_drafts": drafts,
    }


@require_GET
@mail_view
def folder_view(request: HttpRequest, folder_id: int) -> HttpResponse:
    account = account_of(request)
    # The sidebar lists the account's folders: the one shown is among them (one query, not two).
    folders = selectors.folders_for_account(account)
    folder = next((f for f in folders if f.pk == folder_id), None)
    if folder is None:
        raise Http404("no such folder")
    context = {**_sidebar_context(account, folder, folders), **_list_context(request, folder)}
    return render(request, "webmail/folder.html", context)


@require_GET
@mail_view
def folder_list(request: HttpRequest, folder_id: int) -> HttpResponse:
    """The list alone, for paging and for live refresh after an event."""
    folder = selectors.folder_for_user(account_of(request), folder_id)
    return render(request, "webmail/_list.html", _list_context(request, folder))


@require_GET
@mail_view
def sidebar(request: HttpRequest) -> HttpResponse:
    account = account_of(request)
    current = None
    raw = request.GET.get("current", "")
    if raw.isdigit():
        current = next((f for f in selectors.folders_for_account(account) if f.pk == int(raw)), None)
    return render(request, "webmail/_sidebar.html", _sidebar_context(account, current))


def _move(account: Account, folder: Folder, uids: list[int], target: Folder) -> None:
    if target.pk != folder.pk:
        store.message_move(account=account, source=folder, uids=uids, target=target)


def _act_delete(account: Account, folder: Folder, uids: list[int], target: Folder | None) -> str:
    if folder.special_use == Folder.SpecialUse.TRASH:
        store.folder_expunge(account=account, folder=folder, uids=uids, only_deleted=False)
        return "Deleted forever."
    _move(account, folder, uids, selectors.special_folder(account, Folder.SpecialUse.TRASH))
    return "Moved to Trash."


def _act_forever(account: Account, folder: Folder, uids: list[int], target: Folder | None) -> str:
    store.folder_expunge(account=account, folder=folder, uids=uids, only_deleted=False)
    return "Deleted forever."


def _act_archive(account: Account, folder: Folder, uids: list[int], target: Folder | None) -> str:
    _move(account, folder, uids, selectors.special_folder(account, Folder.SpecialUse.ARCHIVE))
    return "Archived."


def _act_spam(account: Account, folder: Folder, uids: list[int], target: Folder | None) -> str:
    _move(account, folder, uids, selectors.special_folder(account, Folder.SpecialUse.JUNK))
    return "Reported as spam."


def _act_notspam(account: Account, folder: Folder, uids: list[int], target: Folder | None) -> str:
    _move(account, folder, uids, selectors.special_folder(account, Folder.SpecialUse.INBOX))
    return "Moved to Inbox."


def _act_move(account: Account, folder: Folder, uids: list[int], target: Folder | None) -> str:
    if target is None:
        raise Http404("no such folder")
    _move(account, folder, uids, target)
    return f"Moved to {target.name}."


def _flag_action(mode: str, flag: str, note: str) -> Callable[[Account, Folder, list[int], Folder | None], str]:
    def act(account: Account, folder: Folder, uids: list[int], target: Folder | None) -> str:
        store.flags_store(account=account, folder=folder, uids=uids, mode=mode, flags=[flag])  # type: ignore[arg-type]
        return note

    return act


ACTIONS: dict[str, Callable[[Account, Folder, list[int], Folder | None], str]] = {
    "read": _flag_action("add", SEEN, "Marked as read."),
    "unread": _flag_action("remove", SEEN, "Marked as unread."),
    "star": _flag_action("add", FLAGGED, "Starred."),
    "unstar": _flag_action("remove", FLAGGED, "Star removed."),
    "archive": _act_archive,
    "delete": _act_delete,
    "forever": _act_forever,
    "spam": _act_spam,
    "notspam": _act_notspam,
    "move": _act_move,
}
LEAVES_FOLDER = {"archive", "delete", "forever", "spam", "notspam", "move"}


@require_POST
@mail_view
def folder_action(request: HttpRequest, folder_id: int) -> HttpResponse:
    """Apply one action to the selected messages (``ids``: message ids) of this folder."""
    account = account_of(request)
    folder = selectors.folder_for_user(account, folder_id)
    action = ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        return HttpResponse("Unknown action.", status=400)
    # A selection names messages ("123" or "m123") and, in the conversation list, whole
    # threads ("t45"): every message of the thread in this folder.
    ids: list[int] = []
    threads: list[int] = []
    for value in request.POST.getlist("ids"):
        kind, number = (value[0], value[1:]) if value[:1] in ("m", "t") else ("m", value)
        if number.isdigit() and len(number) < 19:
            (threads if kind == "t" else ids).append(int(number))
    target = None
    if request.POST.get("target", "").isdigit():
        target = selectors.folder_for_user(account, int(request.POST["target"]))
        if target.noselect:
            return HttpResponse("That folder only holds other folders, not messages.", status=400)
    note = "Nothing selected."
    uids = selectors.entries_for_selection(account, folder, message_ids=ids, thread_ids=threads)
    if uids:
        try:
            with transaction.atomic():
                note = action(account, folder, uids, target)
        except store.FolderNotFound:
            # Deleted (or left as a \Noselect placeholder) since it was looked up: nothing moved.
            return HttpResponse("That folder no longer exists or holds no messages; nothing was changed.",
                                status=404)
    back = request.POST.get("back", "")
    # From a conversation page: a star shows there again; marking unread goes back to the list
    # (showing the message would mark it read again), as do the actions that move it away.
    shown = request.POST.get("message", "")
    shown_id = int(shown) if shown.isdigit() and len(shown) < 19 else (ids[0] if ids else None)
    if back == "message" and shown_id and request.POST.get("action") not in LEAVES_FOLDER | {"unread"}:
        return hx_redirect(request, reverse("message", args=[shown_id]) + f"?folder={folder.pk}")
    if getattr(request, "htmx", False) and back != "message":
        context = _list_context(request, folder)
        context["note"] = note
        return render(request, "webmail/_list.html", context)
    return hx_redirect(request, reverse("folder", args=[folder.pk]))


@require_POST
@mail_view
def folder_empty(request: HttpRequest, folder_id: int) -> HttpResponse:
    """Empty Trash or Junk: everything there is deleted for good."""
    account = account_of(request)
    folder = selectors.folder_for_user(account, folder_id)
    if folder.special_use not in (Folder.SpecialUse.TRASH, Folder.SpecialUse.JUNK):
        return HttpResponse("Only Trash and Junk can be emptied.", status=400)
    store.folder_expunge(account=account, folder=folder, only_deleted=False)
    return hx_redirect(request, reverse("folder", args=[folder.pk]))
