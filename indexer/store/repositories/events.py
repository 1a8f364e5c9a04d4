"""The event outbox: events are inserted in the same transaction as the change they describe."""

from __future__ import annotations

from typing import Any

from indexer.store.repositories.base import Repository
from indexer.store.rows import EventRow
from indexer.store.sql import Append, bulk_insert

_COLUMNS = "id, store_id, type, invoice_id, payload::VARCHAR, created_at, seq"


_COLUMNS_IN = ("id", "store_id", "type", "invoice_id", "payload", "created_at")
_CASTS = {"payload": "JSON"}


def event_append(e: EventRow) -> Append:
    row = (e.id, e.store_id, e.type, e.invoice_id, e.payload, e.created_at)
    return Append("events", _COLUMNS_IN, row)


class SqlEventRepository(Repository):
    """The events repository: its SQL on one connection."""

    def add(self, event: EventRow) -> None:
        self._batch().append(event_append(event))

    def insert_events(self, events: list[EventRow]) -> None:
        rows = [(e.id, e.store_id, e.type, e.invoice_id, e.payload, e.created_at) for e in events]
        bulk_insert(self.conn, "events", _COLUMNS_IN, rows, _CASTS)

    def get_event(self, event_id: str) -> EventRow | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE id = ?", [event_id]
        ).fetchone()
        return EventRow(*row) if row else None

    def list_events(
        self,
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
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        return [EventRow(*r) for r in rows[:limit]], len(rows) > limit
