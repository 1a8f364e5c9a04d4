"""The invoice state machine as a table: (before, payments, clock) -> (after, events)."""

from datetime import UTC, datetime, timedelta

import pytest

from indexer.domain.invoice import (
    EventType,
    InvoiceException,
    InvoiceState,
    PaymentState,
    PaymentView,
    Status,
    evaluate,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES = T0 + timedelta(minutes=15)
WINDOW_END = EXPIRES + timedelta(hours=24)
BEFORE = T0 + timedelta(minutes=5)
AFTER = EXPIRES + timedelta(minutes=5)

P, C, ORPH = PaymentState.PENDING, PaymentState.CONFIRMED, PaymentState.ORPHANED


def invoice(
    status: Status = Status.NEW, received: int = 0, confirmed: int = 0, **kw: object
) -> InvoiceState:
    return InvoiceState(
        asset="USDT",
        amount=100,
        expires_at=EXPIRES,
        monitoring_until=WINDOW_END,
        status=status,
        amount_received=received,
        amount_confirmed=confirmed,
        **kw,  # type: ignore[arg-type]
    )


def pay(
    amount: int, state: PaymentState = C, when: datetime = BEFORE, asset: str = "USDT"
) -> PaymentView:
    return PaymentView(asset=asset, amount=amount, state=state, block_time=when)


CASES = [
    # id, before, payments, now, status, exception, events
    ("nothing-yet", invoice(), [], BEFORE, Status.NEW, None, ()),
    (
        "seen-in-block-goes-pending",
        invoice(),
        [pay(100, P)],
        BEFORE,
        Status.PENDING,
        None,
        (EventType.INVOICE_PENDING,),
    ),
    (
        "confirmed-exact-is-paid",
        invoice(Status.PENDING, 100),
        [pay(100)],
        BEFORE,
        Status.PAID,
        None,
        (EventType.INVOICE_PAID,),
    ),
    (
        "two-partials-confirmed-paid",
        invoice(Status.PENDING, 100),
        [pay(40), pay(60)],
        BEFORE,
        Status.PAID,
        None,
        (EventType.INVOICE_PAID,),
    ),
    (
        "partial-stays-pending",
        invoice(),
        [pay(40)],
        BEFORE,
        Status.PENDING,
        None,
        (EventType.INVOICE_PENDING,),
    ),
    (
        "overpaid",
        invoice(Status.PENDING, 150),
        [pay(150)],
        BEFORE,
        Status.PAID,
        InvoiceException.OVERPAID,
        (EventType.INVOICE_PAID,),
    ),
    (
        "expired-with-nothing",
        invoice(),
        [],
        AFTER,
        Status.EXPIRED,
        None,
        (EventType.INVOICE_EXPIRED,),
    ),
    (
        "expired-underpaid",
        invoice(Status.PENDING, 40),
        [pay(40)],
        AFTER,
        Status.EXPIRED,
        InvoiceException.UNDERPAID,
        (EventType.INVOICE_EXPIRED,),
    ),
    (
        "on-time-money-waits-for-confirmations",
        invoice(Status.PENDING, 100),
        [pay(100, P)],
        AFTER,
        Status.PENDING,
        None,
        (),
    ),
    (
        "late-completion-is-paid-late",
        invoice(Status.EXPIRED, 40, exception=InvoiceException.UNDERPAID),
        [pay(40), pay(60, C, AFTER)],
        AFTER,
        Status.PAID,
        InvoiceException.PAID_LATE,
        (EventType.INVOICE_PAID,),
    ),
    (
        "after-window-does-not-count",
        invoice(Status.EXPIRED),
        [pay(100, C, WINDOW_END + timedelta(seconds=1))],
        WINDOW_END + timedelta(hours=1),
        Status.EXPIRED,
        None,
        (),
    ),
    (
        "wrong-asset-does-not-count",
        invoice(),
        [pay(100, C, asset="ETH")],
        BEFORE,
        Status.NEW,
        None,
        (),
    ),
    ("zero-value-does-not-count", invoice(), [pay(0)], BEFORE, Status.NEW, None, ()),
    (
        "reorg-takes-pending-back-to-new",
        invoice(Status.PENDING, 100),
        [pay(100, ORPH)],
        BEFORE,
        Status.NEW,
        None,
        (EventType.INVOICE_PAYMENT_REVERTED,),
    ),
    (
        "reorg-of-one-partial-reverts-amount",
        invoice(Status.PENDING, 100),
        [pay(40, ORPH), pay(60, P)],
        BEFORE,
        Status.PENDING,
        None,
        (EventType.INVOICE_PAYMENT_REVERTED,),
    ),
    (
        "deep-reorg-on-paid-is-flagged-not-rewritten",
        invoice(Status.PAID, 100, 100),
        [pay(100, ORPH)],
        BEFORE,
        Status.PAID,
        None,
        (EventType.INVOICE_PAYMENT_REVERTED, EventType.INVOICE_REORG_FLAGGED),
    ),
    (
        "more-after-paid-marks-overpaid-once-confirmed",
        invoice(Status.PAID, 105, 100),
        [pay(100), pay(5)],
        BEFORE,
        Status.PAID,
        InvoiceException.OVERPAID,
        (EventType.INVOICE_EXCEPTION_CHANGED,),
    ),
]

# Money still confirming is never a settled shortfall or surplus (issue 10, items 10 and 11).
PENDING_MONEY_CASES = [
    (
        "late-full-payment-confirming-on-expired-is-not-underpaid",
        invoice(Status.EXPIRED),
        [pay(100, P, AFTER)],
        AFTER,
        Status.EXPIRED,
        None,
        (),
    ),
    (
        "late-full-payment-confirming-expires-a-new-invoice-without-exception",
        invoice(),
        [pay(100, P, AFTER)],
        AFTER,
        Status.EXPIRED,
        None,
        (EventType.INVOICE_EXPIRED,),
    ),
    (
        "late-full-payment-confirmed-is-paid-late",
        invoice(Status.EXPIRED, 100),
        [pay(100, C, AFTER)],
        AFTER,
        Status.PAID,
        InvoiceException.PAID_LATE,
        (EventType.INVOICE_PAID,),
    ),
    (
        "late-full-payment-reorged-away-is-reverted-without-exception",
        invoice(Status.EXPIRED, 100),
        [pay(100, ORPH, AFTER)],
        AFTER,
        Status.EXPIRED,
        None,
        (EventType.INVOICE_PAYMENT_REVERTED,),
    ),
    (
        "late-partial-confirming-is-not-underpaid-yet",
        invoice(Status.EXPIRED),
        [pay(40, P, AFTER)],
        AFTER,
        Status.EXPIRED,
        None,
        (),
    ),
    (
        "late-partial-confirmed-is-underpaid",
        invoice(Status.EXPIRED, 40),
        [pay(40, C, AFTER)],
        AFTER,
        Status.EXPIRED,
        InvoiceException.UNDERPAID,
        (EventType.INVOICE_EXCEPTION_CHANGED,),
    ),
    (
        "late-top-up-confirming-lifts-underpaid",
        invoice(Status.EXPIRED, 40, 40, exception=InvoiceException.UNDERPAID),
        [pay(40), pay(60, P, AFTER)],
        AFTER,
        Status.EXPIRED,
        None,
        (EventType.INVOICE_EXCEPTION_CHANGED,),
    ),
    (
        "late-top-up-reorged-away-is-underpaid-again",
        invoice(Status.EXPIRED, 100, 40),
        [pay(40), pay(60, ORPH, AFTER)],
        AFTER,
        Status.EXPIRED,
        InvoiceException.UNDERPAID,
        (EventType.INVOICE_PAYMENT_REVERTED, EventType.INVOICE_EXCEPTION_CHANGED),
    ),
    (
        "expiry-with-partial-still-confirming-has-no-exception-yet",
        invoice(Status.PENDING, 40),
        [pay(40, P)],
        AFTER,
        Status.EXPIRED,
        None,
        (EventType.INVOICE_EXPIRED,),
    ),
    (
        "extra-confirming-after-paid-is-not-overpaid",
        invoice(Status.PAID, 100, 100),
        [pay(100), pay(5, P)],
        BEFORE,
        Status.PAID,
        None,
        (),
    ),
    (
        "paid-with-extra-still-confirming-is-not-overpaid",
        invoice(Status.PENDING, 105),
        [pay(100), pay(5, P)],
        BEFORE,
        Status.PAID,
        None,
        (EventType.INVOICE_PAID,),
    ),
    (
        "reorg-of-confirming-extra-clears-a-stored-overpaid",
        invoice(Status.PAID, 105, 100, exception=InvoiceException.OVERPAID),
        [pay(100), pay(5, ORPH)],
        BEFORE,
        Status.PAID,
        None,
        (EventType.INVOICE_PAYMENT_REVERTED, EventType.INVOICE_EXCEPTION_CHANGED),
    ),
    (
        "deep-reorg-of-confirmed-extra-clears-overpaid-and-flags",
        invoice(Status.PAID, 105, 105, exception=InvoiceException.OVERPAID),
        [pay(100), pay(5, ORPH)],
        BEFORE,
        Status.PAID,
        None,
        (
            EventType.INVOICE_PAYMENT_REVERTED,
            EventType.INVOICE_EXCEPTION_CHANGED,
            EventType.INVOICE_REORG_FLAGGED,
        ),
    ),
    (
        "deep-reorg-keeps-paid-late",
        invoice(Status.PAID, 100, 100, exception=InvoiceException.PAID_LATE),
        [pay(100, ORPH, AFTER)],
        AFTER,
        Status.PAID,
        InvoiceException.PAID_LATE,
        (EventType.INVOICE_PAYMENT_REVERTED, EventType.INVOICE_REORG_FLAGGED),
    ),
    (
        "paid-stays-paid-after-expiry",
        invoice(Status.PAID, 100, 100),
        [pay(100)],
        AFTER,
        Status.PAID,
        None,
        (),
    ),
]


@pytest.mark.parametrize(
    ("before", "payments", "now", "status", "exception", "events"),
    [c[1:] for c in CASES + PENDING_MONEY_CASES],
    ids=[c[0] for c in CASES + PENDING_MONEY_CASES],
)
def test_evaluate(
    before: InvoiceState,
    payments: list[PaymentView],
    now: datetime,
    status: Status,
    exception: InvoiceException | None,
    events: tuple[EventType, ...],
) -> None:
    result = evaluate(before, payments, now)
    assert result.state.status is status
    assert result.state.exception is exception
    assert result.events == events


def test_evaluate_is_idempotent() -> None:
    first = evaluate(invoice(), [pay(100, P)], BEFORE)
    second = evaluate(first.state, [pay(100, P)], BEFORE)
    assert second.events == ()
    assert second.state == first.state


def test_received_and_confirmed_sums_are_exact_for_huge_amounts() -> None:
    huge = 2**255
    result = evaluate(
        InvoiceState(asset="USDT", amount=huge, expires_at=EXPIRES, monitoring_until=WINDOW_END),
        [pay(huge - 1), pay(1, P)],
        BEFORE,
    )
    assert result.state.amount_received == huge
    assert result.state.amount_confirmed == huge - 1
    assert result.state.status is Status.PENDING
