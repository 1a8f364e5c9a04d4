"""Fiat conversion: exact integer arithmetic, rounded up to the asset's smallest unit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.domain.errors import ValidationError
from indexer.domain.pricing import (
    CROSS_DECIMALS,
    CURRENCY_DIGITS,
    PriceBook,
    PriceFeed,
    PricePeg,
    Rate,
    asset_units,
    cross_rate,
    legs_from_json,
    legs_json,
    parse_price,
    parse_tolerance,
    tolerance_text,
)

ETH_USD = PriceFeed("ETH/USD", "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", 3600)
EUR_USD = PriceFeed("EUR/USD", "0xb49f677943BC038e9857d61E7d053CaA2C1734C1", 86400)
USDT_USD = PriceFeed("USDT/USD", "0x3E7d1eAB13ad0104d2750B8863b489D65364e32D", 86400)


@pytest.mark.parametrize(
    ("price_minor", "currency", "rate", "decimals", "units"),
    [
        pytest.param(4999, "USD", Rate(300000000000, 8), 18, 16663333333333334, id="eth-rounds-up"),
        pytest.param(300000, "USD", Rate(300000000000, 8), 18, 10**18, id="eth-exact"),
        pytest.param(4999, "USD", Rate(100000000, 8), 6, 49990000, id="usdt-at-par"),
        pytest.param(4999, "USD", Rate(99990000, 8), 6, 49995000, id="usdt-below-par"),
        pytest.param(1, "USD", Rate(99999999, 8), 6, 10001, id="one-cent-rounds-up"),
        pytest.param(100, "JPY", Rate(45000000000, 8), 18, 222222222222222223, id="zero-digit-yen"),
        pytest.param(4999, "USD", Rate(1, 0), 6, 49990000, id="pegged"),
        pytest.param(1, "USD", Rate(3 * 10**21, 18), 0, 1, id="no-decimals-asset"),
    ],
)
def test_conversion_is_exact_and_rounds_up(
    price_minor: int, currency: str, rate: Rate, decimals: int, units: int
) -> None:
    assert asset_units(price_minor, currency, rate, decimals) == units


def _value_at_least(units: int, rate: Rate, decimals: int, price_minor: int, digits: int) -> bool:
    """units * rate >= price, as integers: units*m*10**digits >= price*10**(rd+ad)."""
    return units * rate.mantissa * 10**digits >= price_minor * 10 ** (rate.decimals + decimals)


@given(
    price_minor=st.integers(1, 10**15),
    currency=st.sampled_from(sorted(CURRENCY_DIGITS)),
    mantissa=st.integers(1, 10**30),
    rate_decimals=st.integers(0, 18),
    decimals=st.integers(0, 36),
)
def test_asset_amount_times_rate_is_never_below_the_price_and_is_minimal(
    price_minor: int, currency: str, mantissa: int, rate_decimals: int, decimals: int
) -> None:
    rate = Rate(mantissa, rate_decimals)
    digits = CURRENCY_DIGITS[currency]
    units = asset_units(price_minor, currency, rate, decimals)
    assert units >= 1
    assert _value_at_least(units, rate, decimals, price_minor, digits)
    assert not _value_at_least(units - 1, rate, decimals, price_minor, digits)


@given(
    asset_usd=st.integers(1, 10**20),
    fiat_usd=st.integers(1, 10**12),
    d1=st.integers(0, 18),
    d2=st.integers(0, 18),
    price_minor=st.integers(1, 10**12),
)
def test_a_cross_rate_never_asks_less_than_the_exact_ratio_would(
    asset_usd: int, fiat_usd: int, d1: int, d2: int, price_minor: int
) -> None:
    # given asset/USD and EUR/USD; the exact asset/EUR is (a/10**d1) / (f/10**d2)
    rate = cross_rate(Rate(asset_usd, d1), Rate(fiat_usd, d2))
    assert rate.decimals == CROSS_DECIMALS
    # then the cross rate is at most the exact ratio (rounded down)...
    assert rate.mantissa * fiat_usd * 10**d1 <= asset_usd * 10 ** (d2 + CROSS_DECIMALS)
    if rate.mantissa == 0:
        return
    # ...so the EUR value of the asset amount, at the exact ratio, is at least the price
    units = asset_units(price_minor, "EUR", rate, 18)
    # units * a * 10**d2 / (f * 10**d1 * 10**18) >= price_minor / 100
    assert units * asset_usd * 10**d2 * 100 >= price_minor * fiat_usd * 10 ** (d1 + 18)


def test_eth_in_eur_is_derived_from_eth_usd_and_eur_usd() -> None:
    # ETH/USD 3000.00000000, EUR/USD 1.08000000 -> ETH/EUR 2777.777777777777777777 (18 places)
    rate = cross_rate(Rate(300000000000, 8), Rate(108000000, 8))
    assert rate.text == "2777.777777777777777777"
    assert asset_units(10000, "EUR", rate, 18) == 36000000000000001  # 100 EUR, rounded up


@pytest.mark.parametrize(
    ("amount", "currency", "field", "code"),
    [
        pytest.param("49.999", "USD", "price.amount", "too_many_decimals", id="three-decimals"),
        pytest.param("100.5", "JPY", "price.amount", "too_many_decimals", id="yen-has-none"),
        pytest.param("0", "USD", "price.amount", "price_not_positive", id="zero"),
        pytest.param("0.00", "USD", "price.amount", "price_not_positive", id="zero-cents"),
        pytest.param("-5", "USD", "price.amount", "invalid_price", id="negative"),
        pytest.param(49.99, "USD", "price.amount", "invalid_price", id="json-number"),
        pytest.param("1e3", "USD", "price.amount", "invalid_price", id="exponent"),
        pytest.param("49.99", "XYZ", "price.currency", "unknown_currency", id="unknown-currency"),
        pytest.param("49.99", "GBP", "price.currency", "unknown_currency", id="not-priced-here"),
        pytest.param("49.99", "usd", "price.currency", "unknown_currency", id="lowercase"),
    ],
)
def test_bad_prices_are_refused_naming_the_field(
    amount: object, currency: str, field: str, code: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_price(amount, currency, {"USD", "EUR", "JPY"})
    assert (caught.value.field, caught.value.code) == (field, code)


def test_a_price_parses_into_minor_units() -> None:
    assert parse_price("49.99", "USD", {"USD"}) == (4999, "USD")
    assert parse_price("49.9", "EUR", {"EUR"}) == (4990, "EUR")
    assert parse_price("1500", "JPY", {"JPY"}) == (1500, "JPY")


def test_routes_prefer_a_direct_leg_then_a_cross_through_usd() -> None:
    book = PriceBook(feeds=(ETH_USD, EUR_USD), pegs=(PricePeg("USDC", "USD"),))
    assert book.currencies() == {"USD", "EUR"}
    assert book.route("ETH", "USD").legs == (ETH_USD,)  # type: ignore[union-attr]
    assert book.route("ETH", "EUR").legs == (ETH_USD, EUR_USD)  # type: ignore[union-attr]
    assert book.route("USDC", "EUR").legs == (PricePeg("USDC", "USD"), EUR_USD)  # type: ignore[union-attr]
    assert book.route("USDT", "USD") is None
    assert book.route("ETH", "GBP") is None


def test_a_feed_beats_a_peg_for_the_same_pair() -> None:
    book = PriceBook(feeds=(USDT_USD,), pegs=(PricePeg("USDT", "USD"),))
    assert book.route("USDT", "USD").legs == (USDT_USD,)  # type: ignore[union-attr]


def test_legs_round_trip_through_json() -> None:
    from indexer.domain.pricing import FeedReading

    reading = FeedReading("ETH/USD", ETH_USD.address, 8, 2**80 - 1, 3 * 10**11, 1, 1700000000,
                          2**80 - 1, 123)  # fmt: skip
    legs = (reading, PricePeg("USDT", "USD"))
    assert legs_from_json(legs_json(legs)) == legs
    assert legs_json(legs)[0]["updated_at"] == datetime.fromtimestamp(1700000000, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@pytest.mark.parametrize(
    ("text", "ppm"),
    [("0%", 0), ("0.5%", 5000), ("1%", 10000), ("0.0001%", 1), ("100%", 1_000_000)],
)
def test_tolerances_parse_exactly(text: str, ppm: int) -> None:
    assert parse_tolerance(text) == ppm
    assert tolerance_text(ppm) == text


@pytest.mark.parametrize("text", ["0.5", "0.00001%", "-1%", "100.5%", "1e-3%", "%", "0,5%"])
def test_malformed_tolerances_are_refused(text: str) -> None:
    assert parse_tolerance(text) is None


def test_rates_print_and_parse_exactly() -> None:
    assert Rate(350012345678, 8).text == "3500.12345678"
    assert Rate(300000000000, 8).text == "3000"
    assert Rate.parse("3500.12345678") == Rate(350012345678, 8)
