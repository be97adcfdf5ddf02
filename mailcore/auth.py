"""Login by full address, shared by the web, SMTP AUTH, IMAP and POP3, with throttling.

Failures are counted in Redis per client address and per account over a sliding window, so
every mail process and the web see the same counts. Past the limit a login is refused without
even checking the password (and the protocol says so with its own reply).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from mailcore.addresses import AddressError, normalize_address
from mailcore.models import Account
from mailcore.redis_client import shared_redis

log = logging.getLogger(__name__)


class AddressBackend(ModelBackend):
    """Django authentication backend: ``username`` is the full address, in any case or IDN form."""

    def authenticate(  # type: ignore[override]
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Account | None:
        if username is None:
            username = kwargs.get(Account.USERNAME_FIELD)
        if not username or password is None:
            return None
        try:
            address = normalize_address(username)
        except AddressError:
            return None
        try:
            account = Account.objects.get(address=address)
        except Account.DoesNotExist:
            Account().set_password(password)  # same work as a real check: no timing oracle
            return None
        if account.check_password(password) and self.user_can_authenticate(account):
            return account
        return None


# A successful check is remembered briefly in this process, keyed by a keyed hash of the
# password and the stored hash, so that mail clients that log in for every poll do not pay
# for Argon2 each time; a password change alters the stored hash and so the key.
_VERIFIED: dict[tuple[int, str], float] = {}
_VERIFIED_LOCK = threading.Lock()
_VERIFIED_TTL = 300.0


def _verified_key(account: Account, password: str) -> tuple[int, str]:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{account.password}\0{password}".encode(), hashlib.sha256)
    return account.pk, digest.hexdigest()


def check_mail_password(account: Account, password: str) -> bool:
    key = _verified_key(account, password)
    now = time.monotonic()
    with _VERIFIED_LOCK:
        expires = _VERIFIED.get(key)
        if expires and expires > now:
            return True
    if not account.check_password(password):
        return False
    with _VERIFIED_LOCK:
        if len(_VERIFIED) > 10000:
            _VERIFIED.clear()
        _VERIFIED[key] = now + _VERIFIED_TTL
    return True


def authenticate_mail(address: str, password: str) -> Account | None:
    """Check a mail-protocol login; returns the account, or None (unknown, wrong, inactive)."""
    try:
        canonical = normalize_address(address)
    except AddressError:
        return None
    account = Account.objects.filter(address=canonical, is_active=True, domain__isnull=False).first()
    if account is None:
        Account().set_password(password)
        return None
    return account if check_mail_password(account, password) else None


class LoginThrottle:
    """Counts failed logins per client address and per account in Redis."""

    def __init__(self, *, limit: int | None = None, window: int | None = None, prefix: str = "authfail") -> None:
        self.limit = limit if limit is not None else int(settings.AUTH_FAILURE_LIMIT)
        self.window = window if window is not None else int(settings.AUTH_FAILURE_WINDOW)
        self.prefix = prefix

    def _redis(self) -> redis.Redis:
        return shared_redis()

    def _keys(self, client_ip: str | None, address: str | None) -> list[str]:
        keys = []
        if client_ip:
            keys.append(f"{self.prefix}:ip:{client_ip}")
        if address:
            try:
                address = normalize_address(address)
            except AddressError:
                address = address.lower()
            keys.append(f"{self.prefix}:acct:{address}")
        return keys

    def is_blocked(self, client_ip: str | None, address: str | None = None) -> bool:
        keys = self._keys(client_ip, address)
        if not keys:
            return False
        try:
            counts = self._redis().mget(keys)
        except redis.RedisError as exc:
            log.warning("login throttle unavailable: %s", exc)
            return False
        return any(int(c or 0) >= self.limit for c in counts)

    def record_failure(self, client_ip: str | None, address: str | None = None) -> None:
        try:
            pipe = self._redis().pipeline()
            for key in self._keys(client_ip, address):
                pipe.incr(key)
                pipe.expire(key, self.window)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("login throttle unavailable: %s", exc)

    def record_success(self, client_ip: str | None, address: str | None = None) -> None:
        try:
            keys = self._keys(None, address)
            if keys:
                self._redis().delete(*keys)
        except redis.RedisError as exc:
            log.warning("login throttle unavailable: %s", exc)
