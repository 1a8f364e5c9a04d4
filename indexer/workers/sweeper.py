"""The sweeper: chainpay sends forwarder sweeps itself, paying the gas with the gas key.

Runs per network only when `[sweep] gas_key_file` is set, every `interval` seconds. Each round
plans with the same planner as `chainpay sweep` (indexer/sweep.py: the books' paid deposit
addresses, their balances read from the node now) and sends a batch only when what it moves is
worth at least `gas_multiple` times its gas cost (gas limit x maxFeePerGas). Native coin is
weighed in wei; a token needs a price from the network's price book in the same currency as
the native coin, and a token without one is left for the operator's `chainpay sweep`.

One transaction in flight per gas key and network: nothing is sent while the key has a pending
transaction (its pending nonce above its mined one), and after each send the sweeper waits for
the receipt. That is also the crash safety: after a restart a sweep still pending blocks the
round, and once mined the next plan finds its addresses empty. The nonce is always the mined
count, so a sweep re-sent after its first copy was dropped replaces it instead of following
it. Even a sweep sent twice could only waste gas: a forwarder pays nothing but its treasury.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from indexer import metrics
from indexer.chain.errors import RpcError
from indexer.chain.gas_key import GasKey
from indexer.chain.rpc import JsonRpcClient
from indexer.config import Settings
from indexer.domain.money import format_amount
from indexer.domain.network import Network
from indexer.domain.pricing import PriceUnavailable, Rate
from indexer.services.pricing import PriceService
from indexer.services.stores import StoreService
from indexer.store.port import Storage
from indexer.sweep import Holding, SweepError, holdings_to_check, plan_sweeps, worth_sending

log = logging.getLogger(__name__)


class Sweeper:
    """One network's sweeper. `ticks`, `sent` and `skipped` are what it did (tests, logs)."""

    def __init__(
        self,
        db: Storage,
        stores: StoreService,
        prices: PriceService,
        settings: Settings,
        network: Network,
        key: GasKey,
    ) -> None:
        self.db = db
        self.stores = stores
        self.prices = prices
        self.settings = settings
        self.network = network
        self.key = key
        self.interval: float = settings.sweep.interval
        self.receipt_poll = min(max(network.block_time / 2, 0.1), 5.0)
        self.ticks = 0
        self.sent: list[str] = []  # transaction hashes
        self.skipped: Counter[str] = Counter()
        self._unpriced: set[str] = set()  # tokens already reported as unpriced
        self._low_reported = False

    async def run(self) -> None:
        name = self.network.name
        metrics.SWEEPER_LAST_ERROR.labels(name).set(0)
        async with JsonRpcClient(self.network.rpc_url, name) as client:
            try:
                held = format_amount(await self._balance(client), self.network.native.decimals)
            except RpcError as exc:
                held = f"unknown ({exc})"
            log.info(
                "sweeper on %s: gas key %s holds %s %s; every %g s, batches worth %d times "
                "their gas", name, self.key.address, held, self.network.native.symbol,
                self.interval, self.settings.sweep.gas_multiple,
            )  # fmt: skip
            while True:
                try:
                    await self.tick(client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the node or the store: next round tries again
                    metrics.SWEEPER_ERRORS.labels(name).inc()
                    metrics.SWEEPER_LAST_ERROR.labels(name).set(time.time())
                    log.warning("sweeper on %s: round failed: %s", name, exc)
                await asyncio.sleep(self.interval)

    async def tick(self, client: JsonRpcClient) -> None:
        """One round: check the key, plan, weigh each batch, send the worthy ones in turn."""
        try:
            await self._round(client)
        finally:
            self.ticks += 1
            metrics.SWEEPER_TICKS.labels(self.network.name).inc()

    async def _round(self, client: JsonRpcClient) -> None:
        name = self.network.name
        balance = await self._balance(client)
        mined, pending = await self._nonces(client)
        if pending > mined:  # ours, sent before a restart or by hand: wait until it is mined
            self._skip("key_busy", 1)
            log.info("sweeper on %s: the gas key has a pending transaction; waiting", name)
            return
        deposits = await self.db.read(lambda uow: uow.stores.forwarder_deposits(name))
        holdings = holdings_to_check(deposits, self.stores.stores, name)
        if not holdings:
            return
        rates = await self._rates()
        plan = await plan_sweeps(client, self.network, holdings, only=set(rates))
        nonce = mined
        for tx, batch in zip(plan.transactions, plan.batches, strict=True):
            cost = int(tx["gas"]) * int(tx["max_fee_per_gas"])
            if not self._worth(batch, cost, rates):
                self._skip("below_multiple", 1)
                continue
            if balance < cost:
                self._report_low(balance, cost)
                self._skip("gas_key_low", 1)
                return
            self._low_reported = False
            if not await self._send(client, tx, batch, nonce):
                return  # replaced or dropped: plan again next round from what is there
            nonce += 1
            balance = await self._balance(client)

    def _worth(self, batch: list[Holding], cost: int, rates: dict[str, Rate]) -> bool:
        held: dict[str, int] = {}
        for holding in batch:
            for symbol, amount in holding.amounts.items():
                held[symbol] = held.get(symbol, 0) + amount
        decimals = {a.symbol: a.decimals for a in self.network.assets}
        multiple = self.settings.sweep.gas_multiple
        return worth_sending(held, self.network.native, cost, multiple, rates, decimals)

    async def _rates(self) -> dict[str, Rate]:
        """Native coin (always swept; weighed in wei alone) and the tokens with a usable price
        in the currency the native coin is priced in, with their rates (native's included)."""
        native = self.network.native.symbol
        rates: dict[str, Rate] = {native: Rate(1, 0)}  # only read when tokens are weighed
        tokens = [a.symbol for a in self.network.tokens]
        currency, why = await self._native_price(rates)
        for token in tokens:
            reason = why
            if currency is not None:
                reason = await self._token_price(token, currency, rates)
            self._mark_priced(token, reason)
        return rates

    async def _native_price(self, rates: dict[str, Rate]) -> tuple[str | None, str]:
        name, native = self.network.name, self.network.native.symbol
        book = self.settings.price_books.get(name)
        if book is None:
            return None, f"{name} has no price book ([[networks.{name}.prices]])"
        currencies = sorted(book.currencies(), key=lambda c: (c != "USD", c))
        currency = next((c for c in currencies if book.route(native, c) is not None), None)
        if currency is None:
            return None, f"{native} (the gas) has no price on {name}"
        try:
            rates[native] = await self.prices.rate(name, native, currency)
        except PriceUnavailable as exc:
            return None, f"{native} (the gas) has no usable price: {exc.message}"
        return currency, ""

    async def _token_price(self, token: str, currency: str, rates: dict[str, Rate]) -> str:
        book = self.settings.price_books[self.network.name]
        if book.route(token, currency) is None:
            return f"no {token}/{currency} price (peg or feed) in the price book"
        try:
            rates[token] = await self.prices.rate(self.network.name, token, currency)
        except PriceUnavailable as exc:
            return f"no usable price: {exc.message}"
        return ""

    def _mark_priced(self, token: str, reason: str) -> None:
        """One log line when a token starts or stops being weighed, never one per round."""
        name = self.network.name
        metrics.SWEEP_ASSET_UNPRICED.labels(name, token).set(1 if reason else 0)
        if reason and token not in self._unpriced:
            self._unpriced.add(token)
            log.warning(
                "sweeper on %s: %s is not swept automatically (%s); "
                "`chainpay sweep --network %s --asset %s` prints its sweep for your wallet",
                name, token, reason, name, token,
            )  # fmt: skip
        elif not reason and token in self._unpriced:
            self._unpriced.discard(token)
            log.info("sweeper on %s: %s has a price again and is swept automatically", name, token)

    async def _send(
        self, client: JsonRpcClient, tx: dict[str, Any], batch: list[Holding], nonce: int
    ) -> bool:
        """Sign, send, wait for the receipt: True once mined (SweepError if it reverted)."""
        name = self.network.name
        raw, tx_hash = self.key.sign(
            {
                "type": 2,
                "chainId": self.network.chain_id,
                "nonce": nonce,
                "to": tx["to"],
                "data": tx["data"],
                "value": 0,
                "gas": int(tx["gas"]),
                "maxFeePerGas": int(tx["max_fee_per_gas"]),
                "maxPriorityFeePerGas": int(tx["max_priority_fee_per_gas"]),
            }
        )
        await client.call("eth_sendRawTransaction", [raw])
        self.sent.append(tx_hash)
        metrics.SWEEPS_SENT.labels(name).inc()
        log.info(
            "sweeper on %s: sent %s sweeping %d addresses (%s) to %s",
            name, tx_hash, len(batch), self._moved(batch), tx["treasury"],
        )  # fmt: skip
        receipt = await self._receipt(client, tx_hash, nonce)
        if receipt is None:
            return False
        spent = int(receipt["gasUsed"], 16) * int(receipt.get("effectiveGasPrice") or "0x0", 16)
        metrics.SWEEP_GAS_SPENT.labels(name).inc(spent)
        if int(receipt["status"], 16) != 1:
            raise SweepError(f"sweep {tx_hash} reverted in block {int(receipt['blockNumber'], 16)}")
        return True

    async def _receipt(self, client: JsonRpcClient, tx_hash: str, nonce: int) -> Any:
        """The receipt once mined; None when the nonce went to another transaction or the node
        dropped ours (the next round plans again from what the addresses hold)."""
        while True:
            receipt = await client.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt
            mined, pending = await self._nonces(client)
            if mined > nonce or pending <= nonce:
                # Mined between the two reads, or really replaced or dropped: ask once more.
                receipt = await client.call("eth_getTransactionReceipt", [tx_hash])
                if receipt is not None:
                    return receipt
                log.warning(
                    "sweeper on %s: %s was %s", self.network.name, tx_hash,
                    "replaced" if mined > nonce else "dropped by the node",
                )  # fmt: skip
                return None
            await asyncio.sleep(self.receipt_poll)

    async def _balance(self, client: JsonRpcClient) -> int:
        balance = int(await client.call("eth_getBalance", [self.key.address, "latest"]), 16)
        metrics.GAS_KEY_BALANCE.labels(self.network.name, self.key.address).set(balance)
        return balance

    async def _nonces(self, client: JsonRpcClient) -> tuple[int, int]:
        mined, pending = await client.batch(
            [
                ("eth_getTransactionCount", [self.key.address, "latest"]),
                ("eth_getTransactionCount", [self.key.address, "pending"]),
            ]
        )
        return int(mined, 16), int(pending, 16)

    def _skip(self, reason: str, batches: int) -> None:
        self.skipped[reason] += batches
        metrics.SWEEPS_SKIPPED.labels(self.network.name, reason).inc(batches)

    def _report_low(self, balance: int, cost: int) -> None:
        if self._low_reported:
            return
        self._low_reported = True
        native = self.network.native
        log.warning(
            "sweeper on %s: the gas key %s holds %s %s, less than a sweep's gas (%s): fund it",
            self.network.name, self.key.address, format_amount(balance, native.decimals),
            native.symbol, format_amount(cost, native.decimals),
        )  # fmt: skip

    def _moved(self, batch: list[Holding]) -> str:
        held: dict[str, int] = {}
        for holding in batch:
            for symbol, amount in holding.amounts.items():
                held[symbol] = held.get(symbol, 0) + amount
        decimals = {a.symbol: a.decimals for a in self.network.assets}
        return ", ".join(f"{format_amount(v, decimals[s])} {s}" for s, v in sorted(held.items()))
