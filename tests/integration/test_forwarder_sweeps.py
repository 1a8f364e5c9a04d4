"""Sweeps of forwarder deposit addresses, planned from the books and the node, sent by anyone."""

from __future__ import annotations

import pytest

from api.command import UsageError
from api.contracts import sweep_plan
from indexer import forwarder
from tests.integration.test_forwarder_stores import forwarder_store
from tests.support.forwarders import token_balance
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest

pytestmark = pytest.mark.anvil

USDT = 10**6
ETHER = 10**18


async def plan(gw: GatewayUnderTest, network: str = "ethereum", **options: str) -> dict:
    g = gw.gateway
    return await sweep_plan(
        g.db, g.stores, g.settings.networks[network], options.get("asset"), options.get("min_value")
    )


def send_all(chain: Chain, transactions: list[dict], sender: int = 7) -> list[dict]:
    return [
        chain.anvil.send_tx(chain.anvil.accounts[sender], tx["to"], data=tx["data"], gas=tx["gas"])
        for tx in transactions
    ]


@pytest.mark.parametrize("count", [1, 10])
async def test_paid_addresses_are_swept_to_the_treasury_in_one_batch(
    chain: Chain, gateway_factory: GatewayFactory, count: int
) -> None:
    # given `count` paid USDT invoices, one of them paid twice, and an ETH invoice
    gw = await gateway_factory([chain])
    await forwarder_store(gw, [chain])
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())  # watching before anything is paid
    treasury = chain.anvil.accounts[5]
    invoices = [await gw.create_invoice("ethereum", "USDT", (i + 1) * USDT) for i in range(count)]
    never_paid = await gw.create_invoice("ethereum", "USDT", USDT)
    native = await gw.create_invoice("ethereum", "ETH", ETHER // 10)
    for i, invoice in enumerate(invoices):
        chain.pay_usdt(invoice.address, (i + 1) * USDT)
    chain.pay_usdt(invoices[0].address, 3 * USDT)  # paid twice
    chain.anvil.send_eth(chain.payer, native.address.lower(), ETHER // 10)
    chain.anvil.mine(3)
    for invoice in [*invoices, native]:
        await gw.wait_status(invoice.id, "paid")
    before = token_balance(chain.anvil, chain.usdt, treasury)
    eth_before = chain.anvil.balance(treasury)

    # when the sweep is planned
    swept = await plan(gw)

    # then one transaction sweeps every paid address (not the unpaid one), totals exact
    [tx] = swept["transactions"]
    assert set(tx["addresses"]) == {i.address for i in [*invoices, native]}
    assert never_paid.address not in tx["addresses"]
    usdt_total = sum(range(1, count + 1)) * USDT + 3 * USDT
    assert swept["total"] == {"ETH": "0.1", "USDT": f"{usdt_total / USDT:g}"}
    assert (tx["to"], tx["chain_id"], tx["value"]) == (
        forwarder.deterministic_factory(),
        chain.anvil.chain_id,
        "0",
    )

    # and when anyone sends it, the treasury has everything and the addresses nothing
    send_all(chain, swept["transactions"])
    assert token_balance(chain.anvil, chain.usdt, treasury) - before == usdt_total
    assert chain.anvil.balance(treasury) - eth_before == ETHER // 10
    for invoice in invoices:
        assert token_balance(chain.anvil, chain.usdt, invoice.address) == 0
    # and nothing is left to sweep
    assert await plan(gw) == {"transactions": [], "total": {}}


async def test_an_address_paid_again_after_its_sweep_is_swept_again(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory([chain])
    await forwarder_store(gw, [chain])
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())  # watching before anything is paid
    invoice = await gw.create_invoice("ethereum", "USDT", 2 * USDT)
    chain.pay_usdt(invoice.address, 2 * USDT)
    chain.anvil.mine(3)
    await gw.wait_status(invoice.id, "paid")
    first = await plan(gw)
    assert first["total"] == {"USDT": "2"}, first
    send_all(chain, first["transactions"])
    assert token_balance(chain.anvil, chain.usdt, invoice.address) == 0

    # when the customer pays the same address again
    chain.pay_usdt(invoice.address, 5 * USDT)
    chain.anvil.mine(3)

    # then the next sweep finds exactly that and moves it
    again = await plan(gw)
    assert again["total"] == {"USDT": "5"}
    send_all(chain, again["transactions"])
    assert token_balance(chain.anvil, chain.usdt, invoice.address) == 0


async def test_a_min_value_and_an_asset_filter_the_sweep(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    gw = await gateway_factory([chain])
    await forwarder_store(gw, [chain])
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())  # watching before anything is paid
    small = await gw.create_invoice("ethereum", "USDT", USDT)
    large = await gw.create_invoice("ethereum", "USDT", 50 * USDT)
    chain.pay_usdt(small.address, USDT)
    chain.pay_usdt(large.address, 50 * USDT)
    chain.anvil.mine(3)
    await gw.wait_status(large.id, "paid")
    await gw.wait_status(small.id, "paid")

    only_large = await plan(gw, asset="USDT", min_value="10")
    assert only_large["transactions"][0]["addresses"] == [large.address]
    assert (await plan(gw, asset="ETH"))["transactions"] == []
    with pytest.raises(UsageError):
        await plan(gw, min_value="10")
