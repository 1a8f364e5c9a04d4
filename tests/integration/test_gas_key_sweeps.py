"""The sweeper on anvil: chainpay sends a sweep with its gas key when the batch is worth
`gas_multiple` times its gas, not below; a token without a price is left for `chainpay sweep`;
a restart while a sweep is pending never sends it again."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from api.bootstrap import Gateway, background_loops
from api.contracts import sweep_plan
from indexer.config import SweepSettings
from indexer.domain.pricing import PriceBook, PriceFeed, PricePeg
from tests.support.anvil import Anvil, calldata
from tests.support.forwarders import checksum, deploy_factory, token_balance
from tests.support.gateway import Chain, GatewayUnderTest, ShiftedClock, eventually, settings_for
from tests.support.postgres import Backend

pytestmark = pytest.mark.anvil

USDT = 10**6
ETHER = 10**18
GAS_KEY = "fd5313553e532f82b73a2af85f64fa78d3c2491e697f3360e0cb6b30d881cbda"  # keccak("chainpay tests: gas key")
GAS_KEY_ADDRESS = "0x81ea35A9D3E1514531Fa05607A5C72d1394889EE"
ETH_USD = 3000 * 10**8  # 8-decimal feed answer: $3,000


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def nonce(anvil: Anvil, block: str = "latest") -> int:
    return int(anvil.rpc("eth_getTransactionCount", GAS_KEY_ADDRESS, block), 16)


class Sweeping:
    """A gateway with a forwarder store (treasury: anvil account 5), its tail and sweeper."""

    def __init__(self, gw: GatewayUnderTest, chain: Chain) -> None:
        self.gw = gw
        self.chain = chain
        self.treasury = chain.anvil.accounts[5]

    def ticks(self) -> float:
        return sample("chainpay_sweeper_ticks_total", network="ethereum")

    def sent(self) -> float:
        return sample("chainpay_sweeps_sent_total", network="ethereum")

    def skipped(self, reason: str) -> float:
        return sample("chainpay_sweeps_skipped_total", network="ethereum", reason=reason)

    async def rounds(self, count: int = 2) -> None:
        """Wait until `count` more sweeper rounds have completed (each starts after now)."""
        target = self.ticks() + count
        await eventually(self._ticked(target), 60)

    def _ticked(self, target: float) -> Callable[[], Awaitable[bool]]:
        async def reached() -> bool:
            return self.ticks() >= target

        return reached

    async def paid(self, asset: str, amount: int, hold_after: bool = False) -> str:
        """A new invoice paid exactly and confirmed; returns its deposit address. With
        `hold_after`, the node stops mining on its own once the payment is in (before it is
        confirmed, so before any sweep can be sent): later transactions stay pending."""
        invoice = await self.gw.create_invoice("ethereum", asset, amount)
        if asset == "USDT":
            self.chain.pay_usdt(invoice.address, amount)
        else:
            self.chain.anvil.send_eth(self.chain.payer, invoice.address.lower(), amount)
        if hold_after:
            self.chain.anvil.rpc("evm_setAutomine", False)
        self.chain.anvil.mine(3)
        await self.gw.wait_status(invoice.id, "paid")
        return invoice.address


OpenSweeping = Callable[..., Awaitable[Sweeping]]


@pytest.fixture
async def open_sweeping(
    chain: Chain, tmp_path: Path, backend: Backend
) -> AsyncIterator[OpenSweeping]:
    """`await open_sweeping(book)`: a gateway with a gas key (funded with 1 ETH), sweeping
    every second; `book` is the network's price book (None: none); a sweep pending
    `replace_after` seconds is replaced. Closed afterwards."""
    opened: list[GatewayUnderTest] = []
    key_file = tmp_path / "gas.key"
    key_file.write_text(GAS_KEY + "\n")
    key_file.chmod(0o600)
    chain.anvil.send_eth(chain.anvil.accounts[0], GAS_KEY_ADDRESS.lower(), ETHER)
    factory_ready = False

    async def make(
        book: PriceBook | None, tails: bool = True, replace_after: int = 600
    ) -> Sweeping:
        nonlocal factory_ready
        path = tmp_path / "sweeps.duckdb"
        settings = replace(
            settings_for(path, [chain], postgres_url=backend.url_for(path)),
            sweep=SweepSettings(
                gas_key_file=key_file, gas_multiple=10, interval=1, replace_after=replace_after
            ),
            price_books={"ethereum": book} if book is not None else {},
        )
        gateway = Gateway(settings, clock=ShiftedClock())
        gateway.open()
        if not factory_ready:
            deploy_factory(chain.anvil)
            factory_ready = True
        assert await gateway.stores.verify_factories(settings.networks) == {}
        stores = [s for s in gateway.stores.stores.values() if s.treasuries]
        if stores:
            store = stores[0]
        else:
            treasury = {"ethereum": checksum(chain.anvil.accounts[5])}
            store, _ = await gateway.stores.create_forwarder_store("shop", treasury)
        gw = GatewayUnderTest(gateway, store, ShiftedClock())
        opened.append(gw)
        if tails:
            gw.start_tails()
            await gw.wait_processed("ethereum", chain.anvil.head())
        sweepers = [
            loop
            for loop in background_loops(gateway)
            if "weeper" in getattr(loop, "__qualname__", "")
        ]  # fmt: skip  (the loops `chainpay serve` runs: leased on PostgreSQL)
        assert len(sweepers) == 1
        gateway.start_workers(sweepers)
        return Sweeping(gw, chain)

    yield make
    for gw in opened:
        await gw.close()


def eth_usd_book(chain: Chain, usdt_pegged: bool) -> PriceBook:
    feed = chain.anvil.deploy("TestAggregator", 8, "ETH/USD test feed")
    chain.anvil.send_tx(chain.anvil.accounts[0], feed, calldata("setAnswer(int256)", ETH_USD))
    pegs = (PricePeg("USDT", "USD"),) if usdt_pegged else ()
    return PriceBook(feeds=(PriceFeed("ETH/USD", checksum(feed), 3600),), pegs=pegs)


async def test_a_batch_worth_the_multiple_of_its_gas_is_sent_and_one_below_is_not(
    chain: Chain, open_sweeping: OpenSweeping
) -> None:
    # given a sweeping gateway where USDT is pegged to USD and ETH has a USD feed ($3,000);
    # a sweep of one address costs at most ~150k gas x 3 gwei ~ $1.35, so 10x is under $15
    sweeping = await open_sweeping(eth_usd_book(chain, usdt_pegged=True))
    anvil = chain.anvil
    usdt_before = token_balance(anvil, chain.usdt, sweeping.treasury)
    gas_before = anvil.balance(GAS_KEY_ADDRESS)

    # when an invoice of 0.01 USDT is paid
    small = await sweeping.paid("USDT", USDT // 100)
    skipped = sweeping.skipped("below_multiple")
    await sweeping.rounds(2)

    # then the sweeper weighs it and sends nothing: a cent is far below 10 x its gas
    assert sweeping.skipped("below_multiple") > skipped
    assert nonce(anvil, "pending") == 0
    assert token_balance(anvil, chain.usdt, small) == USDT // 100

    # when a second invoice of 1,000 USDT is paid (the same treasury: one batch)
    spent_before = sample("chainpay_sweep_gas_spent_wei_total", network="ethereum")
    large = await sweeping.paid("USDT", 1000 * USDT)

    # then one sweep moves both, exactly, to the treasury, paid by the gas key
    await eventually(
        _reaches(lambda: token_balance(anvil, chain.usdt, sweeping.treasury),
                 usdt_before + 1000 * USDT + USDT // 100),
        60,
    )  # fmt: skip
    await sweeping.rounds(2)
    assert nonce(anvil) == nonce(anvil, "pending") == 1  # one transaction, never a second
    assert token_balance(anvil, chain.usdt, small) == token_balance(anvil, chain.usdt, large) == 0
    receipt = anvil.rpc("eth_getTransactionReceipt", _sweep_hash(anvil))
    paid = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert anvil.balance(GAS_KEY_ADDRESS) == gas_before - paid  # the key paid the gas, only
    assert receipt["to"].lower() == _factory(sweeping).lower()
    spent = sample("chainpay_sweep_gas_spent_wei_total", network="ethereum") - spent_before
    assert spent == float(paid)
    assert sample(
        "chainpay_gas_key_balance_wei", network="ethereum", address=GAS_KEY_ADDRESS
    ) == float(gas_before - paid)


async def test_native_coin_is_weighed_in_wei_and_an_unpriced_token_is_left_for_the_operator(
    chain: Chain, open_sweeping: OpenSweeping, caplog: pytest.LogCaptureFixture
) -> None:
    # given a price book with ETH/USD but nothing for USDT
    sweeping = await open_sweeping(eth_usd_book(chain, usdt_pegged=False))
    anvil = chain.anvil
    caplog.set_level(logging.INFO, logger="indexer.workers.sweeper")
    eth_before = anvil.balance(sweeping.treasury)

    # when a 1,000 USDT invoice and a 1 ETH invoice are paid
    usdt_address = await sweeping.paid("USDT", 1000 * USDT)
    eth_address = await sweeping.paid("ETH", ETHER)

    # then the ETH is swept (1 ETH is far above 10 x the gas) and the USDT stays where it is
    await eventually(_reaches(lambda: anvil.balance(sweeping.treasury), eth_before + ETHER), 60)
    await sweeping.rounds(3)
    assert anvil.balance(eth_address) == 0
    assert token_balance(anvil, chain.usdt, usdt_address) == 1000 * USDT
    assert nonce(anvil, "pending") == 1
    assert sample("chainpay_sweep_asset_unpriced", network="ethereum", asset="USDT") == 1
    # and said once, not every round
    unpriced = [r for r in caplog.records if "USDT is not swept automatically" in r.getMessage()]
    assert len(unpriced) == 1, [r.getMessage() for r in unpriced]
    # and the operator can still print its sweep
    g = sweeping.gw.gateway
    plan = await sweep_plan(g.db, g.stores, g.settings.networks["ethereum"], None, None)
    assert plan["total"] == {"USDT": "1000"}
    assert plan["transactions"][0]["addresses"] == [usdt_address]


async def test_a_restart_with_a_sweep_pending_does_not_send_it_again(
    chain: Chain, open_sweeping: OpenSweeping
) -> None:
    # given a paid 1 ETH invoice, and a node that holds transactions until told to mine
    first = await open_sweeping(None)
    anvil = chain.anvil
    eth_before = anvil.balance(first.treasury)
    address = await first.paid("ETH", ETHER, hold_after=True)  # not after: a sweep may be mined

    # when the sweeper sends its sweep, and the gateway stops before it is mined
    await eventually(_reaches(lambda: nonce(anvil, "pending"), 1), 60)
    await first.gw.close()

    # then a new gateway on the same books waits for the pending sweep instead of sending one
    second = await open_sweeping(None, tails=False)
    busy = second.skipped("key_busy")
    sent = second.sent()
    rounds = second.ticks() + 2

    async def decided() -> bool:  # two full rounds, or a second transaction (then it hangs)
        return second.ticks() >= rounds or nonce(anvil, "pending") > 1

    await eventually(decided, 60)
    assert nonce(anvil, "pending") == 1 and nonce(anvil) == 0  # still the first one alone
    assert second.sent() == sent
    assert second.skipped("key_busy") >= busy + 2
    assert anvil.balance(address) == ETHER

    # and once mined, the next rounds find the address empty: one sweep, exactly 1 ETH
    anvil.mine(1)
    anvil.rpc("evm_setAutomine", True)
    await second.rounds(2)
    assert nonce(anvil) == nonce(anvil, "pending") == 1
    assert second.sent() == sent
    assert anvil.balance(address) == 0
    assert anvil.balance(first.treasury) == eth_before + ETHER


async def test_a_sweep_stuck_past_replace_after_is_replaced_at_its_nonce_with_higher_fees(
    chain: Chain, open_sweeping: OpenSweeping
) -> None:
    # given a gateway that replaces a sweep pending for 2 s, and a node that holds transactions
    sweeping = await open_sweeping(None, replace_after=2)
    anvil = chain.anvil
    eth_before = anvil.balance(sweeping.treasury)
    sent, replaced = sweeping.sent(), sample_replaced()
    address = await sweeping.paid("ETH", ETHER, hold_after=True)
    await eventually(_reaches(lambda: nonce(anvil, "pending"), 1), 60)
    first = _pending_sweep(anvil)
    assert _pending_since() > 0

    # when it stays pending past replace_after (no block is mined)
    await eventually(_reaches(lambda: sample_replaced(), replaced + 1), 60)

    # then the pool holds one transaction of the gas key, at the same nonce, with both fees
    # above the first's by more than the +10% a replacement needs; and no new nonce is used
    second = _pending_sweep(anvil)
    assert second["hash"] != first["hash"] and second["nonce"] == first["nonce"] == "0x0"
    for fee in ("maxFeePerGas", "maxPriorityFeePerGas"):
        assert int(second[fee], 16) * 100 >= int(first[fee], 16) * 110, fee
    assert nonce(anvil, "pending") == 1 and nonce(anvil) == 0
    assert sweeping.sent() >= sent + 2

    # and once mined, the replacement alone moved exactly 1 ETH, and nothing more is sent
    anvil.mine(1)
    anvil.rpc("evm_setAutomine", True)
    await eventually(_reaches(lambda: anvil.balance(sweeping.treasury), eth_before + ETHER), 60)
    assert _sweep_hash(anvil) != first["hash"]  # the replacement (or a later one) was mined
    assert anvil.rpc("eth_getTransactionReceipt", first["hash"]) is None
    await sweeping.rounds(2)
    assert nonce(anvil) == nonce(anvil, "pending") == 1
    assert anvil.balance(address) == 0
    assert anvil.balance(sweeping.treasury) == eth_before + ETHER
    assert _pending_since() == 0


async def test_after_a_restart_a_stuck_sweep_of_unknown_fees_is_replaced_once_worth_it(
    chain: Chain, open_sweeping: OpenSweeping
) -> None:
    # given a sweep sent by a gateway that then stopped, still pending (fees unknown to the next)
    first = await open_sweeping(None)
    anvil = chain.anvil
    eth_before = anvil.balance(first.treasury)
    address = await first.paid("ETH", ETHER, hold_after=True)
    await eventually(_reaches(lambda: nonce(anvil, "pending"), 1), 60)
    stuck = _pending_sweep(anvil)
    await first.gw.close()

    # when a new gateway, which replaces after 1 s, finds it
    second = await open_sweeping(None, tails=False, replace_after=1)
    replaced = sample_replaced()
    await eventually(_reaches(lambda: sample_replaced(), replaced + 1), 60)

    # then the node's refusals of equal fees raised its offer above the stuck one's
    replacement = _pending_sweep(anvil)
    assert replacement["hash"] != stuck["hash"] and replacement["nonce"] == "0x0"
    assert int(replacement["maxFeePerGas"], 16) * 100 >= int(stuck["maxFeePerGas"], 16) * 110
    assert nonce(anvil, "pending") == 1

    # and once mined, one sweep moved exactly 1 ETH
    anvil.mine(1)
    anvil.rpc("evm_setAutomine", True)
    await eventually(_reaches(lambda: anvil.balance(first.treasury), eth_before + ETHER), 60)
    await second.rounds(2)
    assert nonce(anvil) == nonce(anvil, "pending") == 1
    assert anvil.balance(address) == 0
    assert anvil.balance(first.treasury) == eth_before + ETHER


def sample_replaced() -> float:
    return sample("chainpay_sweeps_replaced_total", network="ethereum")


def _pending_since() -> float:
    return sample("chainpay_gas_key_pending_since_timestamp_seconds", network="ethereum")


def _pending_sweep(anvil: Anvil) -> dict[str, str]:
    """The gas key's one transaction in the node's pool."""
    pool = anvil.rpc("txpool_content")["pending"].get(GAS_KEY_ADDRESS.lower(), {})
    assert len(pool) == 1, pool
    return dict(next(iter(pool.values())))


def _reaches(read: Callable[[], int | float], target: int | float) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return read() >= target

    return reached


def _sweep_hash(anvil: Anvil) -> str:
    """The gas key's only transaction (nonce 0), found by scanning back from the head."""
    for number in range(anvil.head(), -1, -1):
        block = anvil.rpc("eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            if tx["from"].lower() == GAS_KEY_ADDRESS.lower():
                return str(tx["hash"])
    raise AssertionError("the gas key sent nothing")


def _factory(sweeping: Sweeping) -> str:
    from indexer import forwarder

    return forwarder.factory_for(sweeping.gw.gateway.settings.networks["ethereum"])
