"""Token payments end to end: a real anvil, the chain tail in-process, the books in DuckDB."""

from __future__ import annotations

import pytest

from indexer.domain.invoice import PaymentState
from tests.support.gateway import Chain, GatewayFactory

pytestmark = pytest.mark.anvil

USDT = 10**6


async def test_exact_payment_goes_pending_then_paid_after_confirmations(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice for 12.5 USDT and the tail following the chain
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 12_500_000)
    await gw.wait_processed("ethereum", chain.anvil.head())

    # when the exact amount arrives in one block
    receipt = chain.pay_usdt(invoice.address, 12_500_000)
    block = int(receipt["blockNumber"], 16)

    # then the invoice is pending with one unconfirmed payment
    pending = await gw.wait_status(invoice.id, "pending")
    assert pending.amount_received == 12_500_000
    [payment] = await gw.payments(invoice.id)
    assert payment.tx_hash == receipt["transactionHash"].lower()
    assert payment.block_number == block
    assert payment.state is PaymentState.PENDING
    assert payment.counted

    # and when two more blocks bury it (3 confirmations)
    chain.anvil.mine(2)

    # then it is paid, once, with the events in order
    paid = await gw.wait_status(invoice.id, "paid")
    assert paid.exception is None
    assert paid.amount_confirmed == 12_500_000
    [payment] = await gw.payments(invoice.id)
    assert payment.state is PaymentState.CONFIRMED
    assert payment.confirmations == 3
    assert await gw.events(invoice.id) == ["invoice.created", "invoice.pending", "invoice.paid"]
    transfers = await gw.query(
        "SELECT kind, asset, token, to_address, amount::VARCHAR, orphaned FROM transfers "
        "WHERE tx_hash = ?",
        [payment.tx_hash],
    )
    assert transfers == [("erc20", "USDT", chain.usdt, invoice.address.lower(), "12500000", False)]


async def test_two_partial_payments_add_up_to_paid(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice for 10 USDT
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 10 * USDT)

    # when 4 USDT arrive, then 6 USDT
    chain.pay_usdt(invoice.address, 4 * USDT)
    first = await gw.wait_status(invoice.id, "pending")
    chain.pay_usdt(invoice.address, 6 * USDT)
    chain.anvil.mine(2)

    # then the first left it pending with 4 received, and both together paid it exactly
    assert first.amount_received == 4 * USDT
    paid = await gw.wait_status(invoice.id, "paid")
    assert (paid.amount_received, paid.exception) == (10 * USDT, None)
    assert [p.amount for p in await gw.payments(invoice.id)] == [4 * USDT, 6 * USDT]


async def test_over_payment_is_paid_with_exception_overpaid(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice for 5 USDT
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)

    # when 7 USDT arrive and are confirmed
    chain.pay_usdt(invoice.address, 7 * USDT)
    chain.anvil.mine(2)

    # then it is paid, overpaid, with everything received on the books
    paid = await gw.wait_status(invoice.id, "paid")
    assert paid.exception is not None and paid.exception.value == "overpaid"
    assert paid.amount_received == 7 * USDT


async def test_late_payment_within_monitoring_window_is_paid_late(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice expiring in 60 s, and both the chain and the gateway 2 minutes later
    # (anvil's evm_increaseTime moves block timestamps; the gateway clock moves with it)
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 3 * USDT, expires_in=60)
    chain.anvil.rpc("evm_increaseTime", 120)
    gw.clock.advance(120)

    # when the full amount arrives in a block mined after expiry, and is confirmed
    receipt = chain.pay_usdt(invoice.address, 3 * USDT)
    chain.anvil.mine(2)

    # then the invoice is paid late (inside the 24 h monitoring window)
    paid = await gw.wait_status(invoice.id, "paid")
    assert paid.exception is not None and paid.exception.value == "paid_late"
    [payment] = await gw.payments(invoice.id)
    assert payment.block_time > invoice.expires_at
    assert payment.tx_hash == receipt["transactionHash"].lower()
    assert "invoice.paid" in await gw.events(invoice.id)


async def test_same_symbol_token_at_another_contract_is_ignored(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice for 5 USDT
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)

    # when a token also called USDT, with 6 decimals, but at another contract pays it
    receipt = chain.pay_usdt(invoice.address, 5 * USDT, token=chain.spoof)
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16) + 0)

    # then nothing is recorded: no payment, no transfer row, the invoice stays new
    assert (await gw.invoice(invoice.id)).status.value == "new"
    assert await gw.payments(invoice.id) == []
    assert await gw.query("SELECT * FROM transfers WHERE token = ?", [chain.spoof]) == []


async def test_zero_value_transfer_is_stored_but_never_a_payment(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)

    # when a zero-value Transfer of the configured USDT names its address
    receipt = chain.anvil.token_transfer(chain.usdt, chain.payer, invoice.address.lower(), 0)
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16))

    # then analysts see the transfer, but no payment exists and the invoice stays new
    rows = await gw.query(
        "SELECT amount::VARCHAR FROM transfers WHERE tx_hash = ?",
        [receipt["transactionHash"].lower()],
    )
    assert rows == [("0",)]
    assert await gw.payments(invoice.id) == []
    assert (await gw.invoice(invoice.id)).status.value == "new"


async def test_wrong_asset_is_recorded_on_the_invoice_but_not_counted(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a USDT invoice
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)

    # when ETH is sent to its address instead
    receipt = chain.anvil.send_eth(chain.payer, invoice.address.lower(), 10**17)
    chain.anvil.mine(2)
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16) + 2)

    # then the payment is visible on the invoice, not counted, and the invoice stays new
    [payment] = await gw.payments(invoice.id)
    assert (payment.asset, payment.amount, payment.counted) == ("ETH", 10**17, False)
    assert payment.log_index == -1
    current = await gw.invoice(invoice.id)
    assert (current.status.value, current.amount_received) == ("new", 0)
    view = await gw.gateway.invoices.get(None, invoice.id)
    assert view["payments"][0]["counted"] is False


async def test_uint256_max_transfer_round_trips_exactly(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice for 1 USDT
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", USDT)

    # when the largest possible token amount arrives
    chain.pay_usdt(invoice.address, 2**256 - 1)

    # then both the transfer and the payment hold it to the last unit
    pending = await gw.wait_status(invoice.id, "pending")
    assert pending.amount_received == 2**256 - 1
    [payment] = await gw.payments(invoice.id)
    assert payment.amount == 2**256 - 1
    rows = await gw.query(
        "SELECT amount::VARCHAR FROM transfers WHERE tx_hash = ?", [payment.tx_hash]
    )
    assert rows == [(str(2**256 - 1),)]
