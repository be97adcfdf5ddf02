"""The login throttle without Redis: it counts in the process instead of failing open."""

from __future__ import annotations

import pytest
import redis

from mailcore.auth import LoginThrottle

pytestmark = pytest.mark.django_db


def test_failures_are_still_limited_when_redis_is_unreachable(redis_unreachable: str) -> None:
    throttle = LoginThrottle(limit=3, window=300)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_unreachable).ping()  # the premise: nothing answers there
    for _ in range(3):
        assert not throttle.is_blocked("192.0.2.7", "alice@a.test")
        throttle.record_failure("192.0.2.7", "alice@a.test")
    assert throttle.is_blocked("192.0.2.7", "alice@a.test")
    assert throttle.is_blocked("192.0.2.7", "bob@b.test")  # per client address
    assert throttle.is_blocked("198.51.100.1", "ALICE@A.TEST")  # per account, in any case
    assert not throttle.is_blocked("198.51.100.1", "bob@b.test")
    assert LoginThrottle(limit=3, window=300).is_blocked("192.0.2.7")  # shared by the process's throttles


def test_a_success_clears_the_account_count_but_not_the_client_address(redis_unreachable: str) -> None:
    throttle = LoginThrottle(limit=2, window=300)
    throttle.record_failure("192.0.2.7", "alice@a.test")
    throttle.record_success("192.0.2.7", "alice@a.test")
    throttle.record_failure("198.51.100.1", "alice@a.test")
    assert not throttle.is_blocked("198.51.100.1", "alice@a.test")
    throttle.record_failure("192.0.2.7", "bob@b.test")
    assert throttle.is_blocked("192.0.2.7", None)


def test_counts_expire_with_the_window(redis_unreachable: str) -> None:
    throttle = LoginThrottle(limit=1, window=0)  # every count is already out of its window
    throttle.record_failure("192.0.2.7", "alice@a.test")
    assert not throttle.is_blocked("192.0.2.7", "alice@a.test")


def test_the_fallback_table_stays_bounded(redis_unreachable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LoginThrottle.local, "MAX_KEYS", 10)
    throttle = LoginThrottle(limit=1, window=300)
    for n in range(50):
        throttle.record_failure(f"192.0.2.{n}", None)
    assert len(LoginThrottle.local._counts) <= 10
    assert throttle.is_blocked("192.0.2.49")  # the newest counts are the ones kept


def test_with_redis_up_the_counts_are_shared_through_redis_only(settings) -> None:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("authfail-test:ip:192.0.2.9")
    LoginThrottle.local.clear()
    throttle = LoginThrottle(limit=1, window=300, prefix="authfail-test")
    throttle.record_failure("192.0.2.9", None)
    assert client.get("authfail-test:ip:192.0.2.9") == b"1"
    assert LoginThrottle.local._counts == {}
    assert LoginThrottle(limit=1, window=300, prefix="authfail-test").is_blocked("192.0.2.9")
    client.delete("authfail-test:ip:192.0.2.9")
    client.close()


def test_check_says_whether_a_success_has_failures_to_reset() -> None:
    """With Redis: a login that finds no failures of its account skips the reset's round trip."""
    throttle = LoginThrottle(limit=2, window=300, prefix="authfail-check-test")
    shared = throttle._redis()
    shared.delete(*throttle._keys("192.0.2.70", "carol@c.test"))
    assert throttle.check("192.0.2.70", "carol@c.test") == (False, False)
    throttle.record_failure("192.0.2.70", None)  # the client address only: nothing for a success to reset
    assert throttle.check("192.0.2.70", "carol@c.test") == (False, False)
    throttle.record_failure("198.51.100.70", "carol@c.test")
    assert throttle.check("192.0.2.70", "carol@c.test") == (False, True)
    throttle.record_success("192.0.2.70", "carol@c.test")
    assert throttle.check("192.0.2.70", "carol@c.test") == (False, False)
    throttle.record_failure("192.0.2.70", None)
    assert throttle.check("192.0.2.70", "carol@c.test") == (True, False)
    shared.delete(*throttle._keys("192.0.2.70", "carol@c.test"), *throttle._keys("198.51.100.70", None))
