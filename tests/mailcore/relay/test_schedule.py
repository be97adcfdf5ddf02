from datetime import UTC, datetime, timedelta

from mailcore.relay.schedule import RetryPolicy, delay_warning_due, next_attempt, retry_delay

POLICY = RetryPolicy(first=300, factor=2, maximum=4 * 3600, give_up_after=5 * 86400, delay_warning_after=4 * 3600)
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_retry_delay_grows_from_first_by_factor() -> None:
    assert [retry_delay(POLICY, n).total_seconds() for n in (1, 2, 3, 4)] == [300, 600, 1200, 2400]


def test_retry_delay_is_capped_at_maximum_even_for_huge_attempt_counts() -> None:
    assert retry_delay(POLICY, 7).total_seconds() == 4 * 3600
    assert retry_delay(POLICY, 10_000).total_seconds() == 4 * 3600


def test_next_attempt_is_never_after_the_give_up_time() -> None:
    now = T0 + timedelta(days=5) - timedelta(minutes=10)
    assert next_attempt(POLICY, attempts=30, created=T0, now=now) == T0 + timedelta(days=5)


def test_next_attempt_is_none_once_the_give_up_time_has_passed() -> None:
    assert next_attempt(POLICY, attempts=30, created=T0, now=T0 + timedelta(days=5)) is None


def test_delay_warning_is_due_once_after_the_setting() -> None:
    later = T0 + timedelta(hours=4)
    assert not delay_warning_due(POLICY, created=T0, now=T0 + timedelta(hours=3), already_warned=False)
    assert delay_warning_due(POLICY, created=T0, now=later, already_warned=False)
    assert not delay_warning_due(POLICY, created=T0, now=later, already_warned=True)


def test_delay_warning_after_zero_disables_it() -> None:
    policy = RetryPolicy(delay_warning_after=0)
    assert not delay_warning_due(policy, created=T0, now=T0 + timedelta(days=1), already_warned=False)
