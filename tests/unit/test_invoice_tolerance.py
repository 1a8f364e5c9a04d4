"""Underpayment tolerance: (1 - paid_tolerance) x amount of confirmed money pays the invoice,
flagged `underpaid_within_tolerance` until the rest (if ever) confirms."""

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
BEFORE = T0 + timedelta(minutes=5)
AFTER = EXPIRES + timedelta(minutes=5)
C, P = PaymentState.CONFIRMED, PaymentState.PENDING
WITHIN = InvoiceException.UNDERPAID_WITHIN_TOLERANCE


def invoice(amount: int = 1_000_000, ppm: int = 5000, **kw: object) -> InvoiceState:
    return InvoiceState(
        asset="USDT",
        amount=amount,
        expires_at=EXPIRES,
        monitoring_until=EXPIRES + timedelta(hours=24),
        tolerance_ppm=ppm,
        **kw,  # type: ignore[arg-type]
    )


def pay(amount: int, state: PaymentState = C, when: datetime = BEFORE) -> PaymentView:
    return PaymentView(asset="USDT", amount=amount, state=state, block_time=when)


@pytest.mark.parametrize(
    ("before", "paid", "now", "status", "exception"),
    [
        pytest.param(invoice(), 995_000, BEFORE, Status.PAID, WITHIN, id="exactly-at-the-edge"),
        pytest.param(invoice(), 994_999, BEFORE, Status.PENDING, None, id="one-unit-below"),
        pytest.param(invoice(), 995_001, BEFORE, Status.PAID, WITHIN, id="one-unit-above"),
        pytest.param(invoice(), 1_000_000, BEFORE, Status.PAID, None, id="in-full"),
        pytest.param(invoice(), 1_000_001, BEFORE, Status.PAID, InvoiceException.OVERPAID,
                     id="overpaid"),
        pytest.param(invoice(ppm=0), 999_999, BEFORE, Status.PENDING, None, id="no-tolerance"),
        # ceil((1 - 0.5%) * 999) = ceil(994.005) = 995: the edge rounds toward the merchant
        pytest.param(invoice(amount=999), 995, BEFORE, Status.PAID, WITHIN, id="odd-edge"),
        pytest.param(invoice(amount=999), 994, BEFORE, Status.PENDING, None, id="odd-below"),
        pytest.param(invoice(), 994_999, AFTER, Status.EXPIRED, InvoiceException.UNDERPAID,
                     id="expired-just-below"),
        pytest.param(invoice(), 995_000, AFTER, Status.PAID, WITHIN, id="confirmed-on-time"),
    ],
)  # fmt: skip
def test_tolerance_edges(
    before: InvoiceState,
    paid: int,
    now: datetime,
    status: Status,
    exception: InvoiceException | None,
) -> None:
    result = evaluate(before, [pay(paid)], now)
    assert (result.state.status, result.state.exception) == (status, exception)


def test_paid_within_tolerance_emits_paid_then_clears_when_the_rest_confirms() -> None:
    # given an invoice paid within tolerance
    first = evaluate(invoice(), [pay(995_000)], BEFORE)
    assert first.events == (EventType.INVOICE_PAID,)
    # when the remaining 5,000 units confirm
    second = evaluate(first.state, [pay(995_000), pay(5_000)], BEFORE)
    # then the exception clears with an event, and no reorg is flagged
    assert (second.state.exception, second.events) == (
        None, (EventType.INVOICE_EXCEPTION_CHANGED,),
    )  # fmt: skip
    assert not second.state.reorg_flagged


def test_paid_within_tolerance_is_not_a_lost_payment() -> None:
    # a re-evaluation with the same confirmed money must not flag a deep reorg
    first = evaluate(invoice(), [pay(996_000)], BEFORE)
    again = evaluate(first.state, [pay(996_000)], AFTER)
    assert (again.state.reorg_flagged, again.events) == (False, ())


def test_money_within_tolerance_seen_in_time_waits_for_confirmations_instead_of_expiring() -> None:
    result = evaluate(invoice(), [pay(995_000, P)], AFTER)
    assert result.state.status is Status.PENDING
