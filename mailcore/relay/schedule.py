"""The retry schedule: pure arithmetic on attempts and times, no ORM (tested without a database).

A deferred recipient waits ``first * factor ** (attempts - 1)`` seconds, capped at ``maximum``,
and is given up once the next attempt would fall after ``created + give_up_after``; a single
delay warning is due once the message has waited ``delay_warning_after`` (0 disables it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings


@dataclass(frozen=True)
class RetryPolicy:
    first: float = 300.0
    factor: float = 2.0
    maximum: float = 4 * 3600.0
    give_up_after: float = 5 * 24 * 3600.0
    delay_warning_after: float = 4 * 3600.0

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            first=float(settings.RELAY_RETRY_FIRST),
            factor=max(1.0, float(settings.RELAY_RETRY_FACTOR)),
            maximum=float(settings.RELAY_RETRY_MAX),
            give_up_after=float(settings.RELAY_GIVE_UP_AFTER),
            delay_warning_after=float(settings.RELAY_DELAY_WARNING_AFTER),
        )


def retry_delay(policy: RetryPolicy, attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt (1 for the first failure)."""
    exponent = max(0, attempts - 1)
    seconds = policy.first
    for _ in range(exponent):  # stepwise so a large attempt count cannot overflow a float
        seconds *= policy.factor
        if seconds >= policy.maximum:
            break
    return timedelta(seconds=min(seconds, policy.maximum))


def give_up_at(policy: RetryPolicy, created: datetime) -> datetime:
    return created + timedelta(seconds=policy.give_up_after)


def next_attempt(policy: RetryPolicy, *, attempts: int, created: datetime, now: datetime) -> datetime | None:
    """When to try again after a temporary failure, or None when it is time to give up."""
    deadline = give_up_at(policy, created)
    if now >= deadline:
        return None
    return min(now + retry_delay(policy, attempts), deadline)


def delay_warning_due(policy: RetryPolicy, *, created: datetime, now: datetime, already_warned: bool) -> bool:
    if already_warned or policy.delay_warning_after <= 0:
        return False
    return now - created >= timedelta(seconds=policy.delay_warning_after)
