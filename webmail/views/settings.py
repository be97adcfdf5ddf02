"""Settings: preferences, password, folders."""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth import update_session_auth_hash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from mailcore import store
from mailcore.models import Account, Folder

from .. import selectors
from ..forms import FolderCreateForm, FolderRenameForm, PasswordChangeForm, SettingsForm
from .common import account_of, mail_view
from .mailbox import _sidebar_context


def _page(request: HttpRequest, account: Account, *, prefs: SettingsForm | None = None,
          password: PasswordChangeForm | None = None, folder_form: FolderCreateForm | None = None,
          status: int = 200) -> HttpResponse:
    prefs = prefs or SettingsForm(initial={
        "display_name": account.display_name, "signature": account.signature, "page_size": account.page_size,
        "conversation_view": account.conversation_view, "time_zone": account.time_zone,
        "keyboard_shortcuts": account.keyboard_shortcuts,
    })
    context = {
        **_sidebar_context(account, None),
        "prefs": prefs,
        "password_form": password or PasswordChangeForm(),
        "folder_form": folder_form or FolderCreateForm(),
        "user_folders": [f for f in selectors.folders_for_account(account) if not f.special_use],
    }
    return render(request, "webmail/settings.html", context, status=status)


@require_http_methods(["GET", "POST"])
@mail_view
def settings_view(request: HttpRequest) -> HttpResponse:
    account = account_of(request)
    if request.method == "GET":
        return _page(request, account)
    form = SettingsForm(request.POST)
    if not form.is_valid():
        return _page(request, account, prefs=form, status=400)
    try:
        store.account_preferences_set(account=account, **form.cleaned_data)
    except store.StoreError as exc:
        form.add_error(None, str(exc))
        return _page(request, account, prefs=form, status=400)
    flash.success(request, "Settings saved.")
    return redirect("settings")


@require_POST
@mail_view
def password_change(request: HttpRequest) -> HttpResponse:
    account = account_of(request)
    form = PasswordChangeForm(request.POST)
    if form.is_valid() and not account.check_password(form.cleaned_data["current"]):
        form.add_error("current", "That is not your current password.")
    if not form.is_valid():
        return _page(request, account, password=form, status=400)
    store.account_set_password(account=account, password=form.cleaned_data["new"])
    update_session_auth_hash(request, account)
    flash.success(request, "Password changed.")
    return redirect("settings")


@require_POST
@mail_view
def folder_create(request: HttpRequest) -> HttpResponse:
    account = account_of(request)
    form = FolderCreateForm(request.POST)
    if form.is_valid():
        name = form.cleaned_data["name"].strip()
        parent_id = form.cleaned_data.get("parent")
        if parent_id:
            name = selectors.folder_for_user(account, parent_id).name + Folder.DELIMITER + name
        try:
            store.folder_create(account=account, name=name)
        except store.StoreError as exc:
            form.add_error("name", str(exc).capitalize() + ".")
    if not form.is_valid():
        return _page(request, account, folder_form=form, status=400)
    flash.success(request, f"Folder {name} created.")
    return redirect("settings")


@require_POST
@mail_view
def folder_rename(request: HttpRequest, folder_id: int) -> HttpResponse:
    account = account_of(request)
    folder = selectors.folder_for_user(account, folder_id)
    form = FolderRenameForm(request.POST)
    if folder.special_use:
        flash.error(request, "Special folders keep their names.")
    elif form.is_valid():
        try:
            store.folder_rename(account=account, folder=folder, new_name=form.cleaned_data["name"].strip())
            flash.success(request, "Folder renamed.")
        except store.StoreError as exc:
            flash.error(request, str(exc).capitalize() + ".")
    return redirect("settings")


@require_POST
@mail_view
def folder_delete(request: HttpRequest, folder_id: int) -> HttpResponse:
    account = account_of(request)
    folder = selectors.folder_for_user(account, folder_id)
    if folder.special_use:
        flash.error(request, "Special folders cannot be deleted.")
    else:
        store.folder_delete(account=account, folder=folder, recursive=True)
        flash.success(request, f"Folder {folder.name} and everything in it deleted.")
    return redirect("settings")
