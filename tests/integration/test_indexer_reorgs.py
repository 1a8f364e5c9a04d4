"""Reorgs on a real anvil: a payment dropped by a new branch, re-included, or buried too deep."""

from __future__ import annotations

import asyncio
import logging

import pytest

from indexer.domain.invoice import PaymentState
from indexer.metrics import REORGS
from tests.support.gateway import Chain, GatewayFactory

pytestmark = pytest.mark.anvil

USDT = 10**6


def mine_other_branch(chain: Chain, blocks: int) -> None:
    """Mine `blocks` blocks whose first differs from anything mined before (an unrelated tx)."""
    accounts = chain.anvil.accounts
    chain.anvil.send_eth(accounts[3], accounts[4], 1)
    if blocks > 1:
        chain.anvil.mine(blocks - 1)


async def test_reorg_before_confirmations_drops_payment(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a pending invoice whose payment is in the head block
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)
    chain.anvil.token_mint(chain.usdt, chain.payer, 5 * USDT)
    snapshot = chain.anvil.snapshot()
    receipt = chain.anvil.token_transfer(chain.usdt, chain.payer, invoice.address.lower(), 5 * USDT)
    await gw.wait_status(invoice.id, "pending")
    reorgs_before = REORGS.labels("ethereum")._value.get()

    # when the chain reorganises onto a longer branch without the payment
    chain.anvil.revert(snapshot)
    mine_other_branch(chain, 2)

    # then the payment is orphaned, the invoice is new again, and the merchant is told
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16) + 1)
    reverted = await gw.wait_status(invoice.id, "new")
    assert reverted.amount_received == 0
    [payment] = await gw.payments(invoice.id)
    assert payment.state is PaymentState.ORPHANED
    assert await gw.events(invoice.id) == [
        "invoice.created",
        "invoice.pending",
        "invoice.payment_reverted",
    ]
    rows = await gw.query(
        "SELECT orphaned FROM transfers WHERE tx_hash = ?", [receipt["transactionHash"].lower()]
    )
    assert rows == [(True,)]
    assert REORGS.labels("ethereum")._value.get() == reorgs_before + 1

    # and when the new branch is confirmed, nothing comes back
    chain.anvil.mine(3)
    await gw.wait_processed("ethereum", chain.anvil.head())
    assert (await gw.invoice(invoice.id)).status.value == "new"


async def test_reorg_re_including_payment_in_another_block_keeps_one_payment(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a pending invoice whose payment is in the head block
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)
    chain.anvil.token_mint(chain.usdt, chain.payer, 5 * USDT)
    snapshot = chain.anvil.snapshot()
    receipt = chain.anvil.token_transfer(chain.usdt, chain.payer, invoice.address.lower(), 5 * USDT)
    tx_hash = receipt["transactionHash"]
    old_block = int(receipt["blockNumber"], 16)
    raw = chain.anvil.rpc("eth_getRawTransactionByHash", tx_hash)
    await gw.wait_status(invoice.id, "pending")

    # when a new branch mines an empty block first and the same transaction one block later
    chain.anvil.revert(snapshot)
    # anvil may put the reverted transaction back in its pool; drop it so the block is empty
    chain.anvil.rpc("anvil_dropAllTransactions")
    chain.anvil.mine(1)
    chain.anvil.rpc("eth_sendRawTransaction", raw)
    new_block = await mined_in(chain, tx_hash)  # automine may answer before the block exists
    assert new_block == old_block + 1
    chain.anvil.mine(2)

    # then the same payment row moved to the new block and the invoice is paid from it
    paid = await gw.wait_status(invoice.id, "paid")
    assert paid.amount_received == 5 * USDT
    [payment] = await gw.payments(invoice.id)
    assert (payment.tx_hash, payment.block_number) == (tx_hash.lower(), new_block)
    assert payment.state is PaymentState.CONFIRMED
    rows = await gw.query(
        "SELECT block_number, orphaned FROM transfers WHERE tx_hash = ? ORDER BY block_number",
        [tx_hash.lower()],
    )
    assert rows == [(old_block, True), (new_block, False)]


async def test_reorg_deeper_than_confirmations_flags_a_paid_invoice(
    chain: Chain, gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # given an invoice paid with 3 confirmations
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)
    chain.anvil.token_mint(chain.usdt, chain.payer, 5 * USDT)
    snapshot = chain.anvil.snapshot()
    chain.anvil.token_transfer(chain.usdt, chain.payer, invoice.address.lower(), 5 * USDT)
    chain.anvil.mine(2)
    await gw.wait_status(invoice.id, "paid")

    # when a longer branch without the payment replaces all three blocks
    with caplog.at_level(logging.ERROR):
        chain.anvil.revert(snapshot)
        mine_other_branch(chain, 4)
        await gw.wait_processed("ethereum", chain.anvil.head())
        flagged = await gw.invoice(invoice.id)

    # then it stays paid, is flagged, and an error is logged
    assert flagged.status.value == "paid"
    assert flagged.reorg_flagged
    assert "invoice.reorg_flagged" in await gw.events(invoice.id)
    assert any(invoice.id in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


async def mined_in(chain: Chain, tx_hash: str, within: float = 10.0) -> int:
    """The block number of a transaction's receipt, once anvil has mined it."""
    deadline = asyncio.get_running_loop().time() + within
    while (receipt := chain.anvil.rpc("eth_getTransactionReceipt", tx_hash)) is None:
        assert asyncio.get_running_loop().time() < deadline, f"{tx_hash} was not mined"
        await asyncio.sleep(0.05)
    return int(receipt["blockNumber"], 16)
