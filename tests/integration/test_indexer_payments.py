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
