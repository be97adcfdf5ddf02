"""Login by full address, shared by the web, SMTP AUTH, IMAP and POP3, with throttling.

Failures are counted in Redis per client address and per account over a sliding window, so
every mail process and the web see the same counts. Past the limit a login is refused without
even checking the password (and the protocol says so with its own reply). Without Redis each
process counts on its own (:class:`LoginThrottle`): the throttle never fails open.
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
from mailcore.redis_client import redis_available, redis_failed, shared_redis
from mailcore.store.sql import fetch_all

log = logging.getLogger(__name__)


class AddressBackend(ModelBackend):
    """Django authentication backend: ``username`` is the full address, in any case or IDN form."""

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
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
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"{account.password}\0{password}".encode(), hashlib.sha256
    )
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


_ACCOUNT_SQL = ""


def _active_mail_account(address: str) -> Account | None:
    """``Account.objects.filter(address=..., is_active=True, domain__isnull=False).first()`` as
    one prepared statement: every IMAP/POP3/SMTP login runs it, and the ORM's compilation cost
    more CPU than the query (the address is unique, so no ORDER BY is needed)."""
    global _ACCOUNT_SQL
    fields = Account._meta.concrete_fields
    if not _ACCOUNT_SQL:
        columns = ", ".join(f'"{f.column}"' for f in fields)
        _ACCOUNT_SQL = (f'SELECT {columns} FROM "{Account._meta.db_table}" '  # noqa: S608 - model metadata, no input
                        "WHERE address = %s AND is_active AND domain_id IS NOT NULL LIMIT 1")
    rows = fetch_all(_ACCOUNT_SQL, [address])
    if not rows:
        return None
    return Account.from_db("default", [f.attname for f in fields], rows[0])


def authenticate_mail(address: str, password: str) -> Account | None:
    """Check a mail-protocol login; returns the account, or None (unknown, wrong, inactive)."""
    try:
        canonical = normalize_address(address)
    except AddressError:
        return None
    account = _active_mail_account(canonical)
    if account is None:
        Account().set_password(password)
        return None
    return account if check_mail_password(account, password) else None


class _LocalCounts:
    """This process's own failure counts, used while Redis cannot be reached.

    Same rule as the Redis keys: each failure adds one and restarts the key's window. Bounded:
    past ``MAX_KEYS`` the expired keys go, then the ones whose last failure is oldest.
    """

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, expires at, monotonic)

    def get(self, key: str) -> int:
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            return count if expires > time.monotonic() else 0

    def incr(self, key: str, window: int) -> None:
        now = time.monotonic()
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            self._counts[key] = ((count if expires > now else 0) + 1, now + window)
            if len(self._counts) > self.MAX_KEYS:
                self._prune(now)

    def delete(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._counts.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def _prune(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        if len(self._counts) > self.MAX_KEYS:
            keep = sorted(self._counts.items(), key=lambda item: item[1][1])[-self.MAX_KEYS // 2 :]
            self._counts = dict(keep)


class LoginThrottle:
    """Counts failed logins per client address and per account in Redis.

    Fails safe: while Redis cannot be reached (and for ``redis_client.BACKOFF`` seconds after
    each error, so an outage costs one timeout, not one per login) failures are counted in this
    process instead, with the same limit and window, and a login is refused when either count
    is at the limit. Logins keep working during an outage; guessing stays limited to
    ``AUTH_FAILURE_LIMIT`` per window per process (docs/running.md).
    """

    local = _LocalCounts()  # one per process, shared by every throttle in it

    def __init__(
        self, *, limit: int | None = None, window: int | None = None, prefix: str = "authfail"
    ) -> None:
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

    @staticmethod
    def _unavailable(exc: redis.RedisError) -> None:
        log.warning("login throttle: Redis unavailable, counting failures in this process: %s", exc)
        redis_failed()

    def is_blocked(self, client_ip: str | None, address: str | None = None) -> bool:
        return self.check(client_ip, address)[0]

    def check(self, client_ip: str | None, address: str | None = None) -> tuple[bool, bool]:
        """(blocked, whether the account has failures on record that a success should reset):
        a login that finds no failures skips :meth:`record_success` and its round trip."""
        keys = self._keys(client_ip, address)
        if not keys:
            return False, False
        local = [self.local.get(key) for key in keys]
        if any(count >= self.limit for count in local):
            return True, True
        has_account_key = bool(address)
        if not redis_available():
            return False, has_account_key
        try:
            counts = [int(c or 0) for c in self._redis().mget(keys)]
        except redis.RedisError as exc:
            self._unavailable(exc)
            return False, has_account_key
        failures = has_account_key and (counts[-1] > 0 or local[-1] > 0)
        return any(c >= self.limit for c in counts), failures

    def record_failure(self, client_ip: str | None, address: str | None = None) -> None:
        keys = self._keys(client_ip, address)
        if redis_available():
            try:
                pipe = self._redis().pipeline()
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, self.window)
                pipe.execute()
                return
            except redis.RedisError as exc:
                self._unavailable(exc)
        for key in keys:
            self.local.incr(key, self.window)

    def record_success(self, client_ip: str | None, address: str | None = None) -> None:
        keys = self._keys(None, address)
        if not keys:
            return
        self.local.delete(keys)
        if not redis_available():
            return
        try:
            self._redis().delete(*keys)
        except redis.RedisError as exc:
            self._unavailable(exc)
