"""A full payment after expiry, on a real anvil: pending money is never a settled shortfall.

Issue 10, item 10: while the late payment waited for its confirmations, the invoice read
`expired` + `underpaid` with `amount_due: "0"`, the merchant got `invoice.exception_changed`
and the checkout said "0 USDT is missing".
"""

from __future__ import annotations

import pytest

from api.checkout import page_state
from indexer.workers.expirer import Expirer
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest

pytestmark = pytest.mark.anvil

USDT = 10**6


async def expired_invoice(chain: Chain, gw: GatewayUnderTest) -> str:
    """A 10 USDT invoice whose deadline passed (chain and gateway clock 2 minutes on), expired
    by the real expirer before anything arrives."""
    invoice = await gw.create_invoice("ethereum", "USDT", 10 * USDT, expires_in=60)
    chain.anvil.rpc("evm_increaseTime", 120)
    gw.clock.advance(120)
    g = gw.gateway
    await Expirer(g.db, g.settings, gw.clock).tick()
    assert (await gw.invoice(invoice.id)).status.value == "expired"
    return invoice.id


async def view(gw: GatewayUnderTest, invoice_id: str) -> dict[str, object]:
    invoice = await gw.invoice(invoice_id)
    return gw.gateway.invoices.view(invoice, await gw.payments(invoice_id))


async def test_late_full_payment_confirming_is_not_underpaid_then_paid_late(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an expired 10 USDT invoice
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice_id = await expired_invoice(chain, gw)

    # when the full amount arrives after expiry, in a block not yet confirmed
    receipt = chain.pay_usdt((await gw.invoice(invoice_id)).address, 10 * USDT)
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16))

    # then it stays expired with no exception, the 10 USDT shown pending, nothing missing
    waiting = await view(gw, invoice_id)
    assert (waiting["status"], waiting["exception"]) == ("expired", None)
    assert (waiting["amount_confirmed"], waiting["amount_pending"]) == ("0", "10")
    assert waiting["amount_due"] == "0"
    assert page_state(await gw.invoice(invoice_id)) == "confirming"
    # and the merchant was told nothing about a shortfall
    assert await gw.events(invoice_id) == ["invoice.created", "invoice.expired"]

    # and when two more blocks confirm it, the invoice is paid late
    chain.anvil.mine(2)
    paid = await gw.wait_status(invoice_id, "paid")
    assert paid.exception is not None and paid.exception.value == "paid_late"
    assert (await view(gw, invoice_id))["amount_pending"] == "0"
    assert await gw.events(invoice_id) == [
        "invoice.created",
        "invoice.expired",
        "invoice.paid",
    ]


async def test_late_full_payment_reorged_away_leaves_expired_without_exception(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an expired 10 USDT invoice whose late full payment is waiting for confirmations
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice_id = await expired_invoice(chain, gw)
    snapshot = chain.anvil.snapshot()
    receipt = chain.pay_usdt((await gw.invoice(invoice_id)).address, 10 * USDT)
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16))

    # when a longer branch without the payment replaces its blocks
    chain.anvil.revert(snapshot)
    accounts = chain.anvil.accounts
    chain.anvil.send_eth(accounts[3], accounts[4], 1)
    chain.anvil.mine(2)
    await gw.wait_processed("ethereum", chain.anvil.head())

    # then the payment is reverted and the invoice is plainly expired: no shortfall, ever
    reverted = await view(gw, invoice_id)
    assert (reverted["status"], reverted["exception"]) == ("expired", None)
    assert (reverted["amount_received"], reverted["amount_pending"]) == ("0", "0")
    assert page_state(await gw.invoice(invoice_id)) == "expired"
    assert await gw.events(invoice_id) == [
        "invoice.created",
        "invoice.expired",
        "invoice.payment_reverted",
    ]
