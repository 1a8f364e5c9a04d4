"""Applying blocks to the books, and rewinding them on reorgs.

`process(first, last)` fetches a range (all network I/O first), then hands the run of blocks to
the writer as one job: transfers, payments, confirmations, invoice re-evaluation with its
events, the sweeps of forwarder deposit addresses, the blocks' hashes and the cursor commit
together. Following the head, a run is one
block: one transaction per block. Catching up, a run is up to a range of blocks in one
transaction, each block still applied in order with its own payments and events. The job first
checks that the stored cursor is exactly the run's parent, so a replay can never apply a block
twice or skip one. Memory (the cursor) and metrics change only after the commit.

Sweeps: a configured token's Transfer from an issued address, and a `NativeSwept` log emitted
by one, are screened in memory by the matcher like payments; the job keeps those whose address
is a forwarder deposit of this network and whose recipient is its store's treasury (one query,
for the few hits), so what the books call a sweep is decided from the database, on every replica.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from indexer import metrics
from indexer.chain.fetch import BlockFetcher, FetchedBlock
from indexer.chain.reader import ChainReader
from indexer.config import Settings
from indexer.domain.clock import Clock
from indexer.domain.confirmation import ChainPosition, confirmations, is_confirmed
from indexer.domain.errors import ChainpayError
from indexer.domain.invoice import PaymentState
from indexer.domain.network import Network
from indexer.domain.records import Invoice, Payment
from indexer.domain.sweep import Sweep
from indexer.domain.transfer import Transfer
from indexer.domain.view import amount_text, state_text
from indexer.services.evaluation import Reevaluation, reevaluate
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import BLOCKS_KEPT, Cursor, PendingPayment, StoredBlock

log = logging.getLogger(__name__)
_PRUNE_EVERY = 64


class ReorgDetected(ChainpayError):
    """The next block's parent is not the block the cursor points at: call `rewind()`."""


class InvoiceUnreadable(ChainpayError):
    """A transfer goes to an issued address but its invoice could not be read: retry the block."""


class CursorMoved(ChainpayError):
    """The stored cursor is not where this job expected it (an earlier job did not commit)."""


@dataclass
class BlockOutcome:
    """What one committed block did, for metrics and logs after the commit."""

    number: int
    block_time: datetime
    transfers: int
    payments: list[Payment] = field(default_factory=list)
    reevaluation: Reevaluation | None = None


class BlockService:
    """Processes one network's blocks in order from its durable cursor."""

    def __init__(
        self,
        db: Storage,
        settings: Settings,
        network: Network,
        reader: ChainReader,
        fetcher: BlockFetcher,
        clock: Clock,
    ) -> None:
        self.db = db
        self.settings = settings
        self.network = network
        self.reader = reader
        self.fetcher = fetcher
        self.clock = clock
        self.cursor: Cursor | None = None
        self.last_block_time: float | None = None  # unix time of the last committed block
        # Run first in every transaction that moves the cursor: the lease's fencing check
        # (indexer.workers.lease), so a tail that lost its lease commits nothing.
        self.fence: Callable[[UnitOfWork], None] = _no_fence
        # Before each run of blocks: learn addresses other processes issued (shared store).
        self.refresh_addresses: Callable[[], Awaitable[None]] | None = None

    def _now(self) -> datetime:
        return self.clock.now()

    # -- cursor ----------------------------------------------------------------------------
    async def load_cursor(self, start_below_head: int) -> Cursor:
        """The stored cursor; on first start, `start_below_head` blocks below the node's head."""
        name = self.network.name
        cursor = await self.db.read(lambda c: c.chain.get_cursor(name))
        if cursor is None:
            head = await self.reader.head_number()
            number = max(head - start_below_head, 0)
            block = await self.reader.get_block(number, full_transactions=False)
            if block is None:
                raise CursorMoved(f"node has no block {number} although its head is {head}")
            cursor = Cursor(block.number, block.hash)
            stored = StoredBlock(
                block.number, block.hash, block.parent_hash, _time(block.timestamp)
            )
            now = self._now()

            fence = self.fence

            def start(uow: UnitOfWork) -> None:
                fence(uow)
                if uow.chain.get_cursor(name) is None:
                    uow.chain.insert_blocks(name, [stored])
                    uow.chain.save_cursor(name, cursor, now)

            await self.db.write(start, kind="block")
            log.info("%s: first start, watching from block %d", name, number + 1)
        self.cursor = cursor
        return cursor

    # -- forward ---------------------------------------------------------------------------
    async def process(self, first: int, last: int) -> int:
        """Process blocks `first..last` (first = cursor + 1); returns the new cursor number.

        Fewer blocks may be processed when the chain changed during the fetch. Raises
        `ReorgDetected` when block `first` does not extend the cursor.
        """
        assert self.cursor is not None and first == self.cursor.number + 1
        started = time.perf_counter()
        fetched = await self.fetcher.fetch(first, last)
        if not fetched:
            return self.cursor.number
        if fetched[0].block.parent_hash != self.cursor.hash:
            raise ReorgDetected(f"block {first} does not extend {self.cursor.hash}")
        tag = self.network.finality_tag
        finalized = await self.reader.finalized_number(tag) if tag else None
        if self.refresh_addresses is not None:  # invoices other processes committed until now
            await self.refresh_addresses()
        # Screened here, not in the job: the job must stay pure database work.
        hits = self.fetcher.screen(
            t.to_address for item in fetched for t in item.transfers if t.amount > 0
        )
        job = _RangeJob(self.network, self.settings, fetched, hits, finalized, self._now())
        job.sweeps = self._sweep_candidates(fetched)
        fence = self.fence

        def apply(uow: UnitOfWork) -> list[BlockOutcome]:
            fence(uow)
            return job.apply(uow)

        outcomes = await self.db.write(apply, kind="block")
        elapsed = (time.perf_counter() - started) / len(fetched)
        tip = fetched[-1].block
        self.cursor = Cursor(tip.number, tip.hash)
        for outcome in outcomes:
            self._record(outcome, elapsed)
        return self.cursor.number

    def _sweep_candidates(self, fetched: list[FetchedBlock]) -> list[Sweep]:
        """Token transfers and NativeSwept logs from issued addresses (screened in memory)."""
        if not self.fetcher.watches_sweeps:
            return []
        outgoing = [
            t for item in fetched for t in item.transfers
            if t.kind == "erc20" and t.amount > 0 and t.from_address != t.to_address
        ]  # fmt: skip
        native = [s for item in fetched for s in item.native_sweeps if s.amount > 0]
        issued = self.fetcher.screen(
            [t.from_address for t in outgoing] + [s.address for s in native]
        )
        tokens = [
            Sweep(t.network, t.block_number, t.block_hash, t.block_time, t.tx_hash, t.log_index,
                  t.from_address, t.to_address, t.asset, t.token, t.amount)
            for t in outgoing
            if t.from_address in issued
        ]  # fmt: skip
        return tokens + [s for s in native if s.address in issued]

    def _record(self, outcome: BlockOutcome, seconds: float) -> None:
        name = self.network.name
        metrics.BLOCKS_PROCESSED.labels(name).inc()
        metrics.TRANSFERS_PROCESSED.labels(name).inc(outcome.transfers)
        metrics.PROCESSED_HEIGHT.labels(name).set(outcome.number)
        self.last_block_time = outcome.block_time.timestamp()
        metrics.BLOCK_PROCESSING_SECONDS.labels(name).observe(seconds)
        for payment in outcome.payments:
            metrics.PAYMENTS_MATCHED.labels(name, payment.asset).inc()
            log.info(
                "%s: payment of %s to invoice %s in block %d (%s)",
                name, amount_text(self.network, payment.asset, payment.amount),
                payment.invoice_id, payment.block_number,
                "counted" if payment.counted else "wrong asset, not counted",
                extra={"invoice_id": payment.invoice_id, "network": name},
            )  # fmt: skip
        if outcome.reevaluation is not None:
            self._record_reevaluation(outcome.reevaluation)

    def _record_reevaluation(self, result: Reevaluation) -> None:
        result.record_metrics()
        for invoice in result.invoices:
            log.info(
                "invoice %s is now %s",
                invoice.id, state_text(invoice, self.network),
                extra={"invoice_id": invoice.id, "network": invoice.network},
            )  # fmt: skip
        for event in result.events:
            if event.type == "invoice.reorg_flagged":
                log.error(
                    "%s: a reorg deeper than %d confirmations removed payments of PAID invoice "
                    "%s; it stays paid and is flagged for review",
                    self.network.name, self.network.confirmations, event.invoice_id,
                    extra={"invoice_id": event.invoice_id, "network": self.network.name},
                )  # fmt: skip

    # -- reorgs ----------------------------------------------------------------------------
    async def rewind(self) -> int:
        """Walk back to the common ancestor and orphan what was above it; returns the depth."""
        assert self.cursor is not None
        expected = self.cursor
        ancestor = await self._common_ancestor(expected)
        depth = expected.number - ancestor.number
        name, settings, now = self.network.name, self.settings, self._now()

        fence = self.fence

        def apply(uow: UnitOfWork) -> Reevaluation:
            fence(uow)
            if uow.chain.get_cursor(name) != expected:
                raise CursorMoved(f"cursor moved away from {expected} during the rewind")
            affected = uow.chain.orphan_above(name, ancestor.number, now)
            uow.chain.save_cursor(name, ancestor, now)
            return reevaluate(uow, affected, settings, now)

        result = await self.db.write(apply, kind="block")
        self.cursor = ancestor
        metrics.REORGS.labels(name).inc()
        metrics.REORG_DEPTH.labels(name).observe(depth)
        metrics.PROCESSED_HEIGHT.labels(name).set(ancestor.number)
        log.warning(
            "%s: reorg of depth %d: blocks %d..%d left the chain; %d invoice(s) re-evaluated",
            name, depth, ancestor.number + 1, expected.number, len(result.invoices),
        )  # fmt: skip
        self._record_reevaluation(result)
        return depth

    async def _common_ancestor(self, cursor: Cursor) -> Cursor:
        name = self.network.name
        low = await self.db.read(lambda c: c.chain.lowest_block(name))
        low = cursor.number if low is None else low
        stored = await self.db.read(lambda c: c.chain.block_hashes(name, low, cursor.number))
        high = cursor.number
        while high >= low:
            numbers = list(range(high, max(low, high - 31) - 1, -1))
            for block in await self.reader.get_blocks(numbers, full_transactions=False):
                if stored.get(block.number) == block.hash:
                    return Cursor(block.number, block.hash)
            high = numbers[-1] - 1
        # Deeper than every block kept: nothing left to compare, so trust the node from here.
        fallback = max(low - 1, 0)
        block = (await self.reader.get_blocks([fallback], full_transactions=False))[0]
        log.error(
            "%s: reorg deeper than the %d blocks kept; resuming from the node's block %d",
            name, len(stored), fallback,
        )  # fmt: skip
        return Cursor(block.number, block.hash)


def _payments(
    uow: UnitOfWork, network: Network, candidates: list[Transfer], head: int, now: datetime
) -> list[Payment]:
    """Payments for transfers to issued addresses of this network's invoices."""
    if not candidates:
        return []
    invoices = uow.chain.invoices_at(sorted({t.to_address for t in candidates}))
    payments = []
    for t in candidates:
        invoice = invoices.get(t.to_address)
        if invoice is None:
            # The matcher holds only addresses whose invoice committed, so a hit without its
            # invoice is a read that went wrong: fail the block (it is retried), never skip
            # the payment and move the cursor past it.
            raise InvoiceUnreadable(
                f"{network.name}: address {t.to_address} is issued but its invoice was not "
                f"found (tx {t.tx_hash}, log {t.log_index}); the block will be retried"
            )
        if invoice.network != network.name:
            continue
        payments.append(_payment(t, invoice, head, now))
    return payments


def _payment(t: Transfer, invoice: Invoice, head: int, now: datetime) -> Payment:
    return Payment(
        network=t.network,
        tx_hash=t.tx_hash,
        log_index=t.log_index,
        invoice_id=invoice.id,
        store_id=invoice.store_id,
        address=t.to_address,
        asset=t.asset,
        amount=t.amount,
        counted=t.asset == invoice.asset,
        block_number=t.block_number,
        block_hash=t.block_hash,
        block_time=t.block_time,
        confirmations=confirmations(t.block_number, head),
        state=PaymentState.PENDING,
        first_seen_at=now,
        confirmed_at=None,
        updated_at=now,
    )


class _RangeJob:
    """The database work of a run of consecutive blocks: pure DB, safe to run again.

    Each block keeps its own semantics (its payments, its confirmations, its re-evaluation and
    events, in chain order); the run commits as one transaction, so no block is ever partly
    applied and the cursor moves with the data. Statements that would repeat for every empty
    block (cursor, confirmation counts, block hashes) are issued once per run: DuckDB pays
    ~0.3 ms per statement, which would otherwise cap catch-up at a few hundred blocks/s.
    """

    def __init__(
        self,
        network: Network,
        settings: Settings,
        fetched: list[FetchedBlock],
        hits: set[str],
        finalized: int | None,
        now: datetime,
    ) -> None:
        self.network = network
        self.settings = settings
        self.fetched = fetched
        self.hits = hits  # recipients that are issued addresses
        self.finalized = finalized
        self.now = now
        self.sweeps: list[Sweep] = []  # candidates from issued addresses, kept if they are sweeps

    def apply(self, uow: UnitOfWork) -> list[BlockOutcome]:
        name, first, tip = self.network.name, self.fetched[0].block, self.fetched[-1].block
        cursor = uow.chain.get_cursor(name)
        if cursor is None or cursor.number != first.number - 1:
            raise CursorMoved(f"cursor is {cursor}, block {first.number} needs its parent")
        if cursor.hash != first.parent_hash:
            raise ReorgDetected(f"block {first.number} does not extend {cursor.hash}")
        busy = [item for item in self.fetched if item.transfers]
        uow.chain.replace_transfers(
            name,
            [(item.block.number, item.block.hash) for item in busy],
            [transfer for item in busy for transfer in item.transfers],
        )
        self._record_sweeps(uow)
        pending = {(p.tx_hash, p.log_index): p for p in uow.chain.pending_payments(name)}
        outcomes = [self._block(uow, item, pending) for item in self.fetched]
        if pending:
            uow.chain.update_confirmations(name, tip.number, self.now)
        kept = self.fetched[-BLOCKS_KEPT:]
        uow.chain.insert_blocks(name, [_stored(item) for item in kept])
        if tip.number // _PRUNE_EVERY != (first.number - 1) // _PRUNE_EVERY:
            uow.chain.prune_blocks(name, tip.number)
        uow.chain.save_cursor(name, Cursor(tip.number, tip.hash), self.now)
        return outcomes

    def _record_sweeps(self, uow: UnitOfWork) -> None:
        """Keep the candidates sent by a forwarder deposit of this network to its treasury."""
        if not self.sweeps:
            return
        name = self.network.name
        treasuries = uow.chain.deposit_treasuries(name, sorted({s.address for s in self.sweeps}))
        swept = [s for s in self.sweeps if treasuries.get(s.address) == s.treasury]
        blocks = sorted({(s.block_number, s.block_hash) for s in self.sweeps})
        uow.chain.replace_sweeps(name, blocks, swept)

    def _block(
        self,
        uow: UnitOfWork,
        item: FetchedBlock,
        pending: dict[tuple[str, int], PendingPayment],
    ) -> BlockOutcome:
        number, network = item.block.number, self.network
        paying = [t for t in item.transfers if t.to_address in self.hits and t.amount > 0]
        payments = _payments(uow, network, paying, number, self.now)
        uow.chain.upsert_payments(payments)
        for p in payments:
            pending[(p.tx_hash, p.log_index)] = PendingPayment(
                p.tx_hash, p.log_index, p.invoice_id, p.block_number, p.block_time
            )
        position = ChainPosition(head=number, finalized=self.finalized, now=self.now)
        ready = [
            key
            for key, p in pending.items()
            if is_confirmed(network, p.block_number, p.block_time, position)
        ]
        touched = {p.invoice_id for p in payments} | {pending[key].invoice_id for key in ready}
        uow.chain.confirm_payments(network.name, ready, number, self.now)
        for key in ready:
            del pending[key]
        outcome = BlockOutcome(number, item.time, len(item.transfers), payments)
        if touched:
            uow.chain.update_confirmations(network.name, number, self.now)
            outcome.reevaluation = reevaluate(uow, touched, self.settings, self.now)
        return outcome


def _stored(item: FetchedBlock) -> StoredBlock:
    block = item.block
    return StoredBlock(block.number, block.hash, block.parent_hash, item.time)


def _time(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _no_fence(uow: UnitOfWork) -> None:
    """No lease to check (a BlockService used on its own, as in tools and some tests)."""
