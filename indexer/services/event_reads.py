"""Reading the events API: one event, and a store's events newest first."""

from __future__ import annotations

from typing import Any

from indexer.domain.errors import NotFoundError
from indexer.domain.ids import looks_like
from indexer.services.pagination import own_cursor
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import EventRow


class EventService:
    """The events a store may read, as their payloads (what webhooks deliver)."""

    def __init__(self, db: Storage) -> None:
        self.db = db

    async def event(self, store_id: str, event_id: str) -> EventRow:
        """The store's event `event_id`; NotFoundError for another store's or none."""
        event = None
        if looks_like("evt", event_id):
            event = await self.db.read(lambda uow: uow.events.get_event(event_id))
        if event is None or event.store_id != store_id:
            raise NotFoundError(f"no event {event_id[:64]}")
        return event

    async def get(self, store_id: str, event_id: str) -> dict[str, Any]:
        return (await self.event(store_id, event_id)).payload_dict()

    async def list(
        self,
        store_id: str,
        limit: int,
        type_: str | None,
        invoice_id: str | None,
        starting_after: str | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        def read(uow: UnitOfWork) -> tuple[list[EventRow], bool]:
            before = None
            if starting_after is not None:
                found = (
                    uow.events.get_event(starting_after)
                    if looks_like("evt", starting_after)
                    else None
                )
                before = own_cursor(found, store_id, "an event").seq
            return uow.events.list_events(store_id, limit, type_, invoice_id, before)

        rows, more = await self.db.read(read)
        return [r.payload_dict() for r in rows], more
