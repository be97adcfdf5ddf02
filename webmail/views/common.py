"""What every mail view shares: login, the reader's time zone, the sidebar."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from typing import Any, cast

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.utils import timezone

from mailcore.models import Account

View = Callable[..., HttpResponseBase]


def account_of(request: HttpRequest) -> Account:
    return cast(Account, request.user)


def mail_view(view: View) -> View:
    """Signed-in mailbox owners only; dates shown in the account's time zone."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated and getattr(request, "htmx", False):
            # An expired session under an htmx request: navigate the whole page to sign in
            # rather than swapping the sign-in form into the list.
            response = HttpResponse(status=401)
            response["HX-Redirect"] = redirect_to_login(request.get_full_path()).url
            return response
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        account = account_of(request)
        if account.domain_id is None:
            return redirect("admin:index")  # an operator login owns no mailbox
        try:
            timezone.activate(zoneinfo.ZoneInfo(account.time_zone or "UTC"))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.activate(zoneinfo.ZoneInfo("UTC"))
        try:
            return view(request, *args, **kwargs)
        finally:
            timezone.deactivate()

    return wrapper


def hx_redirect(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect that htmx follows as a full navigation, and plain forms as a 302."""
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return cast(HttpResponse, redirect(url))
