"""The event outbox: events are inserted in the same transaction as the change they describe."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from indexer.store.database import Append, Connection, bulk_insert


@dataclass(frozen=True)
class EventRow:
    id: str
    store_id: str
    type: str
    invoice_id: str | None
    payload: str  # the exact JSON body endpoints receive
    created_at: datetime
    seq: int | None = None

    def payload_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload)
        return result


_COLUMNS = "id, store_id, type, invoice_id, payload::VARCHAR, created_at, seq"


_COLUMNS_IN = ("id", "store_id", "type", "invoice_id", "payload", "created_at")
_CASTS = {"payload": "JSON"}


def insert_events(conn: Connection, events: list[EventRow]) -> None:
    rows = [(e.id, e.store_id, e.type, e.invoice_id, e.payload, e.created_at) for e in events]
    bulk_insert(conn, "events", _COLUMNS_IN, rows, _CASTS)


def event_append(e: EventRow) -> Append:
    row = (e.id, e.store_id, e.type, e.invoice_id, e.payload, e.created_at)
    return Append("events", _COLUMNS_IN, row)


def get_event(conn: Connection, event_id: str) -> EventRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", [event_id]).fetchone()
    return EventRow(*row) if row else None


def list_events(
    conn: Connection,
    store_id: str,
    limit: int,
    type_: str | None = None,
    invoice_id: str | None = None,
    before_seq: int | None = None,
) -> tuple[list[EventRow], bool]:
    """Newest first; `before_seq` is the cursor (the seq of the last event seen)."""
    where = ["store_id = ?"]
    params: list[Any] = [store_id]
    if type_ is not None:
        where.append("type = ?")
        params.append(type_)
    if invoice_id is not None:
        where.append("invoice_id = ?")
        params.append(invoice_id)
    if before_seq is not None:
        where.append("seq < ?")
        params.append(before_seq)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
        [*params, limit + 1],
    ).fetchall()
    return [EventRow(*r) for r in rows[:limit]], len(rows) > limit


def events_after(conn: Connection, seq: int, limit: int = 1000) -> list[EventRow]:
    """Events in creation order after `seq`: how the dispatcher reads the outbox."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit]
    ).fetchall()
    return [EventRow(*r) for r in rows]
