"""Re-evaluating invoices inside a write transaction: state, events and metrics together.

Used by the indexer after each block (payments changed) and by the expirer (time passed). The
caller owns the transaction; this writes the invoice rows and their events into it, so a change
and its events always commit together (the transactional outbox).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from indexer import metrics
from indexer.config import Settings
from indexer.domain.invoice import EventType, Status, evaluate
from indexer.domain.records import Invoice, Payment
from indexer.services.events import invoice_event
from indexer.store.port import UnitOfWork
from indexer.store.rows import EventRow


@dataclass(frozen=True)
class Reevaluation:
    invoices: list[Invoice]  # the ones that changed, as written
    events: list[EventRow]
    transitions: list[tuple[str, str]]  # (network, new status)
    flagged: list[str]  # networks of invoices newly flagged by a deep reorg

    def record_metrics(self) -> None:
        """Call after the commit: a rolled-back or replayed transaction must not count."""
        for network, status in self.transitions:
            metrics.INVOICE_TRANSITIONS.labels(network, status).inc()
        for network in self.flagged:
            metrics.REORG_FLAGS.labels(network).inc()


def reevaluate(
    uow: UnitOfWork, invoice_ids: Iterable[str], settings: Settings, now: datetime
) -> Reevaluation:
    """Evaluate the given invoices against their stored payments; persist what changed."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return Reevaluation([], [], [], [])
    invoices = uow.invoices.get_invoices(ids)
    payments = uow.invoices.payments_for(ids)
    changed: list[Invoice] = []
    events: list[EventRow] = []
    transitions: list[tuple[str, str]] = []
    flagged: list[str] = []
    for invoice_id in ids:
        invoice = invoices.get(invoice_id)
        if invoice is None:
            continue
        own = payments[invoice_id]
        result = evaluate(invoice.state(), [p.view() for p in own], now)
        state = result.state
        if state == invoice.state():
            continue
        updated = replace(
            invoice,
            status=state.status,
            exception=state.exception,
            amount_received=state.amount_received,
            amount_confirmed=state.amount_confirmed,
            reorg_flagged=state.reorg_flagged,
            updated_at=now,
            paid_at=invoice.paid_at or (now if state.status is Status.PAID else None),
        )
        changed.append(updated)
        events.extend(_events_for(updated, own, result.events, settings, now))
        if state.status is not invoice.status:
            transitions.append((invoice.network, state.status.value))
        if state.reorg_flagged and not invoice.reorg_flagged:
            flagged.append(invoice.network)
    uow.invoices.update_invoice_states(changed)
    uow.events.insert_events(events)
    return Reevaluation(changed, events, transitions, flagged)


def _events_for(
    invoice: Invoice,
    payments: list[Payment],
    types: Iterable[EventType],
    settings: Settings,
    now: datetime,
) -> list[EventRow]:
    network = settings.networks[invoice.network]
    return [
        invoice_event(t.value, invoice, payments, network, settings.public_url, now) for t in types
    ]
