"""Sign in with the full address and password; sign out."""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from mailcore.auth import LoginThrottle

from ..forms import LoginForm

FAILED = "That address and password do not match an account."
THROTTLED = "Too many failed sign-ins. Wait a few minutes and try again."


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        next_url = "/"
    if request.user.is_authenticated and request.method == "GET":
        return redirect(next_url)
    form = LoginForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        throttle = LoginThrottle()
        address = form.cleaned_data["address"]
        ip = _client_ip(request)
        if throttle.is_blocked(ip, address):
            error = THROTTLED
        else:
            account = authenticate(request, username=address, password=form.cleaned_data["password"])
            if account is None:
                throttle.record_failure(ip, address)
                error = FAILED
            else:
                throttle.record_success(ip, address)
                login(request, account)
                return redirect(next_url)
    status = 400 if error else 200
    return render(request, "webmail/login.html", {"form": form, "error": error, "next": next_url}, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")
