"""The sweeper: chainpay sends forwarder sweeps itself, paying the gas with the gas key.

Runs per network only when `[sweep] gas_key_file` is set, every `interval` seconds. Each round
plans with the same planner as `chainpay sweep` (indexer/sweep.py: the books' paid deposit
addresses, their balances read from the node now) and sends a batch only when what it moves is
worth at least `gas_multiple` times its gas cost (gas limit x maxFeePerGas). Native coin is
weighed in wei; a token needs a price from the network's price book in the same currency as
the native coin, and a token without one is left for the operator's `chainpay sweep`.

One transaction in flight per gas key and network: nothing new is sent while the key has a
pending transaction (its pending nonce above its mined one), and after each send the sweeper
waits for the receipt. That is also the crash safety: after a restart a sweep still pending
blocks the round, and once mined the next plan finds its addresses empty. The nonce is always
the mined count, so a sweep re-sent after its first copy was dropped replaces it instead of
following it. Even a sweep sent twice could only waste gas: a forwarder pays nothing but its
treasury.

A transaction of the key still pending `replace_after` seconds after this process sent it (or
first saw it, after a restart) is stuck: fees rose above it. The next round plans afresh and
sends the sweep at the same nonce with both fees at least 12.5% above the stuck one's (geth
and BSC replace at +10%), so exactly one of them can be mined. When the stuck transaction's
fees are unknown (sent before a restart, or by hand), the node's "replacement transaction
underpriced" answer raises them 12.5% at a time. A replacement is sent only while the batch
is still worth `gas_multiple` times its new cost; beyond that the sweeper waits, and
ChainpaySweepPending fires after an hour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from indexer import metrics
from indexer.chain.errors import (
    NonceTooLow,
    ReplacementUnderpriced,
    RpcError,
    TransactionAlreadyKnown,
)
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


@dataclass(frozen=True)
class Fees:
    """An EIP-1559 transaction's fee cap and priority fee (tip), in wei."""

    max_fee: int
    tip: int

    def bumped(self) -> Fees:
        """Both fees raised by at least 12.5%: above the +10% geth and BSC ask of a replacement."""
        tip = self.tip + self.tip // 8 + 1
        return Fees(max(self.max_fee + self.max_fee // 8 + 1, tip), tip)


def replacement_fees(planned: Fees, stuck: Fees | None) -> Fees:
    """The fees for a transaction replacing `stuck` at its nonce: today's planned fees, and
    never less than 12.5% above the stuck one's on either fee (`stuck` None: unknown)."""
    if stuck is None:
        return planned
    floor = stuck.bumped()
    tip = max(planned.tip, floor.tip)
    return Fees(max(planned.max_fee, floor.max_fee, tip), tip)


@dataclass
class PendingSweep:
    """The gas key's transaction at `nonce`, as this process knows it (one in flight)."""

    nonce: int
    since: float  # monotonic: sent, or first seen pending; each replacement restarts the wait
    fees: Fees | None = None  # the highest fees sent or offered at this nonce (None: unknown)
    hashes: list[str] = field(default_factory=list)  # what this process sent at this nonce

    def offered(self, fees: Fees) -> None:
        known = self.fees or Fees(0, 0)
        self.fees = Fees(max(fees.max_fee, known.max_fee), max(fees.tip, known.tip))


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
        self.replace_after: float = settings.sweep.replace_after
        self._pending: PendingSweep | None = None

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
            try:
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
            finally:  # stopped (or the lease went to another replica): it watches from now on
                self._not_pending()

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
        stuck: Fees | None = None
        replacing = pending > mined
        if replacing:  # ours (maybe from before a restart) or sent by hand
            known = self._pending_at(mined)
            if time.monotonic() - known.since < self.replace_after:
                self._skip("key_busy", 1)
                log.info("sweeper on %s: the gas key has a pending transaction; waiting", name)
                return
            stuck = known.fees
        else:
            self._not_pending()
        deposits = await self.db.read(lambda uow: uow.stores.forwarder_deposits(name))
        holdings = holdings_to_check(deposits, self.stores.stores, name)
        if not holdings:
            if replacing:  # nothing left to sweep: the pending one moves it all
                self._skip("key_busy", 1)
            return
        rates = await self._rates()
        plan = await plan_sweeps(client, self.network, holdings, only=set(rates))
        nonce = mined
        for tx, batch in zip(plan.transactions, plan.batches, strict=True):
            planned = Fees(int(tx["max_fee_per_gas"]), int(tx["max_priority_fee_per_gas"]))
            fees = replacement_fees(planned, stuck) if replacing else planned
            cost = int(tx["gas"]) * fees.max_fee
            if not self._worth(batch, cost, rates):
                self._skip("below_multiple", 1)
                continue
            if balance < cost:
                self._report_low(balance, cost)
                self._skip("gas_key_low", 1)
                return
            self._low_reported = False
            if not await self._send(client, tx, batch, nonce, fees, rates, replacing):
                return  # stuck, replaced or dropped: plan again next round from what is there
            nonce += 1
            replacing = False
            balance = await self._balance(client)
        if replacing:  # no batch is worth replacing the pending transaction at higher fees
            self._skip("key_busy", 1)
            log.info(
                "sweeper on %s: the gas key's transaction %d is pending; no batch is worth "
                "%d times the gas of replacing it at higher fees, waiting",
                name, mined, self.settings.sweep.gas_multiple,
            )  # fmt: skip

    def _pending_at(self, nonce: int) -> PendingSweep:
        """What this process knows of the key's transaction pending at `nonce`; new (pending
        from now on) when it knew none there."""
        if self._pending is None or self._pending.nonce != nonce:
            self._pending = PendingSweep(nonce, time.monotonic())
            metrics.GAS_KEY_PENDING_SINCE.labels(self.network.name).set(time.time())
        return self._pending

    def _not_pending(self) -> None:
        self._pending = None
        metrics.GAS_KEY_PENDING_SINCE.labels(self.network.name).set(0)

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
        self,
        client: JsonRpcClient,
        tx: dict[str, Any],
        batch: list[Holding],
        nonce: int,
        fees: Fees,
        rates: dict[str, Rate],
        replacing: bool,
    ) -> bool:
        """Sign, send, wait for the receipt: True once mined (SweepError if it reverted); False
        when it was replaced or dropped, stays pending `replace_after` seconds, or (replacing)
        the node wants higher fees than the batch is worth."""
        name = self.network.name
        gas = int(tx["gas"])
        while True:
            raw, tx_hash = self.key.sign(
                {
                    "type": 2,
                    "chainId": self.network.chain_id,
                    "nonce": nonce,
                    "to": tx["to"],
                    "data": tx["data"],
                    "value": 0,
                    "gas": gas,
                    "maxFeePerGas": fees.max_fee,
                    "maxPriorityFeePerGas": fees.tip,
                }
            )
            try:
                await client.call("eth_sendRawTransaction", [raw])
            except NonceTooLow:
                log.info("sweeper on %s: nonce %d was mined meanwhile; planning again", name, nonce)
                return False
            except (ReplacementUnderpriced, TransactionAlreadyKnown) as exc:
                if not replacing:
                    if isinstance(exc, TransactionAlreadyKnown):
                        break  # this very transaction is in the node's pool: wait for it
                    raise
                # The pending one's fees are unknown (or are these very fees): raise ours,
                # while the batch stays worth it.
                self._pending_at(nonce).offered(fees)
                fees = fees.bumped()
                if not self._worth(batch, gas * fees.max_fee, rates):
                    self._skip("key_busy", 1)
                    log.info(
                        "sweeper on %s: replacing pending transaction %d needs fees above "
                        "%d wei per gas, more than its batch is worth; waiting",
                        name, nonce, fees.max_fee,
                    )  # fmt: skip
                    return False
                continue
            break
        self.sent.append(tx_hash)
        pending = self._pending_at(nonce)
        pending.offered(fees)
        pending.hashes.append(tx_hash)
        pending.since = time.monotonic()  # the wait before replacing (again) starts now
        metrics.SWEEPS_SENT.labels(name).inc()
        if replacing:
            metrics.SWEEPS_REPLACED.labels(name).inc()
        log.info(
            "sweeper on %s: sent %s%s sweeping %d addresses (%s) to %s (max fee %d wei per gas)",
            name, tx_hash, f" replacing pending transaction {nonce}" if replacing else "",
            len(batch), self._moved(batch), tx["treasury"], fees.max_fee,
        )  # fmt: skip
        receipt = await self._receipt(client, pending)
        if receipt is None:
            return False
        self._not_pending()
        spent = int(receipt["gasUsed"], 16) * int(receipt.get("effectiveGasPrice") or "0x0", 16)
        metrics.SWEEP_GAS_SPENT.labels(name).inc(spent)
        if int(receipt["status"], 16) != 1:
            raise SweepError(
                f"sweep {receipt['transactionHash']} reverted in block "
                f"{int(receipt['blockNumber'], 16)}"
            )
        return True

    async def _receipt(self, client: JsonRpcClient, sent: PendingSweep) -> Any:
        """The receipt of whichever of this process's transactions at its nonce was mined; None
        when the nonce went to another transaction, the node dropped ours, or it has been
        pending `replace_after` seconds (the next round replaces it)."""
        nonce, hashes = sent.nonce, sent.hashes
        while True:
            receipt = await self._any_receipt(client, hashes)
            if receipt is not None:
                return receipt
            mined, pending = await self._nonces(client)
            if mined > nonce or pending <= nonce:
                # Mined between the two reads, or really replaced or dropped: ask once more.
                receipt = await self._any_receipt(client, hashes)
                if receipt is not None:
                    return receipt
                log.warning(
                    "sweeper on %s: %s was %s", self.network.name, hashes[-1],
                    "replaced" if mined > nonce else "dropped by the node",
                )  # fmt: skip
                return None
            if time.monotonic() - sent.since >= self.replace_after:
                log.warning(
                    "sweeper on %s: %s still pending after %g s; replacing it with higher fees",
                    self.network.name, hashes[-1], self.replace_after,
                )  # fmt: skip
                return None
            await asyncio.sleep(self.receipt_poll)

    async def _any_receipt(self, client: JsonRpcClient, hashes: list[str]) -> Any:
        for tx_hash in reversed(hashes):
            receipt = await client.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt
        return None

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
