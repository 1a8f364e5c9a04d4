"""Extra money on a paid invoice, then a reorg, on a real anvil: the exception follows the
surviving confirmed money (issue 10, item 11: pay 10 of 10, pay 1 more, a reorg removes the
extra, and the invoice stayed `overpaid`)."""

from __future__ import annotations

import pytest

from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest, eventually

pytestmark = pytest.mark.anvil

USDT = 10**6


async def paid_invoice(chain: Chain, gw: GatewayUnderTest) -> str:
    """A 10 USDT invoice paid exactly, with 3 confirmations."""
    invoice = await gw.create_invoice("ethereum", "USDT", 10 * USDT)
    chain.pay_usdt(invoice.address, 10 * USDT)
    chain.anvil.mine(2)
    await gw.wait_status(invoice.id, "paid")
    return invoice.id


def mine_other_branch(chain: Chain, blocks: int) -> None:
    """`blocks` blocks whose first differs from anything mined before (an unrelated tx)."""
    accounts = chain.anvil.accounts
    chain.anvil.send_eth(accounts[3], accounts[4], 1)
    chain.anvil.mine(blocks - 1)


async def test_extra_payment_confirming_is_not_overpaid_and_its_reorg_leaves_paid(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a paid 10 USDT invoice
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice_id = await paid_invoice(chain, gw)
    snapshot = chain.anvil.snapshot()

    # when 1 USDT more arrives, in a block not yet confirmed
    receipt = chain.pay_usdt((await gw.invoice(invoice_id)).address, 1 * USDT)
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16))

    # then it shows as pending, not as a surplus
    extra = await gw.invoice(invoice_id)
    assert (extra.status.value, extra.exception) == ("paid", None)
    assert (extra.amount_received, extra.amount_confirmed) == (11 * USDT, 10 * USDT)

    # and when a longer branch without it replaces its blocks
    chain.anvil.revert(snapshot)
    mine_other_branch(chain, 3)
    await gw.wait_processed("ethereum", chain.anvil.head())

    # then the invoice is paid, exactly, with the reverted payment reported and nothing else
    after = await gw.invoice(invoice_id)
    assert (after.status.value, after.exception, after.reorg_flagged) == ("paid", None, False)
    assert (after.amount_received, after.amount_confirmed) == (10 * USDT, 10 * USDT)
    assert await gw.events(invoice_id) == [
        "invoice.created",
        "invoice.pending",
        "invoice.paid",
        "invoice.payment_reverted",
    ]


async def test_deep_reorg_of_a_confirmed_surplus_clears_overpaid_and_flags(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a paid 10 USDT invoice made overpaid by 1 USDT more, confirmed
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice_id = await paid_invoice(chain, gw)
    snapshot = chain.anvil.snapshot()
    chain.pay_usdt((await gw.invoice(invoice_id)).address, 1 * USDT)
    chain.anvil.mine(2)

    async def overpaid() -> bool:
        exception = (await gw.invoice(invoice_id)).exception
        return exception is not None and exception.value == "overpaid"

    await eventually(overpaid)

    # when a branch longer than the confirmation depth, without the extra payment, wins
    chain.anvil.revert(snapshot)
    mine_other_branch(chain, 5)
    await gw.wait_processed("ethereum", chain.anvil.head())

    # then the surplus is gone from the books, the exception is recomputed with its event, and
    # the invoice is flagged: confirmed money vanished (the merchant may have refunded it)
    after = await gw.invoice(invoice_id)
    assert (after.status.value, after.exception, after.reorg_flagged) == ("paid", None, True)
    assert after.amount_confirmed == 10 * USDT
    assert await gw.events(invoice_id) == [
        "invoice.created",
        "invoice.pending",
        "invoice.paid",
        "invoice.exception_changed",
        "invoice.payment_reverted",
        "invoice.exception_changed",
        "invoice.reorg_flagged",
    ]
