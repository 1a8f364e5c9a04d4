"""The books of sweeps on anvil: each sweep recorded once, and each payment's swept_by, through
paying again after a sweep and a reorg that drops the sweep."""

from __future__ import annotations

from typing import Any

import pytest

from indexer.domain.sweep import Sweep
from tests.integration.test_forwarder_stores import forwarder_store
from tests.integration.test_forwarder_sweeps import plan, send_all
from tests.integration.test_indexer_reorgs import mine_other_branch, mined_in
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest

pytestmark = pytest.mark.anvil

USDT = 10**6
ETHER = 10**18


async def swept_by(gw: GatewayUnderTest, invoice_id: str) -> list[str | None]:
    """Each payment's swept_by as the API shows it, in chain order."""
    view = await gw.gateway.invoices.get(None, invoice_id)
    return [p["swept_by"] for p in view["payments"]]


async def sweeps(gw: GatewayUnderTest, include_orphaned: bool = False) -> list[Sweep]:
    return await gw.gateway.db.read(
        lambda c: c.chain.list_sweeps("ethereum", include_orphaned=include_orphaned)
    )


async def paid_usdt_and_eth(gw: GatewayUnderTest, chain: Chain) -> tuple[Any, Any]:
    """A forwarder store's USDT invoice paid 7.5 USDT and ETH invoice paid 0.25 ETH, confirmed."""
    await forwarder_store(gw, [chain])
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())
    usdt = await gw.create_invoice("ethereum", "USDT", 7_500_000)
    eth = await gw.create_invoice("ethereum", "ETH", ETHER // 4)
    chain.pay_usdt(usdt.address, 7_500_000)
    chain.anvil.send_eth(chain.payer, eth.address.lower(), ETHER // 4)
    chain.anvil.mine(3)
    await gw.wait_status(usdt.id, "paid")
    await gw.wait_status(eth.id, "paid")
    return usdt, eth


async def test_token_and_native_sweeps_are_recorded_and_each_payment_shows_its_sweep(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a paid USDT (6 decimals) and a paid ETH deposit address, not swept yet
    gw = await gateway_factory([chain])
    usdt, eth = await paid_usdt_and_eth(gw, chain)
    assert await swept_by(gw, usdt.id) == [None]
    assert await swept_by(gw, eth.id) == [None]

    # when the planned sweep is sent by another account
    [receipt] = send_all(chain, (await plan(gw))["transactions"], sender=7)
    tx = receipt["transactionHash"].lower()
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16))

    # then both sweeps are in the books, exact, and both payments show the sweep
    treasury = chain.anvil.accounts[5].lower()
    recorded = {(s.address, s.asset): s for s in await sweeps(gw)}
    assert len(recorded) == 2
    token_sweep = recorded[(usdt.address.lower(), "USDT")]
    native_sweep = recorded[(eth.address.lower(), "ETH")]
    assert (token_sweep.tx_hash, token_sweep.treasury, token_sweep.amount) == (
        tx, treasury, 7_500_000,
    )  # fmt: skip
    assert token_sweep.token == chain.usdt.lower()
    assert (native_sweep.tx_hash, native_sweep.treasury, native_sweep.amount) == (
        tx, treasury, ETHER // 4,
    )  # fmt: skip
    assert native_sweep.token is None
    assert await swept_by(gw, usdt.id) == [tx]
    assert await swept_by(gw, eth.id) == [tx]


async def test_a_payment_after_a_sweep_is_unswept_until_the_next_sweep(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a USDT deposit address paid and swept
    gw = await gateway_factory([chain])
    usdt, _ = await paid_usdt_and_eth(gw, chain)
    [first] = send_all(chain, (await plan(gw, asset="USDT"))["transactions"])
    await gw.wait_processed("ethereum", int(first["blockNumber"], 16))

    # when the customer pays the same address again
    chain.pay_usdt(usdt.address, 2 * USDT)
    chain.anvil.mine(3)
    await gw.wait_processed("ethereum", chain.anvil.head())

    # then the new payment is not swept, the first still is
    assert await swept_by(gw, usdt.id) == [first["transactionHash"].lower(), None]

    # and after the next sweep, it is swept by that one
    [second] = send_all(chain, (await plan(gw, asset="USDT"))["transactions"])
    await gw.wait_processed("ethereum", int(second["blockNumber"], 16))
    assert await swept_by(gw, usdt.id) == [
        first["transactionHash"].lower(),
        second["transactionHash"].lower(),
    ]
    amounts = [(s.tx_hash, s.amount) for s in await sweeps(gw) if s.asset == "USDT"]
    assert amounts == [
        (first["transactionHash"].lower(), 7_500_000),
        (second["transactionHash"].lower(), 2 * USDT),
    ]


async def test_a_reorg_that_drops_a_sweep_unsweeps_its_payments_until_it_is_re_included(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a paid USDT and ETH deposit address swept in the head block
    gw = await gateway_factory([chain])
    usdt, eth = await paid_usdt_and_eth(gw, chain)
    transactions = (await plan(gw))["transactions"]
    snapshot = chain.anvil.snapshot()
    [receipt] = send_all(chain, transactions)
    tx = receipt["transactionHash"]
    old_block = int(receipt["blockNumber"], 16)
    raw = chain.anvil.rpc("eth_getRawTransactionByHash", tx)
    await gw.wait_processed("ethereum", old_block)
    assert await swept_by(gw, usdt.id) == [tx.lower()]

    # when a longer branch without the sweep replaces its block
    chain.anvil.revert(snapshot)
    chain.anvil.rpc("anvil_dropAllTransactions")
    mine_other_branch(chain, 2)
    await gw.wait_processed("ethereum", old_block + 1)

    # then no payment is swept any more and the sweeps' rows are orphaned
    assert await swept_by(gw, usdt.id) == [None]
    assert await swept_by(gw, eth.id) == [None]
    assert await sweeps(gw) == []
    orphaned = await sweeps(gw, include_orphaned=True)
    assert [(s.block_number, s.orphaned) for s in orphaned] == [(old_block, True)] * 2

    # and when the same sweep is mined again on the new branch, it is recorded once
    chain.anvil.rpc("eth_sendRawTransaction", raw)
    new_block = await mined_in(chain, tx)
    chain.anvil.mine(1)
    await gw.wait_processed("ethereum", new_block)
    again = await sweeps(gw)
    assert sorted((s.asset, s.tx_hash, s.block_number, s.amount) for s in again) == [
        ("ETH", tx.lower(), new_block, ETHER // 4),
        ("USDT", tx.lower(), new_block, 7_500_000),
    ]
    assert await swept_by(gw, usdt.id) == [tx.lower()]
    assert await swept_by(gw, eth.id) == [tx.lower()]
    assert len(await sweeps(gw, include_orphaned=True)) == 4
