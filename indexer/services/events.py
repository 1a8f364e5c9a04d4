"""Building outbox events: the payload is the invoice exactly as the API shows it, frozen now."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from indexer.domain.ids import new_id
from indexer.domain.network import Network
from indexer.domain.records import Invoice, Payment
from indexer.domain.view import invoice_view, iso
from indexer.store.rows import EventRow


def invoice_event_from_view(
    type_: str, invoice: Invoice, view_json: str, now: datetime
) -> EventRow:
    """The same event as `invoice_event`, around an invoice view already serialised."""
    event_id = new_id("evt")  # base62, and iso() gives digits, '-', ':', '.' and 'Z'
    payload = (
        f'{{"id":"{event_id}","object":"event","type":{json.dumps(type_)},'
        f'"created_at":"{iso(now)}","data":{{"invoice":{view_json}}}}}'
    )
    return EventRow(event_id, invoice.store_id, type_, invoice.id, payload, now)


def event_row(
    type_: str, store_id: str, invoice_id: str | None, data: dict[str, Any], now: datetime
) -> EventRow:
    """An outbox row whose payload is `{"id", "object", "type", "created_at", "data"}`."""
    event_id = new_id("evt")
    payload = {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created_at": iso(now),
        "data": data,
    }
    return EventRow(
        id=event_id,
        store_id=store_id,
        type=type_,
        invoice_id=invoice_id,
        payload=json.dumps(payload, separators=(",", ":")),
        created_at=now,
    )


def invoice_event(
    type_: str,
    invoice: Invoice,
    payments: Sequence[Payment],
    network: Network,
    public_url: str,
    now: datetime,
) -> EventRow:
    view = invoice_view(invoice, payments, network, public_url)
    return event_row(type_, invoice.store_id, invoice.id, {"invoice": view}, now)
