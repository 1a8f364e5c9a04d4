"""The invoice view and the checkout's page state: confirmed and pending money told apart."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from api.checkout import page_state
from indexer.domain.invoice import InvoiceException, Status
from indexer.domain.network import Asset, Network
from indexer.domain.records import Invoice
from indexer.domain.view import invoice_view

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USDT = 10**6
NETWORK = Network(
    name="ethereum",
    chain_id=1,
    rpc_url="ws://127.0.0.1:9",
    confirmations=3,
    native=Asset("ETH", 18),
    tokens=(Asset("USDT", 6, "0x5FbDB2315678afecb367f032d93F642f64180aa3"),),
)
INVOICE = Invoice(
    id="inv_0000000000000000000001",
    store_id="sto_0000000000000000000001",
    network="ethereum",
    asset="USDT",
    amount=10 * USDT,
    address="0x0000000000000000000000000000000000000001",
    address_index=0,
    status=Status.NEW,
    exception=None,
    amount_received=0,
    amount_confirmed=0,
    reorg_flagged=False,
    order_id=None,
    metadata=None,
    redirect_url=None,
    expires_at=T0 + timedelta(minutes=15),
    monitoring_until=T0 + timedelta(hours=24),
    created_at=T0,
    updated_at=T0,
    paid_at=None,
)


def test_late_full_payment_confirming_shows_no_shortfall_and_a_pending_amount() -> None:
    # given an expired invoice whose full amount arrived late and is still confirming
    invoice = replace(INVOICE, status=Status.EXPIRED, amount_received=10 * USDT)

    # when it is shown
    view = invoice_view(invoice, [], NETWORK, "https://pay.example")

    # then nothing is missing, nothing is confirmed, and the 10 USDT are pending, not settled
    assert view["exception"] is None
    assert (view["amount_received"], view["amount_confirmed"], view["amount_pending"]) == (
        "10",
        "0",
        "10",
    )
    assert view["amount_due"] == "0"
    assert page_state(invoice) == "confirming"


def test_paid_invoice_with_extra_money_confirming_shows_it_pending() -> None:
    # given a paid invoice with 1.5 USDT more in a block, not yet confirmed
    invoice = replace(
        INVOICE, status=Status.PAID, amount_received=11_500_000, amount_confirmed=10 * USDT
    )

    view = invoice_view(invoice, [], NETWORK, "https://pay.example")

    assert view["exception"] is None
    assert (view["amount_confirmed"], view["amount_pending"]) == ("10", "1.5")


@pytest.mark.parametrize(
    ("status", "exception", "received", "confirmed", "state"),
    [
        (Status.NEW, None, 0, 0, "waiting"),
        (Status.PENDING, None, 4, 0, "partial"),
        (Status.PENDING, None, 10, 0, "detected"),
        (Status.EXPIRED, None, 0, 0, "expired"),
        (Status.EXPIRED, None, 10, 0, "confirming"),
        (Status.EXPIRED, None, 10, 4, "confirming"),
        (Status.EXPIRED, InvoiceException.UNDERPAID, 4, 4, "underpaid"),
        (Status.PAID, None, 11, 10, "paid"),
        (Status.PAID, InvoiceException.PAID_LATE, 10, 10, "paid_late"),
    ],
    ids=[
        "new-waits",
        "pending-partial",
        "pending-full-detected",
        "expired-with-nothing",
        "expired-late-full-payment-confirming",
        "expired-top-up-confirming",
        "expired-underpaid-settled",
        "paid-with-extra-confirming",
        "paid-late",
    ],
)
def test_page_state(
    status: Status, exception: InvoiceException | None, received: int, confirmed: int, state: str
) -> None:
    invoice = replace(
        INVOICE,
        status=status,
        exception=exception,
        amount_received=received * USDT,
        amount_confirmed=confirmed * USDT,
    )
    assert page_state(invoice) == state
