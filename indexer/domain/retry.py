"""Webhook retry policy: when to try a failed delivery again, and when to give up.

Pure data and arithmetic; the dispatcher stores the resulting due time in the outbox, so a
restart never loses a scheduled retry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

# Delay before attempt n+1 after attempt n failed (n = 1 is the first delivery attempt).
# Even with every delay jittered 10% short, the schedule spans more than three days
# (sum is 87h35m05s, so at least ~78.8h), which covers a merchant's long weekend outage.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.10
DISABLE_AFTER = timedelta(days=3)


def next_attempt_delay(attempt_number: int, rand: Callable[[], float]) -> timedelta | None:
    """Delay before the next attempt after attempt `attempt_number` (1-based) failed.

    None means give up: the delivery is failed. `rand` returns a float in [0, 1), e.g.
    `random.random`; non-zero delays are spread by up to ±10% so endpoints that come back
    are not hit by every pending delivery at the same instant.
    """
    if attempt_number < 1:
        raise ValueError("attempt_number starts at 1")
    if attempt_number > len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[attempt_number - 1]
    if not base:
        return base
    r = rand()
    if not 0.0 <= r <= 1.0:
        raise ValueError("rand must return a float in [0, 1]")
    return base * (1.0 + JITTER * (2.0 * r - 1.0))


def should_disable_endpoint(failing_since: datetime | None, now: datetime) -> bool:
    """True when an endpoint has failed continuously for at least `DISABLE_AFTER`."""
    if failing_since is None:
        return False
    return now - failing_since >= DISABLE_AFTER
