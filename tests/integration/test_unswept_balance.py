"""The unswept balance of forwarder deposit addresses: the books' figure, its gauge, its threshold.

On a real gateway following anvil: paid and confirmed → the gauge shows the amount; after a
sweep the tail records → 0; paid again → the new amount; a reorg that drops the sweep → the
amount again. Pending payments and xpub stores never count.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from prometheus_client import REGISTRY

from api.bootstrap import background_loops
from api.contracts import sweep_plan
from indexer import metrics
from indexer.domain.network import Asset, Network
from indexer.workers.unswept import UnsweptGauge
from tests.integration.test_forwarder_stores import forwarder_store
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest, eventually

pytestmark = pytest.mark.anvil

USDT = 10**6
ETHER = 10**18


def gauge(name: str, asset: str, network: str = "ethereum") -> float | None:
    return REGISTRY.get_sample_value(name, {"network": network, "asset": asset})


def unswept_gauge(gw: GatewayUnderTest, alert_above: dict[str, str] | None = None) -> UnsweptGauge:
    g = gw.gateway
    return UnsweptGauge(g.db, g.settings.networks, alert_above or {}, interval=0.05)


async def sweep_everything(gw: GatewayUnderTest, chain: Chain) -> None:
    """Plan the sweep from the books and send it from a random account (anyone may)."""
    g = gw.gateway
    plan = await sweep_plan(g.db, g.stores, g.settings.networks["ethereum"], None, None)
    sender = "0x" + secrets.token_hex(20)
    chain.anvil.rpc("anvil_setBalance", sender, hex(10**20))
    chain.anvil.rpc("anvil_impersonateAccount", sender)
    for tx in plan["transactions"]:
        chain.anvil.send_tx(sender, tx["to"], data=tx["data"], gas=tx["gas"])


async def measured(meter: UnsweptGauge, expected: dict[tuple[str, str], int]) -> None:
    """Wait until the books say `expected` (the tail records blocks in the background)."""

    async def reached() -> bool:
        amounts = await meter.measure()
        return {k: v for k, v in amounts.items() if v} == expected

    await eventually(reached)


async def test_the_gauge_follows_payments_sweeps_and_new_payments(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a forwarder store and an xpub store on the same chain
    gw = await gateway_factory([chain])
    xpub_store = gw.store
    await forwarder_store(gw, [chain])
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())
    meter = unswept_gauge(gw)
    usdt = await gw.create_invoice("ethereum", "USDT", 12 * USDT)
    native = await gw.create_invoice("ethereum", "ETH", ETHER // 10)
    forwarder = gw.store
    gw.store = xpub_store
    xpub = await gw.create_invoice("ethereum", "USDT", 100 * USDT)
    gw.store = forwarder

    # when all three are paid and confirmed (ETH through a contract: an internal transfer)
    chain.pay_usdt(usdt.address, 12 * USDT + 1)
    chain.pay_usdt(xpub.address, 100 * USDT)
    chain.anvil.forward(chain.forwarder, chain.payer, native.address.lower(), ETHER // 10)
    chain.anvil.mine(3)
    for invoice in (usdt, native, xpub):
        await gw.wait_status(invoice.id, "paid")

    # then the forwarder store's deposits are unswept, to the base unit; the xpub store's never
    await measured(meter, {("ethereum", "USDT"): 12 * USDT + 1, ("ethereum", "ETH"): ETHER // 10})
    assert gauge("chainpay_unswept_amount", "USDT") == 12.000001
    assert gauge("chainpay_unswept_amount", "ETH") == 0.1

    # and when the sweep is sent and the tail records it, nothing is unswept
    await sweep_everything(gw, chain)
    await measured(meter, {})
    assert gauge("chainpay_unswept_amount", "USDT") == 0.0
    assert gauge("chainpay_unswept_amount", "ETH") == 0.0

    # and when the address is paid again, a pending payment does not count yet
    chain.pay_usdt(usdt.address, 5 * USDT)
    await eventually(lambda: _has_pending(gw, usdt.id))
    assert set((await meter.measure()).values()) == {0}

    # but once confirmed it does, alone
    chain.anvil.mine(3)
    await measured(meter, {("ethereum", "USDT"): 5 * USDT})
    assert gauge("chainpay_unswept_amount", "USDT") == 5.0


async def _has_pending(gw: GatewayUnderTest, invoice_id: str) -> bool:
    return any(p.state.value == "pending" for p in await gw.payments(invoice_id))


async def test_a_reorg_that_drops_the_sweep_puts_the_value_back(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a paid, confirmed deposit whose sweep the tail recorded
    gw = await gateway_factory([chain])
    await forwarder_store(gw, [chain])
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())
    meter = unswept_gauge(gw)
    invoice = await gw.create_invoice("ethereum", "USDT", 7 * USDT)
    chain.pay_usdt(invoice.address, 7 * USDT)
    chain.anvil.mine(3)
    await gw.wait_status(invoice.id, "paid")
    await measured(meter, {("ethereum", "USDT"): 7 * USDT})
    before_sweep = chain.anvil.snapshot()
    await sweep_everything(gw, chain)
    await measured(meter, {})

    # when a reorg replaces the sweep's block with a longer chain without it
    chain.anvil.revert(before_sweep)
    chain.anvil.mine(4)

    # then the sweep no longer counts: the value is unswept again
    await measured(meter, {("ethereum", "USDT"): 7 * USDT})
    swept = await gw.query("SELECT count(*) FROM sweeps WHERE orphaned")
    assert swept == [(1,)]


async def test_thresholds_come_from_alert_above_for_every_network_with_the_asset(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given two networks with USDT, and an alert_above for USDT only
    gw = await gateway_factory([chain])
    bsc = Network(
        name="bsc-test",
        chain_id=97,
        rpc_url="ws://127.0.0.1:1",
        confirmations=3,
        native=Asset("BNB", 18),
        tokens=(Asset("USDT", 18, "0x" + "5" * 40),),
    )
    networks = {**gw.gateway.settings.networks, "bsc-test": bsc}

    # when the gauge starts
    UnsweptGauge(gw.gateway.db, networks, {"USDT": "1000.25"}).set_thresholds()

    # then each network's USDT has the threshold in asset units; ETH and BNB have none
    assert gauge("chainpay_unswept_alert_threshold", "USDT") == 1000.25
    assert gauge("chainpay_unswept_alert_threshold", "USDT", "bsc-test") == 1000.25
    assert gauge("chainpay_unswept_alert_threshold", "ETH") is None
    assert gauge("chainpay_unswept_alert_threshold", "BNB", "bsc-test") is None


async def test_serve_runs_the_gauge_and_a_stopped_gauge_reports_nothing(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given the loops `chainpay serve` runs
    gw = await gateway_factory([chain])
    names = [getattr(loop, "__qualname__", "") for loop in background_loops(gw.gateway)]
    assert {"UnsweptGauge.run", "leased(unswept)"} & set(names), names

    # when the gauge runs, every configured asset has a series (0 when nothing waits)
    metrics.UNSWEPT_AMOUNT.clear()
    task = asyncio.ensure_future(unswept_gauge(gw).run())
    await eventually(lambda: _series_present("USDT"))
    assert gauge("chainpay_unswept_amount", "ETH") == 0.0

    # and when it stops (its lease lost on a shared store), its series go with it
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gauge("chainpay_unswept_amount", "USDT") is None
    assert gauge("chainpay_unswept_amount", "ETH") is None


async def _series_present(asset: str) -> bool:
    return gauge("chainpay_unswept_amount", asset) is not None
