"""The invoice state machine: one pure function from invoice + payments + clock to state and events.

Status axis: new -> pending -> paid, or new/pending -> expired (and expired -> paid when the
money completes within the monitoring window). Exception axis: underpaid, overpaid, paid_late,
underpaid_within_tolerance (paid with confirmed money of at least (1 - paid_tolerance) times
the amount), settled by confirmed money only: money still confirming is never reported as a
shortfall or a surplus.
`docs/invoice-states.md` draws it. Nothing here does I/O, so every rule is unit-tested by table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"


class InvoiceException(StrEnum):
    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    PAID_LATE = "paid_late"
    # Paid with less than the amount but no less than (1 - paid_tolerance) of it.
    UNDERPAID_WITHIN_TOLERANCE = "underpaid_within_tolerance"


class PaymentState(StrEnum):
    PENDING = "pending"  # in a canonical block, fewer confirmations than required
    CONFIRMED = "confirmed"  # deep enough (or finalized)
    ORPHANED = "orphaned"  # its block left the canonical chain


class EventType(StrEnum):
    INVOICE_CREATED = "invoice.created"
    INVOICE_PENDING = "invoice.pending"
    INVOICE_PAID = "invoice.paid"
    INVOICE_EXPIRED = "invoice.expired"
    INVOICE_PAYMENT_REVERTED = "invoice.payment_reverted"
    INVOICE_EXCEPTION_CHANGED = "invoice.exception_changed"
    INVOICE_REORG_FLAGGED = "invoice.reorg_flagged"
    ENDPOINT_DISABLED = "webhook_endpoint.disabled"
    PING = "ping"


PPM = 1_000_000  # paid_tolerance is kept in millionths of the amount

INVOICE_EVENT_TYPES = tuple(t.value for t in EventType if t.value.startswith("invoice."))


@dataclass(frozen=True, slots=True)
class PaymentView:
    """What evaluation needs of one payment to the invoice's address."""

    asset: str
    amount: int
    state: PaymentState
    block_time: datetime


@dataclass(frozen=True, slots=True)
class InvoiceState:
    """The evaluated part of an invoice, as stored after its last evaluation."""

    asset: str
    amount: int
    expires_at: datetime
    monitoring_until: datetime
    status: Status = Status.NEW
    exception: InvoiceException | None = None
    amount_received: int = 0  # counted, not orphaned (pending + confirmed)
    amount_confirmed: int = 0
    reorg_flagged: bool = False
    tolerance_ppm: int = 0  # paid_tolerance locked at creation, in millionths of the amount

    @property
    def paid_threshold(self) -> int:
        """The least confirmed money that pays the invoice: ceil((1 - tolerance) * amount)."""
        return -(-self.amount * (PPM - self.tolerance_ppm) // PPM)


@dataclass(frozen=True, slots=True)
class Evaluation:
    state: InvoiceState
    events: tuple[EventType, ...]

    @property
    def changed(self) -> bool:
        return bool(self.events)


def counts(invoice: InvoiceState, payment: PaymentView) -> bool:
    """Whether a payment counts toward the invoice (right asset, positive, not too late)."""
    return (
        payment.asset == invoice.asset
        and payment.amount > 0
        and payment.state is not PaymentState.ORPHANED
        and payment.block_time <= invoice.monitoring_until
    )


def evaluate(invoice: InvoiceState, payments: Sequence[PaymentView], now: datetime) -> Evaluation:
    """Give the invoice's next state and the events the change emits."""
    counted = [p for p in payments if counts(invoice, p)]
    received = sum(p.amount for p in counted)
    confirmed = sum(p.amount for p in counted if p.state is PaymentState.CONFIRMED)
    on_time = sum(p.amount for p in counted if p.block_time <= invoice.expires_at)

    status, exception, flagged = _next_status(invoice, received, confirmed, on_time, now)
    new = replace(
        invoice,
        status=status,
        exception=exception,
        amount_received=received,
        amount_confirmed=confirmed,
        reorg_flagged=flagged,
    )
    return Evaluation(new, _events(invoice, new))


def _next_status(
    invoice: InvoiceState, received: int, confirmed: int, on_time: int, now: datetime
) -> tuple[Status, InvoiceException | None, bool]:
    if invoice.status is Status.PAID:
        # Paid is final: a reorg deeper than the confirmation depth is flagged, never rewritten.
        # Confirmed money only shrinks in such a reorg, surplus included (it may be refunded).
        lost = confirmed < invoice.amount_confirmed or confirmed < invoice.paid_threshold
        flagged = invoice.reorg_flagged or lost
        late = invoice.exception is InvoiceException.PAID_LATE
        return Status.PAID, _paid_exception(invoice, confirmed, late), flagged
    threshold = invoice.paid_threshold
    if confirmed >= threshold:
        return Status.PAID, _paid_exception(invoice, confirmed, on_time < threshold), False
    # Money seen in time that covers the amount waits for its confirmations instead of expiring.
    if now >= invoice.expires_at and on_time < threshold:
        # A shortfall is settled only once no counted money is still confirming: pending money
        # may yet complete the invoice (paid late) or vanish in a reorg.
        settled = received == confirmed
        underpaid = settled and confirmed > 0
        return Status.EXPIRED, (InvoiceException.UNDERPAID if underpaid else None), False
    if received:
        return Status.PENDING, None, False
    return Status.NEW, None, False


def _paid_exception(invoice: InvoiceState, confirmed: int, late: bool) -> InvoiceException | None:
    """Paid late is how it was paid and stays; overpaid follows the confirmed surplus, so extra
    money still confirming never sets it and a reorg that removes the surplus clears it; a
    shortfall within the tolerance is named, and cleared when the rest confirms."""
    if late:
        return InvoiceException.PAID_LATE
    if invoice.paid_threshold <= confirmed < invoice.amount:
        return InvoiceException.UNDERPAID_WITHIN_TOLERANCE
    return InvoiceException.OVERPAID if confirmed > invoice.amount else None


def _events(old: InvoiceState, new: InvoiceState) -> tuple[EventType, ...]:
    events: list[EventType] = []
    if new.amount_received < old.amount_received:
        events.append(EventType.INVOICE_PAYMENT_REVERTED)
    if new.status is not old.status:
        transition = {
            Status.PENDING: EventType.INVOICE_PENDING,
            Status.PAID: EventType.INVOICE_PAID,
            Status.EXPIRED: EventType.INVOICE_EXPIRED,
        }.get(new.status)
        if transition is not None:
            events.append(transition)
    elif new.exception is not old.exception:
        events.append(EventType.INVOICE_EXCEPTION_CHANGED)
    if new.reorg_flagged and not old.reorg_flagged:
        events.append(EventType.INVOICE_REORG_FLAGGED)
    return tuple(events)
