"""Fiat prices: currencies, exact rates, routes through price feeds, and the conversion.

A rate is the fiat value of one whole asset unit, kept as an integer mantissa and a number of
decimals (a feed's `answer` and `decimals()`), never a float. Converting a fiat price gives the
asset's base units rounded UP, so the merchant never receives less than the price. A cross rate
(ETH/EUR from ETH/USD and EUR/USD) is computed to CROSS_DECIMALS places rounded DOWN: a lower
rate can only ask for more of the asset. Nothing here does I/O: the readings come from
indexer.chain.price_feed, the checks and the arithmetic are pure and tested by table and by
property (tests/unit/test_pricing*.py); docs/pricing.md explains them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from indexer.domain.errors import ChainpayError, ValidationError

# ISO 4217 currencies a merchant may price in, with their minor-unit digits. A pair's quote must
# be one of these; the API refuses more decimal places than the currency has.
CURRENCY_DIGITS: Mapping[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "JPY": 0, "CAD": 2, "AUD": 2, "NZD": 2, "CNY": 2,
    "KRW": 0, "SGD": 2, "HKD": 2, "INR": 2, "BRL": 2, "MXN": 2, "TRY": 2, "ZAR": 2, "SEK": 2,
    "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "PHP": 2, "IDR": 2, "THB": 2,
}  # fmt: skip
CROSS_DECIMALS = 18
MAX_PRICE_MINOR = 10**15  # ten trillion in the major unit: a typo, not an order
_PRICE = re.compile(r"^(?P<int>[0-9]{1,16})(?:\.(?P<frac>[0-9]{1,16}))?$")
_PAIR = re.compile(r"^(?P<base>[A-Za-z0-9.]{1,16})/(?P<quote>[A-Z]{3})$")


class PriceUnavailable(ChainpayError):
    """No trustworthy price right now; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PriceFeed:
    """An on-chain aggregator answering `base/quote` (e.g. ETH/USD), updated at least every
    `heartbeat` seconds (its deviation threshold may update it more often)."""

    pair: str
    address: str  # EIP-55
    heartbeat: int

    @property
    def base(self) -> str:
        return self.pair.split("/")[0]

    @property
    def quote(self) -> str:
        return self.pair.split("/")[1]


@dataclass(frozen=True, slots=True)
class PricePeg:
    """A stablecoin valued at exactly 1 `currency` by the operator's choice, not by a market."""

    asset: str
    currency: str

    @property
    def pair(self) -> str:
        return f"{self.asset}/{self.currency}"


Leg = PriceFeed | PricePeg


@dataclass(frozen=True, slots=True)
class Route:
    """How to price an asset in a currency: one leg (asset/currency), or a cross through a
    common quote Q: asset/Q divided by currency/Q."""

    asset: str
    currency: str
    legs: tuple[Leg, ...]

    @property
    def feeds(self) -> tuple[PriceFeed, ...]:
        return tuple(leg for leg in self.legs if isinstance(leg, PriceFeed))


@dataclass(frozen=True)
class PriceBook:
    """One network's configured feeds and pegs."""

    feeds: tuple[PriceFeed, ...] = ()
    pegs: tuple[PricePeg, ...] = ()

    @cached_property
    def _legs(self) -> dict[str, Leg]:
        legs: dict[str, Leg] = {p.pair: p for p in self.pegs}
        legs.update({f.pair: f for f in self.feeds})
        return legs

    @cached_property
    def _currencies(self) -> frozenset[str]:
        found: set[str] = set()
        legs = self._legs
        for pair in legs:
            found.add(pair.split("/")[1])
        for pair in legs:
            base, _ = pair.split("/")
            if base in CURRENCY_DIGITS:
                found.add(base)
        return frozenset(found)

    def currencies(self) -> set[str]:
        """Every currency an invoice on this network can be priced in, by some route."""
        return set(self._currencies)

    def route(self, asset: str, currency: str) -> Route | None:
        """The direct leg if there is one, else a cross through a common quote (USD first)."""
        legs = self._legs
        direct = legs.get(f"{asset}/{currency}")
        if direct is not None:
            return Route(asset, currency, (direct,))
        quotes = sorted({p.split("/")[1] for p in legs}, key=lambda q: (q != "USD", q))
        for quote in quotes:
            first = legs.get(f"{asset}/{quote}")
            second = legs.get(f"{currency}/{quote}")
            if first is not None and isinstance(second, PriceFeed):
                return Route(asset, currency, (first, second))
        return None


def split_pair(text: str) -> tuple[str, str] | None:
    """`ETH/USD` as ("ETH", "USD"); None unless BASE/QUOTE with an ISO currency as quote."""
    match = _PAIR.match(text)
    if match is None or match.group("quote") not in CURRENCY_DIGITS:
        return None
    return match.group("base"), match.group("quote")


# -- rates and readings ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rate:
    """Fiat per one whole asset unit: mantissa / 10**decimals, exactly."""

    mantissa: int
    decimals: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """The exact decimal `text` wrote (`Rate.text`'s inverse)."""
        whole, _, frac = text.partition(".")
        return cls(int(whole + frac), len(frac))

    @property
    def text(self) -> str:
        whole, frac = divmod(self.mantissa, 10**self.decimals)
        if not self.decimals or not frac:
            return str(whole)
        return f"{whole}.{str(frac).rjust(self.decimals, '0').rstrip('0')}"


PEGGED = Rate(1, 0)


@dataclass(frozen=True, slots=True)
class FeedReading:
    """One `latestRoundData()` answer of a feed, read at block `block`."""

    pair: str
    feed: str  # EIP-55
    decimals: int
    round_id: int
    answer: int
    started_at: int  # unix seconds, as the feed reports
    updated_at: int  # unix seconds, as the feed reports
    answered_in_round: int
    block: int

    @property
    def rate(self) -> Rate:
        return Rate(self.answer, self.decimals)


@dataclass(frozen=True, slots=True)
class PricePolicy:
    """When a reading is refused: older than heartbeat + margin, feeds of a cross rate
    further apart than max_skew_seconds."""

    heartbeat_margin_seconds: int = 120
    max_skew_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """What an invoice stores of its price: locked for the invoice's life."""

    currency: str
    amount_minor: int  # the fiat price in the currency's minor units (cents)
    rate: Rate  # fiat per whole asset unit, as used for the conversion
    source: str  # "feed" (one feed), "cross" (two legs), "peg"
    legs: tuple[FeedReading | PricePeg, ...]
    quoted_at: datetime

    @property
    def amount_text(self) -> str:
        return Rate(self.amount_minor, CURRENCY_DIGITS[self.currency]).text


# -- parsing ---------------------------------------------------------------------------------
def parse_price(amount: object, currency: object, known: set[str]) -> tuple[int, str]:
    """The API's `price` object's parts as (minor units, currency); errors name the field."""
    if not isinstance(currency, str) or currency not in CURRENCY_DIGITS or currency not in known:
        offered = ", ".join(sorted(known)) or "none configured"
        shown = currency[:8] if isinstance(currency, str) else type(currency).__name__
        raise ValidationError(
            "unknown_currency", f"unknown currency {shown!r} (priced here: {offered})",
            "price.currency",
        )  # fmt: skip
    if not isinstance(amount, str):
        raise ValidationError(
            "invalid_price", 'price.amount must be a decimal string, e.g. "49.99"', "price.amount"
        )
    match = _PRICE.match(amount)
    if match is None:
        raise ValidationError(
            "invalid_price", 'price.amount must be a plain decimal string, e.g. "49.99"',
            "price.amount",
        )  # fmt: skip
    digits = CURRENCY_DIGITS[currency]
    frac = match.group("frac") or ""
    if len(frac) > digits:
        raise ValidationError(
            "too_many_decimals", f"{currency} prices have at most {digits} decimal places",
            "price.amount",
        )  # fmt: skip
    minor = int(match.group("int") + frac.ljust(digits, "0"))
    if minor <= 0:
        raise ValidationError(
            "price_not_positive", "price.amount must be greater than zero", "price.amount"
        )
    if minor > MAX_PRICE_MINOR:
        raise ValidationError("price_too_large", "price.amount is too large", "price.amount")
    return minor, currency


# -- arithmetic ------------------------------------------------------------------------------
def asset_units(price_minor: int, currency: str, rate: Rate, asset_decimals: int) -> int:
    """The smallest number of base units worth at least the price at this rate.

    units = ceil(price_minor * 10**(rate.decimals + asset_decimals)
                 / (10**currency_digits * rate.mantissa)), in integers only.
    """
    if rate.mantissa <= 0:
        raise ValueError("a rate must be positive")
    numerator: int = price_minor * 10 ** (rate.decimals + asset_decimals)
    denominator: int = 10 ** CURRENCY_DIGITS[currency] * rate.mantissa
    return -(-numerator // denominator)


def cross_rate(asset_in_quote: Rate, currency_in_quote: Rate) -> Rate:
    """asset/C from asset/Q and C/Q, to CROSS_DECIMALS places rounded down."""
    numerator = asset_in_quote.mantissa * 10 ** (currency_in_quote.decimals + CROSS_DECIMALS)
    denominator = currency_in_quote.mantissa * 10**asset_in_quote.decimals
    return Rate(numerator // denominator, CROSS_DECIMALS)


# -- checks ----------------------------------------------------------------------------------
def check_reading(reading: FeedReading, heartbeat: int, policy: PricePolicy, now: int) -> None:
    """Raise PriceUnavailable unless the reading may be used at unix time `now`."""
    name = f"{reading.pair} feed {reading.feed}"
    if reading.answer <= 0:
        raise PriceUnavailable(
            "not_positive", f"{name} answers {reading.answer}: not a positive price"
        )
    # updatedAt 0 is a round that never completed; answeredInRound behind roundId is a carried
    # answer (older aggregators). 0 there means the feed does not report it (newer ones).
    if reading.updated_at == 0 or 0 < reading.answered_in_round < reading.round_id:
        raise PriceUnavailable(
            "incomplete_round",
            f"{name}: round {reading.round_id} is incomplete (answered in round "
            f"{reading.answered_in_round}, updated at {reading.updated_at})",
        )
    age = now - reading.updated_at
    limit = heartbeat + policy.heartbeat_margin_seconds
    if age > limit:
        raise PriceUnavailable(
            "stale",
            f"{name} last updated {age} s ago, beyond its heartbeat {heartbeat} s + "
            f"{policy.heartbeat_margin_seconds} s margin",
        )


def quote_price(
    route: Route,
    readings: Mapping[str, FeedReading],
    price_minor: int,
    asset_decimals: int,
    policy: PricePolicy,
    now: datetime,
) -> tuple[int, PriceQuote]:
    """Check the route's readings (keyed by pair) and convert: (base units, the quote)."""
    clock = int(now.timestamp())
    rates: list[Rate] = []
    legs: list[FeedReading | PricePeg] = []
    for leg in route.legs:
        if isinstance(leg, PricePeg):
            rates.append(PEGGED)
            legs.append(leg)
            continue
        reading = readings[leg.pair]
        check_reading(reading, leg.heartbeat, policy, clock)
        rates.append(reading.rate)
        legs.append(reading)
    feeds = [leg for leg in legs if isinstance(leg, FeedReading)]
    if len(feeds) == 2 and abs(feeds[0].updated_at - feeds[1].updated_at) > policy.max_skew_seconds:
        raise PriceUnavailable(
            "feeds_apart",
            f"{feeds[0].pair} and {feeds[1].pair} were updated "
            f"{abs(feeds[0].updated_at - feeds[1].updated_at)} s apart, more than "
            f"{policy.max_skew_seconds} s: no consistent cross rate",
        )
    if len(rates) == 1:
        rate, source = rates[0], ("peg" if isinstance(legs[0], PricePeg) else "feed")
    else:
        rate, source = cross_rate(rates[0], rates[1]), "cross"
        if rate.mantissa <= 0:
            raise PriceUnavailable(
                "not_positive", f"{route.asset}/{route.currency} rounds to zero at 18 decimals"
            )
    units = asset_units(price_minor, route.currency, rate, asset_decimals)
    quote = PriceQuote(route.currency, price_minor, rate, source, tuple(legs), now)
    return units, quote


# -- the stored and shown form ---------------------------------------------------------------
_PERCENT = re.compile(r"^(?P<int>[0-9]{1,3})(?:\.(?P<frac>[0-9]{1,4}))?%$")


def parse_tolerance(text: str) -> int | None:
    """`"0.5%"` as millionths (5000); None unless a percentage from 0% to 100% with at most
    4 decimal places."""
    match = _PERCENT.match(text)
    if match is None:
        return None
    ppm = int(match.group("int") + (match.group("frac") or "").ljust(4, "0"))
    return ppm if ppm <= 1_000_000 else None


def tolerance_text(ppm: int) -> str:
    """Millionths as a percentage: 5000 -> "0.5%"."""
    return f"{Rate(ppm, 4).text}%"


def legs_json(legs: Sequence[FeedReading | PricePeg]) -> list[dict[str, Any]]:
    """The legs as JSON: big integers as decimal strings, times as ISO 8601."""
    out: list[dict[str, Any]] = []
    for leg in legs:
        if isinstance(leg, PricePeg):
            out.append({"pair": leg.pair, "peg": True})
            continue
        out.append(
            {
                "pair": leg.pair,
                "peg": False,
                "feed": leg.feed,
                "decimals": leg.decimals,
                "round_id": str(leg.round_id),
                "answer": str(leg.answer),
                "rate": leg.rate.text,
                "started_at": _iso(leg.started_at),
                "updated_at": _iso(leg.updated_at),
                "answered_in_round": str(leg.answered_in_round),
                "block": leg.block,
            }
        )
    return out


def legs_from_json(items: Sequence[Mapping[str, Any]]) -> tuple[FeedReading | PricePeg, ...]:
    legs: list[FeedReading | PricePeg] = []
    for item in items:
        base, quote = str(item["pair"]).split("/")
        if item["peg"]:
            legs.append(PricePeg(base, quote))
            continue
        legs.append(
            FeedReading(
                pair=item["pair"],
                feed=item["feed"],
                decimals=int(item["decimals"]),
                round_id=int(item["round_id"]),
                answer=int(item["answer"]),
                started_at=_unix(item["started_at"]),
                updated_at=_unix(item["updated_at"]),
                answered_in_round=int(item["answered_in_round"]),
                block=int(item["block"]),
            )
        )
    return tuple(legs)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unix(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
