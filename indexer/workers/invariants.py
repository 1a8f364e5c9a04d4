"""The books checker: reports transfers to issued addresses that have no payment row.

Every `interval` it checks, per network, the transfers of blocks processed since its last run
(the first run checks all of them), and re-checks what it found before until it is resolved (a
reorg that orphans the transfer). Anything found is logged as an error and counted in
`chainpay_transfers_without_payment`, which the `ChainpayPaymentNotCredited` alert watches.
It only reads, on a reader thread, in one snapshot per network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from indexer import metrics
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import MissingPayment

log = logging.getLogger(__name__)


class BooksChecker:
    def __init__(
        self,
        db: Storage,
        networks: Iterable[str],
        issued: Callable[[Iterable[str]], set[str]],
        interval: float = 60.0,
    ) -> None:
        self.db = db
        self.networks = list(networks)
        self.issued = issued
        self.interval = interval
        self._checked: dict[str, int] = {}  # per network, the highest block checked
        self._found: dict[str, list[MissingPayment]] = {}

    async def check(self, network: str) -> list[MissingPayment]:
        """Check the blocks processed since the last call; returns what is missing now."""
        after = self._checked.get(network, -1)
        known = self._found.get(network, [])
        low = min([after, *(m.block_number - 1 for m in known)])

        def read(uow: UnitOfWork) -> tuple[int, list[MissingPayment]]:
            cursor = uow.chain.get_cursor(network)
            upto = cursor.number if cursor is not None else after
            return upto, uow.chain.transfers_without_payment(network, low, upto, self.issued)

        upto, missing = await self.db.read(read)
        before = {(m.tx_hash, m.log_index) for m in known}
        for item in missing:
            if (item.tx_hash, item.log_index) not in before:
                log.error(
                    "%s: transfer %s log %d in block %d to %s (invoice %s) has no payment row: "
                    "a payment was not credited",
                    network, item.tx_hash, item.log_index, item.block_number, item.to_address,
                    item.invoice_id,
                    extra={"network": network, "invoice_id": item.invoice_id},
                )  # fmt: skip
        self._checked[network] = max(after, upto)
        self._found[network] = missing
        metrics.TRANSFERS_WITHOUT_PAYMENT.labels(network).set(len(missing))
        return missing

    async def run(self) -> None:
        while True:
            for network in self.networks:
                try:
                    await self.check(network)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a storage outage: /readyz reports it; try later
                    log.warning("%s: books check failed: %s", network, exc)
            await asyncio.sleep(self.interval)
