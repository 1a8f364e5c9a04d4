"""Expirer: moves invoices past `expires_at` to expired (or keeps them waiting for confirmations).

Stateless and idempotent: each tick re-evaluates due invoices from DuckDB, so a restart simply
picks up where the clock is. A tick works in batches sized so that none holds the writer for
more than `budget` seconds (~50 ms): expiring 35,000 invoices in one transaction held it over a
second, and every API write waited behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from functools import partial

from indexer.config import Settings
from indexer.domain.clock import Clock
from indexer.domain.view import state_text
from indexer.services.evaluation import Reevaluation, reevaluate
from indexer.store.port import Storage, UnitOfWork

log = logging.getLogger(__name__)


class Expirer:
    def __init__(
        self,
        db: Storage,
        settings: Settings,
        clock: Clock,
        interval: float = 1.0,
        budget: float = 0.05,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.interval = interval
        self.budget = budget  # seconds one batch may hold the writer
        self.batch = 100  # invoices per batch, adapted to the budget
        self.min_batch, self.max_batch = 10, 1000
        self.longest = 0.0  # the longest batch so far, in seconds (for tests and benchmarks)

    async def tick(self) -> Reevaluation:
        """Expire everything due now, batch after batch; returns what changed."""
        total = Reevaluation([], [], [], [])
        while True:
            now = self.clock.now()
            limit = self.batch
            due = await self.db.read(partial(_due, now=now, limit=limit))
            if not due:
                return total
            result = await self._expire(due, now)
            total.invoices.extend(result.invoices)
            total.events.extend(result.events)
            total.transitions.extend(result.transitions)
            total.flagged.extend(result.flagged)
            if len(due) < limit:
                return total

    async def _expire(self, due: list[str], now: datetime) -> Reevaluation:
        held: list[float] = []

        def write(uow: UnitOfWork) -> Reevaluation:
            started = time.perf_counter()
            result = reevaluate(uow, due, self.settings, now)  # re-reads inside the transaction
            held.append(time.perf_counter() - started)
            return result

        result = await self.db.write(write, kind="expiry")
        self._adapt(held[-1] if held else 0.0)
        result.record_metrics()
        for invoice in result.invoices:
            log.info(
                "invoice %s is now %s",
                invoice.id,
                state_text(invoice, self.settings.networks[invoice.network]),
                extra={"invoice_id": invoice.id, "network": invoice.network},
            )
        return result

    def _adapt(self, seconds: float) -> None:
        """Halve the batch when it took over the budget, grow it by half when under half."""
        self.longest = max(self.longest, seconds)
        if seconds > self.budget:
            self.batch = max(self.min_batch, self.batch // 2)
        elif seconds < self.budget / 2:
            self.batch = min(self.max_batch, self.batch * 3 // 2)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a storage outage is reported by /readyz: one line here
                log.warning("expirer tick failed (%s); retrying", exc)
            await asyncio.sleep(self.interval)


def _due(uow: UnitOfWork, now: datetime, limit: int) -> list[str]:
    return uow.invoices.due_for_expiry_ids(now, limit)
