"""The webhook retry schedule: delays, jitter bounds, giving up, disabling endpoints."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from indexer.domain.retry import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    next_attempt_delay,
    should_disable_endpoint,
)

LOWEST, MIDDLE, HIGHEST = (lambda: 0.0), (lambda: 0.5), (lambda: 1.0)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        pytest.param(1, timedelta(0), id="first-failure-retries-immediately"),
        pytest.param(2, timedelta(seconds=5), id="then-5s"),
        pytest.param(3, timedelta(minutes=5), id="then-5min"),
        pytest.param(4, timedelta(minutes=30), id="then-30min"),
        pytest.param(5, timedelta(hours=2), id="then-2h"),
        pytest.param(6, timedelta(hours=5), id="then-5h"),
        pytest.param(7, timedelta(hours=10), id="then-10h"),
        pytest.param(8, timedelta(hours=10), id="then-10h-again"),
        pytest.param(9, timedelta(hours=12), id="then-every-12h"),
        pytest.param(13, timedelta(hours=12), id="last-retry-12h"),
        pytest.param(14, None, id="gives-up-after-the-last-attempt"),
        pytest.param(100, None, id="stays-given-up"),
    ],
)
def test_next_attempt_delay_follows_the_schedule(attempt: int, expected: timedelta | None) -> None:
    assert next_attempt_delay(attempt, MIDDLE) == expected


@pytest.mark.parametrize(
    ("rand", "factor"),
    [
        pytest.param(LOWEST, 0.9, id="lowest-is-10-percent-early"),
        pytest.param(MIDDLE, 1.0, id="middle-is-on-time"),
        pytest.param(HIGHEST, 1.1, id="highest-is-10-percent-late"),
    ],
)
def test_jitter_stays_within_ten_percent(rand: Callable[[], float], factor: float) -> None:
    delay = next_attempt_delay(5, rand)

    assert delay is not None
    assert abs(delay.total_seconds() - 7200 * factor) < 1e-3


@pytest.mark.parametrize("rand", [LOWEST, HIGHEST], ids=["lowest", "highest"])
def test_immediate_first_retry_has_no_jitter(rand: Callable[[], float]) -> None:
    assert next_attempt_delay(1, rand) == timedelta(0)


def test_every_jittered_delay_is_within_bounds_for_many_draws() -> None:
    draws = iter([i / 100 for i in range(101)] * len(RETRY_DELAYS))
    for attempt, base in enumerate(RETRY_DELAYS, start=1):
        for _ in range(101):
            delay = next_attempt_delay(attempt, lambda: next(draws))
            assert delay is not None
            assert base * 0.9 <= delay <= base * 1.1


@pytest.mark.parametrize("rand", [LOWEST, MIDDLE, HIGHEST], ids=["lowest", "middle", "highest"])
def test_schedule_spans_at_least_three_days_whatever_the_jitter(rand: Callable[[], float]) -> None:
    delays = [next_attempt_delay(n, rand) for n in range(1, MAX_ATTEMPTS)]

    assert None not in delays
    assert sum((d for d in delays if d is not None), timedelta(0)) >= timedelta(days=3)


def test_schedule_starts_with_an_immediate_retry_and_never_shrinks_after() -> None:
    assert RETRY_DELAYS[0] == timedelta(0)
    assert list(RETRY_DELAYS) == sorted(RETRY_DELAYS)
    assert MAX_ATTEMPTS == len(RETRY_DELAYS) + 1


@pytest.mark.parametrize("attempt", [0, -1], ids=["zero", "negative"])
def test_attempt_numbers_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        next_attempt_delay(attempt, MIDDLE)


def test_rand_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="rand"):
        next_attempt_delay(3, lambda: 1.5)


NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failing_since", "disable"),
    [
        pytest.param(None, False, id="healthy-endpoint"),
        pytest.param(NOW, False, id="just-started-failing"),
        pytest.param(NOW - timedelta(days=2, hours=23), False, id="almost-three-days"),
        pytest.param(NOW - timedelta(days=3) + timedelta(seconds=1), False, id="one-second-short"),
        pytest.param(NOW - timedelta(days=3), True, id="exactly-three-days"),
        pytest.param(NOW - timedelta(days=10), True, id="failing-for-ten-days"),
    ],
)
def test_should_disable_endpoint_after_three_days_of_failures(
    failing_since: datetime | None, disable: bool
) -> None:
    assert should_disable_endpoint(failing_since, NOW) is disable
