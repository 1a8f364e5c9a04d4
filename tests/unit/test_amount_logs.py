"""Log lines print amounts as the asset's decimal string, never raw base units (issue 10, #15)."""

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from indexer.domain.invoice import InvoiceException, PaymentState, Status
from indexer.domain.records import Payment
from indexer.domain.view import amount_text, state_text
from indexer.services.blocks import BlockOutcome, BlockService
from indexer.services.evaluation import Reevaluation
from tests.unit.test_view import INVOICE, NETWORK

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PAYMENT = Payment(
    network="ethereum",
    tx_hash="0x" + "ab" * 32,
    log_index=0,
    invoice_id=INVOICE.id,
    store_id=INVOICE.store_id,
    address=INVOICE.address,
    asset="USDT",
    amount=10_000_000,
    counted=True,
    block_number=7,
    block_hash="0x" + "cd" * 32,
    block_time=T0,
    confirmations=1,
    state=PaymentState.PENDING,
    first_seen_at=T0,
    confirmed_at=None,
    updated_at=T0,
)


def block_service() -> BlockService:
    """Only `_record`'s logging runs: the database and the node are never touched."""
    unused = cast(Any, None)
    return BlockService(unused, unused, NETWORK, unused, unused, unused)


def test_payment_log_line_prints_the_decimal_amount_with_its_asset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a block that matched a payment of 10 USDT (10,000,000 base units, 6 decimals)
    paid = replace(INVOICE, status=Status.PENDING, amount_received=10_000_000)
    outcome = BlockOutcome(7, T0, 1, [PAYMENT], Reevaluation([paid], [], [], []))

    # when the block's outcome is recorded
    with caplog.at_level(logging.INFO, logger="indexer.services.blocks"):
        block_service()._record(outcome, 0.01)

    # then the payment and the invoice's new state read in USDT, not in base units
    messages = [r.getMessage() for r in caplog.records]
    assert f"ethereum: payment of 10 USDT to invoice {INVOICE.id} in block 7 (counted)" in messages
    assert (
        f"invoice {INVOICE.id} is now pending: 0 of 10 USDT confirmed, 10 USDT pending" in messages
    )
    assert not any("10000000" in m for m in messages)


@pytest.mark.parametrize(
    ("symbol", "units", "text"),
    [
        ("USDT", 12_500_000, "12.5 USDT"),
        ("USDT", 1, "0.000001 USDT"),
        ("ETH", 10**18, "1 ETH"),
        (
            "ETH",
            2**256 - 1,
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935 ETH",
        ),
        ("DAI", 5, "5 base units of DAI"),
    ],
    ids=["token-fraction", "smallest-unit", "native-whole", "uint256-max-exact", "unknown-asset"],
)
def test_amount_text(symbol: str, units: int, text: str) -> None:
    assert amount_text(NETWORK, symbol, units) == text


def test_state_text_tells_confirmed_from_pending_money() -> None:
    invoice = replace(
        INVOICE,
        status=Status.EXPIRED,
        exception=InvoiceException.UNDERPAID,
        amount_received=4_250_000,
        amount_confirmed=4_250_000,
    )
    assert state_text(invoice, NETWORK) == (
        "expired (underpaid): 4.25 of 10 USDT confirmed, 0 USDT pending"
    )
