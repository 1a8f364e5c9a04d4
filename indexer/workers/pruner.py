"""Pruner: forgets Idempotency-Keys older than the window, from the table and from memory.

Each transaction deletes at most PRUNE_BATCH keys, so the writer is never held long; a backlog
(the first run after an upgrade, a long stop) drains batch after batch, yielding in between.
"""

from __future__ import annotations

import asyncio
import logging

from indexer.services.invoices import PRUNE_BATCH, InvoiceService

log = logging.getLogger(__name__)


class IdempotencyPruner:
    def __init__(
        self, invoices: InvoiceService, interval: float = 300.0, batch: int = PRUNE_BATCH
    ) -> None:
        self.invoices = invoices
        self.interval = interval
        self.batch = batch

    async def tick(self) -> int:
        """Prune until a batch comes back short; return how many keys went."""
        total = 0
        while True:
            pruned = await self.invoices.prune_idempotency(self.batch)
            total += pruned
            if pruned < self.batch:
                break
            await asyncio.sleep(0)  # let API writes in between batches
        if total:
            log.info("pruned %d idempotency keys", total)
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("idempotency prune failed; retrying")
            await asyncio.sleep(self.interval)
