"""A gateway on anvil with test price feeds (TestAggregator) and fiat-priced invoices.

`FiatChain` deploys the tokens and feeds: USDT (6 decimals) with a USDT/USD feed, DAI (18) with
an 18-decimal DAI/USD feed, USDC (6) pegged to USD, WBTC (8) with no price at all, ETH/USD and
EUR/USD feeds (8 decimals). `fiat_gateway` runs a real Gateway with its chain tail and price
service on them, and an API client with a merchant's key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from eth_utils import to_checksum_address

from api.app import build_app
from api.bootstrap import Gateway
from indexer.config import load_settings
from indexer.workers.tail import TailWorker
from tests.support.anvil import Anvil, calldata
from tests.support.api import Merchant, make_merchant
from tests.support.gateway import TEST_XPUB, eventually

FEEDS = {  # pair -> (decimals, answer)
    "ETH/USD": (8, 300012345678),
    "USDT/USD": (8, 99990000),
    "DAI/USD": (18, 1000100000000000000),
    "EUR/USD": (8, 108000000),
}
HEARTBEATS = {"ETH/USD": 3600, "USDT/USD": 86400, "DAI/USD": 3600, "EUR/USD": 86400}
MARGIN = 120


@dataclass
class FiatChain:
    anvil: Anvil
    tokens: dict[str, tuple[str, int]]  # symbol -> (address, decimals)
    feeds: dict[str, str]  # pair -> address

    def set_answer(self, pair: str, answer: int) -> None:
        self.anvil.send_tx(
            self.anvil.accounts[0],
            self.feeds[pair],
            calldata("setAnswer(int256)", answer),
            gas=300_000,  # no estimate: a fixed limit well above what the call needs
        )

    def set_round(self, pair: str, round_id: int, answer: int, updated: int, answered: int) -> None:
        data = calldata(
            "setRound(uint80,int256,uint256,uint256,uint80)",
            round_id, answer, updated, updated, answered,
        )  # fmt: skip
        self.anvil.send_tx(self.anvil.accounts[0], self.feeds[pair], data, gas=300_000)

    def set_reverts(self, pair: str) -> None:
        self.anvil.send_tx(
            self.anvil.accounts[0], self.feeds[pair], calldata("setReverts(bool)", True)
        )

    def chain_time(self) -> int:
        return int(self.anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def toml(self, database: Path, ready_lag: int = 3600, cache_seconds: float = 0) -> str:
        lines = [
            f'database = "{database}"',
            "[invoices]",
            'paid_tolerance = "0.5%"',
            "[prices]",
            f"cache_seconds = {cache_seconds}",
            f"heartbeat_margin_seconds = {MARGIN}",
            "max_skew_seconds = 3600",
            "[networks.ethereum]",
            f"chain_id = {self.anvil.chain_id}",
            f'rpc_url = "{self.anvil.ws_url}"',
            "confirmations = 1",
            f"ready_lag_seconds = {ready_lag}",
            'native = { symbol = "ETH", decimals = 18 }',
        ]
        for symbol, (address, decimals) in self.tokens.items():
            lines += [
                "[[networks.ethereum.tokens]]",
                f'symbol = "{symbol}"',
                f'contract = "{to_checksum_address(address)}"',
                f"decimals = {decimals}",
            ]
        for pair, address in self.feeds.items():
            lines += [
                "[[networks.ethereum.prices]]",
                f'pair = "{pair}"',
                f'feed = "{to_checksum_address(address)}"',
                f"heartbeat = {HEARTBEATS[pair]}",
            ]
        lines += ["[[networks.ethereum.prices]]", 'asset = "USDC"', 'peg = "USD"']
        return "\n".join(lines) + "\n"


def deploy_fiat_chain(anvil: Anvil) -> FiatChain:
    tokens = {
        "USDT": (anvil.deploy_token("USDT", 6), 6),
        "DAI": (anvil.deploy_token("DAI", 18), 18),
        "USDC": (anvil.deploy_token("USDC", 6), 6),
        "WBTC": (anvil.deploy_token("WBTC", 8), 8),
    }
    feeds = {}
    for pair, (decimals, answer) in FEEDS.items():
        feeds[pair] = anvil.deploy("TestAggregator", decimals, f"{pair} test feed")
        anvil.send_tx(anvil.accounts[0], feeds[pair], calldata("setAnswer(int256)", answer))
    return FiatChain(anvil, tokens, feeds)


def expected_units(price: str, rates: list[Fraction], decimals: int) -> int:
    """The reference conversion, independent of the code under test: Fractions and a ceiling.
    A cross rate is rates[0] / rates[1], truncated to 18 places as documented."""
    rate = rates[0]
    if len(rates) == 2:
        rate = Fraction(int(rates[0] / rates[1] * 10**18), 10**18)
    units = Fraction(price) / rate * 10**decimals
    return -(-units.numerator // units.denominator)


def feed_rate(pair: str) -> Fraction:
    decimals, answer = FEEDS[pair]
    return Fraction(answer, 10**decimals)


@dataclass
class FiatGateway:
    chain: FiatChain
    gateway: Gateway
    client: TestClient[Any, Any]
    merchant: Merchant

    async def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = {"network": "ethereum", **body}
        response = await self.client.post("/v1/invoices", json=body, headers=self.merchant.headers)
        return response.status, await response.json()

    async def invoice_count(self) -> int:
        return len(await self.gateway.db.read(lambda uow: uow.invoices.all_addresses()))


async def open_fiat_gateway(
    chain: FiatChain, tmp_path: Path, *, tail: bool = True, **toml: Any
) -> AsyncIterator[FiatGateway]:
    path = tmp_path / "fiat.toml"
    path.write_text(chain.toml(tmp_path / "fiat.duckdb", **toml))
    gateway = Gateway(load_settings(path, env={}))
    gateway.open()
    if tail:  # the chain tail (it reports the lag) and the price service's head loop
        network = gateway.settings.networks["ethereum"]
        status = gateway.network_status["ethereum"]
        worker = TailWorker(
            gateway.db, gateway.settings, network, gateway.matcher, gateway.clock, status,
            poll_interval=0.5, max_backoff=1.0, rpc_timeout=2.0,
        )  # fmt: skip
        gateway.start_workers([worker.run, partial(gateway.prices.run, "ethereum")])
        await eventually(lambda: _lag_known(gateway), 30)
    merchant = await make_merchant(gateway, "fiat shop", TEST_XPUB)
    async with TestClient(TestServer(build_app(gateway))) as client:
        yield FiatGateway(chain, gateway, client, merchant)
    await gateway.close()


async def _lag_known(gateway: Gateway) -> bool:
    return gateway.tail_lag("ethereum") is not None


FiatFactory = Callable[..., AsyncIterator[FiatGateway]]


@pytest_asyncio.fixture
async def fiat(anvil: Anvil, tmp_path: Path) -> AsyncIterator[FiatGateway]:
    async for opened in open_fiat_gateway(deploy_fiat_chain(anvil), tmp_path):
        yield opened
