"""Quoting fiat prices: the last good reading per feed, refreshed on new heads, never per invoice.

Each network with a price book keeps the last good reading of each feed and when it was taken.
A request uses a reading at most `[prices] cache_seconds` old; an older one is refreshed once for
all the requests waiting on it (single flight), so a burst of fiat invoices costs the node one
read, not one per invoice. `run(network)` also refreshes on every new head. Nothing here blocks
the event loop, and a read that hangs is cut off after REFRESH_TIMEOUT: the request is refused,
the others go on. The checks and the arithmetic are the domain's (indexer.domain.pricing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from indexer import metrics
from indexer.chain.price_feed import FeedResult, FeedUnreadable, read_feeds
from indexer.chain.rpc import JsonRpcClient, reconnecting_heads
from indexer.config import Settings
from indexer.domain.clock import Clock
from indexer.domain.network import Network
from indexer.domain.pricing import (
    FeedReading,
    PriceBook,
    PriceFeed,
    PriceQuote,
    PriceUnavailable,
    Rate,
    quote_price,
)

log = logging.getLogger(__name__)
# every `reason` a PriceUnavailable carries (indexer/domain/pricing.py, indexer/chain/price_feed.py)
REFUSAL_REASONS = (
    "feed_unreadable", "feeds_apart", "incomplete_round", "no_route", "node_behind",
    "not_positive", "stale",
)  # fmt: skip
REFRESH_TIMEOUT = 3.0  # seconds: a node slower than this gives no price, not a hung request
LagOf = Callable[[str], float | None]  # the tail's lag in seconds, None while unknown


@dataclass
class _Feeds:
    """One network's readings: the last good one per pair and the last error."""

    network: Network
    book: PriceBook
    client: JsonRpcClient
    good: dict[str, tuple[FeedReading, float]] = field(default_factory=dict)  # pair -> (, mono)
    errors: dict[str, str] = field(default_factory=dict)
    refreshing: asyncio.Task[None] | None = None


class PriceService:
    def __init__(self, settings: Settings, clock: Clock, lag_of: LagOf) -> None:
        self.settings = settings
        self.clock = clock
        self.lag_of = lag_of
        self._feeds: dict[str, _Feeds] = {}
        for name, book in settings.price_books.items():
            network = settings.networks[name]
            client = JsonRpcClient(network.rpc_url, name, timeout=REFRESH_TIMEOUT)
            self._feeds[name] = _Feeds(network, book, client)
            for feed in book.feeds:
                stale_after = feed.heartbeat + settings.prices.policy.heartbeat_margin_seconds
                metrics.PRICE_FEED_STALE_AFTER.labels(name, feed.pair).set(stale_after)
                metrics.PRICE_FEED_ERRORS.labels(name, feed.pair)  # 0 until one fails: a series
            for reason in REFUSAL_REASONS:  # rates of 0, not absent series, on the dashboards
                metrics.PRICE_REFUSALS.labels(name, reason)

    def currencies(self, network: str) -> set[str]:
        book = self.settings.price_books.get(network)
        return book.currencies() if book is not None else set()

    async def quote(
        self, network: str, asset: str, currency: str, price_minor: int
    ) -> tuple[int, PriceQuote]:
        """The asset's base units for the price, and the quote to store; PriceUnavailable when
        no trustworthy price can be had now (the reason counted per network)."""
        try:
            return await self._quote(network, asset, currency, price_minor)
        except PriceUnavailable as exc:
            metrics.PRICE_REFUSALS.labels(network, exc.reason).inc()
            raise

    async def rate(self, network: str, asset: str, currency: str) -> Rate:
        """The checked rate of one whole `asset` in `currency` now, for weighing a sweep against
        its gas (not an invoice: not counted in PRICE_REFUSALS); PriceUnavailable otherwise."""
        _, quote = await self._quote(network, asset, currency, 1)
        return quote.rate

    async def _quote(
        self, network: str, asset: str, currency: str, price_minor: int
    ) -> tuple[int, PriceQuote]:
        state = self._feeds.get(network)
        route = state.book.route(asset, currency) if state is not None else None
        if state is None or route is None:
            raise PriceUnavailable("no_route", f"no price for {asset} in {currency} on {network}")
        self._check_lag(state.network)
        readings = await self._fresh(state, route.feeds)
        asset_info = state.network.asset(asset)
        assert asset_info is not None  # the request was parsed against this network
        return quote_price(
            route,
            readings,
            price_minor,
            asset_info.decimals,
            self.settings.prices.policy,
            self.clock.now(),
        )

    def _check_lag(self, network: Network) -> None:
        """A node behind serves old state: its feeds' answers may be long superseded."""
        lag = self.lag_of(network.name)
        if lag is None:
            raise PriceUnavailable(
                "node_behind", f"the {network.name} tail has not reported its lag yet"
            )
        if lag > network.ready_lag_seconds:
            raise PriceUnavailable(
                "node_behind",
                f"the {network.name} node is {lag:.0f} s behind (bound: "
                f"ready_lag_seconds = {network.ready_lag_seconds:.0f})",
            )

    async def _fresh(self, state: _Feeds, feeds: tuple[PriceFeed, ...]) -> dict[str, FeedReading]:
        asked = time.monotonic()
        oldest = asked - self.settings.prices.cache_seconds
        if any(self._taken(state, f) < oldest for f in feeds):
            await self._refresh(state)
        readings: dict[str, FeedReading] = {}
        for feed in feeds:
            good = state.good.get(feed.pair)
            # Taken within the cache window (a refresh this request waited for is in it too).
            if good is None or good[1] < oldest:
                reason = state.errors.get(feed.pair, "no reading yet")
                raise PriceUnavailable(
                    "feed_unreadable", f"{feed.pair} feed {feed.address} cannot be read: {reason}"
                )
            readings[feed.pair] = good[0]
        return readings

    @staticmethod
    def _taken(state: _Feeds, feed: PriceFeed) -> float:
        good = state.good.get(feed.pair)
        return good[1] if good is not None else float("-inf")

    async def _refresh(self, state: _Feeds) -> None:
        """Read every feed of the network once, however many requests wait for it."""
        if state.refreshing is None or state.refreshing.done():
            state.refreshing = asyncio.create_task(self._read_all(state))
        await asyncio.shield(state.refreshing)

    async def refresh(self, network: str) -> None:
        await self._refresh(self._feeds[network])

    async def _read_all(self, state: _Feeds) -> None:
        name = state.network.name
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT):
                results = await read_feeds(state.client, state.book.feeds)
        except TimeoutError:
            results = [_timed_out(feed) for feed in state.book.feeds]
        taken = time.monotonic()
        for result in results:
            pair = result.feed.pair
            if result.reading is None:
                state.errors[pair] = str(result.error)
                metrics.PRICE_FEED_ERRORS.labels(name, pair).inc()
                continue
            state.good[pair] = (result.reading, taken)
            state.errors.pop(pair, None)
            now = self.clock.now().timestamp()
            metrics.PRICE_FEED_UPDATED.labels(name, pair).set(result.reading.updated_at)
            metrics.PRICE_FEED_AGE.labels(name, pair).set(max(now - result.reading.updated_at, 0))

    async def run(self, network: str) -> None:
        """Refresh the network's feeds at every new head, for as long as it runs."""
        state = self._feeds[network]
        heads = JsonRpcClient(state.network.rpc_url, network, poll_interval=1.0)
        try:
            async for _ in reconnecting_heads(heads):
                await self._refresh(state)
        finally:
            await heads.close()

    async def close(self) -> None:
        for state in self._feeds.values():
            if state.refreshing is not None:
                state.refreshing.cancel()
                await asyncio.gather(state.refreshing, return_exceptions=True)
            await state.client.close()

    def networks(self) -> list[str]:
        return list(self._feeds)


def _timed_out(feed: PriceFeed) -> FeedResult:
    return FeedResult(feed, None, FeedUnreadable(f"no answer within {REFRESH_TIMEOUT} s"))
