"""Refusing bad readings: not positive, stale, incomplete round, cross feeds far apart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from indexer.domain.pricing import (
    FeedReading,
    PriceFeed,
    PricePeg,
    PricePolicy,
    PriceUnavailable,
    Route,
    quote_price,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
ETH_USD = PriceFeed("ETH/USD", "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", 3600)
EUR_USD = PriceFeed("EUR/USD", "0xb49f677943BC038e9857d61E7d053CaA2C1734C1", 86400)
POLICY = PricePolicy(heartbeat_margin_seconds=120, max_skew_seconds=3600)


def reading(
    feed: PriceFeed,
    answer: int,
    updated: int = T - 10,
    round_id: int = 7,
    answered: int = 7,
    decimals: int = 8,
) -> FeedReading:
    return FeedReading(feed.pair, feed.address, decimals, round_id, answer, updated, updated,
                       answered, 100)  # fmt: skip


def quote(route: Route, *readings: FeedReading, price: int = 4999, decimals: int = 18) -> int:
    units, _ = quote_price(route, {r.pair: r for r in readings}, price, decimals, POLICY, NOW)
    return units


DIRECT = Route("ETH", "USD", (ETH_USD,))
CROSS = Route("ETH", "EUR", (ETH_USD, EUR_USD))


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        pytest.param(reading(ETH_USD, 0), "not_positive", id="zero"),
        pytest.param(reading(ETH_USD, -1), "not_positive", id="negative"),
        pytest.param(reading(ETH_USD, 3 * 10**11, answered=6), "incomplete_round", id="carried"),
        pytest.param(reading(ETH_USD, 3 * 10**11, updated=0), "incomplete_round", id="no-update"),
        pytest.param(reading(ETH_USD, 3 * 10**11, updated=T - 3721), "stale", id="stale-by-1s"),
    ],
)
def test_bad_readings_are_refused_with_the_reason(given: FeedReading, reason: str) -> None:
    with pytest.raises(PriceUnavailable) as caught:
        quote(DIRECT, given)
    assert caught.value.reason == reason
    assert ETH_USD.address in caught.value.message


def test_a_reading_exactly_at_heartbeat_plus_margin_is_still_used() -> None:
    assert quote(DIRECT, reading(ETH_USD, 3 * 10**11, updated=T - 3720)) > 0


def test_a_feed_that_does_not_report_answered_in_round_is_not_refused_for_it() -> None:
    assert quote(DIRECT, reading(ETH_USD, 3 * 10**11, answered=0)) > 0


def test_cross_feeds_too_far_apart_in_time_are_refused() -> None:
    eth = reading(ETH_USD, 3 * 10**11, updated=T - 10)
    eur = reading(EUR_USD, 108000000, updated=T - 10 - 3601)
    with pytest.raises(PriceUnavailable) as caught:
        quote(CROSS, eth, eur)
    assert caught.value.reason == "feeds_apart"


def test_a_cross_quote_records_both_feeds_and_the_derived_rate() -> None:
    eth = reading(ETH_USD, 3 * 10**11)
    eur = reading(EUR_USD, 108000000, updated=T - 3600)
    units, q = quote_price(CROSS, {"ETH/USD": eth, "EUR/USD": eur}, 10000, 18, POLICY, NOW)
    assert units == 36000000000000001
    assert (q.source, q.rate.text, q.legs, q.quoted_at) == (
        "cross", "2777.777777777777777777", (eth, eur), NOW,
    )  # fmt: skip


def test_a_pegged_stablecoin_is_quoted_at_one_and_marked_as_a_peg() -> None:
    route = Route("USDT", "USD", (PricePeg("USDT", "USD"),))
    units, q = quote_price(route, {}, 4999, 6, POLICY, NOW)
    assert units == 49990000
    assert (q.source, q.rate.text) == ("peg", "1")
