"""The stored shape of invoices and payments, as plain immutable records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from indexer.domain.invoice import InvoiceException, InvoiceState, PaymentState, PaymentView, Status
from indexer.domain.pricing import PriceQuote


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    store_id: str
    network: str
    asset: str
    amount: int
    address: str  # EIP-55
    address_index: int
    status: Status
    exception: InvoiceException | None
    amount_received: int
    amount_confirmed: int
    reorg_flagged: bool
    order_id: str | None
    metadata: dict[str, Any] | None
    redirect_url: str | None
    expires_at: datetime
    monitoring_until: datetime
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    paid_tolerance_ppm: int = 0  # [invoices] paid_tolerance when it was created
    price: PriceQuote | None = None  # set when created from a fiat price: the locked quote

    def state(self) -> InvoiceState:
        return InvoiceState(
            asset=self.asset,
            amount=self.amount,
            expires_at=self.expires_at,
            monitoring_until=self.monitoring_until,
            status=self.status,
            exception=self.exception,
            amount_received=self.amount_received,
            amount_confirmed=self.amount_confirmed,
            reorg_flagged=self.reorg_flagged,
            tolerance_ppm=self.paid_tolerance_ppm,
        )


@dataclass(frozen=True, slots=True)
class Payment:
    network: str
    tx_hash: str
    log_index: int
    invoice_id: str
    store_id: str
    address: str
    asset: str
    amount: int
    counted: bool
    block_number: int
    block_hash: str
    block_time: datetime
    confirmations: int
    state: PaymentState
    first_seen_at: datetime
    confirmed_at: datetime | None
    updated_at: datetime
    # The sweep that moved it on to the treasury (forwarder stores), computed when read.
    swept_by: str | None = None

    def view(self) -> PaymentView:
        return PaymentView(
            asset=self.asset, amount=self.amount, state=self.state, block_time=self.block_time
        )
