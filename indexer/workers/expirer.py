"""Expirer: moves invoices past `expires_at` to expired (or keeps them waiting for confirmations).

Stateless and idempotent: each tick re-evaluates due invoices from DuckDB, so a restart simply
picks up where the clock is.
"""

from __future__ import annotations

import asyncio
import logging

from indexer.config import Settings
from indexer.domain.clock import Clock
from indexer.domain.view import state_text
from indexer.services.evaluation import Reevaluation, reevaluate
from indexer.store import invoices as queries
from indexer.store.database import Connection, Database

log = logging.getLogger(__name__)


class Expirer:
    def __init__(
        self, db: Database, settings: Settings, clock: Clock, interval: float = 1.0
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.interval = interval

    async def tick(self) -> Reevaluation:
        now = self.clock.now()
        due = await self.db.read(lambda c: [i.id for i in queries.due_for_expiry(c, now)])
        if not due:
            return Reevaluation([], [], [], [])

        def write(conn: Connection) -> Reevaluation:
            return reevaluate(conn, due, self.settings, now)  # re-reads inside the transaction

        result = await self.db.write(write, kind="expiry")
        result.record_metrics()
        for invoice in result.invoices:
            log.info(
                "invoice %s is now %s",
                invoice.id,
                state_text(invoice, self.settings.networks[invoice.network]),
                extra={"invoice_id": invoice.id, "network": invoice.network},
            )
        return result

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expirer tick failed; retrying")
            await asyncio.sleep(self.interval)
