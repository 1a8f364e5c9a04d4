"""The storage port: what services, workers and the API may ask of the store.

A unit of work (`UnitOfWork`) is one transaction's view: typed repositories whose reads all see
one snapshot, and whose writes commit together or not at all. `Storage` runs functions in units
of work: `read(fn)` in a read-only snapshot, `write(fn)` in a write transaction, answered once it
is durable. Adapters (indexer.store.duckdb today) implement both; nothing here names a driver,
and no driver exception crosses the port (see indexer.store.errors).

The write contract every adapter keeps (docs/discussions.md, "Invariants"):
- `fn` may run more than once (an adapter may replay it alone after another job's failure, or
  stage it on the caller's thread first), so it must be pure database work: no clock, no memory
  changes, no network, no waiting. Memory follows the database through `on_commit`, which runs
  once, after the commit, on the event loop.
- A write that raises leaves nothing behind.
- Events become visible to `WebhookRepository.fan_out` in `seq` order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from indexer.domain.records import Invoice, Payment
from indexer.domain.sweep import Sweep
from indexer.domain.transfer import Transfer
from indexer.store.rows import (
    ApiKeyRow,
    AttemptRow,
    Cursor,
    DeliveryRow,
    DeliveryUpdate,
    DepositRow,
    EndpointRow,
    EventRow,
    FanOut,
    IdempotentResponse,
    Lease,
    MissingPayment,
    NewDelivery,
    PendingDelivery,
    PendingPayment,
    StoredBlock,
    StoreRow,
    TreasuryRow,
)

T = TypeVar("T")


class StoreRepository(Protocol):
    """Stores (merchants) and their API keys."""

    def insert_store(self, store: StoreRow) -> None: ...

    def reserve_indexes(self, store_id: str, count: int) -> int:
        """Reserve `count` consecutive HD indexes for the store, never handed out before (by any
        process); returns the first. Gaps are allowed, reuse never."""
        ...

    def release_indexes(self, store_id: str, first_unused: int, limit: int) -> bool:
        """Give back [first_unused, limit) if it is still the newest reservation."""
        ...

    def store_by_chain(self, xpub_chain: str) -> StoreRow | None: ...

    def all_stores(self) -> list[StoreRow]: ...

    def insert_api_key(self, key: ApiKeyRow) -> None: ...

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRow | None: ...

    def active_api_keys(self) -> list[ApiKeyRow]: ...

    def insert_treasuries(self, rows: Sequence[TreasuryRow]) -> None: ...

    def all_treasuries(self) -> list[TreasuryRow]: ...

    def forwarder_deposits(self, network: str) -> list[DepositRow]:
        """Forwarder stores' addresses on `network` with a confirmed payment (any asset)."""
        ...


class InvoiceRepository(Protocol):
    """Invoices and the payments credited to them."""

    def add(self, invoice: Invoice) -> None:
        """Insert a new invoice (batched with the other writes of the transaction)."""
        ...

    def update_invoice_states(self, invoices: Iterable[Invoice]) -> None:
        """Write back the evaluated columns of changed invoices."""
        ...

    def get_invoice(self, invoice_id: str) -> Invoice | None: ...

    def get_invoices(self, invoice_ids: Sequence[str]) -> dict[str, Invoice]: ...

    def list_invoices(
        self,
        store_id: str,
        limit: int,
        status: str | None = None,
        order_id: str | None = None,
        starting_after: Invoice | None = None,
    ) -> tuple[list[Invoice], bool]:
        """Newest first; cursor pagination by (created_at, id) of the last item seen."""
        ...

    def payments_for(self, invoice_ids: Sequence[str]) -> dict[str, list[Payment]]: ...

    def with_payments(self, invoice_id: str) -> tuple[Invoice | None, list[Payment]]:
        """An invoice and its payments, from one snapshot."""
        ...

    def due_for_expiry_ids(self, now: datetime, limit: int) -> list[str]:
        """Ids of open invoices past `expires_at`, soonest first, at most `limit`."""
        ...

    def next_address_indexes(self) -> dict[str, int]:
        """Per store, the next unused HD index: past the highest issued and past any floor."""
        ...

    def all_addresses(self) -> list[str]: ...

    def addresses_since(self, created_after: datetime) -> list[str]:
        """Addresses of invoices created after `created_after` (by any process)."""
        ...


class ChainRepository(Protocol):
    """Per network: the cursor, recent canonical blocks, transfers and payment confirmation."""

    def get_cursor(self, network: str) -> Cursor | None: ...

    def cursor_block_time(self, network: str) -> datetime | None:
        """The timestamp of the cursor's block, or None before the first start."""
        ...

    def save_cursor(self, network: str, cursor: Cursor, now: datetime) -> None: ...

    def insert_blocks(self, network: str, blocks: Sequence[StoredBlock]) -> None: ...

    def prune_blocks(self, network: str, head: int) -> None: ...

    def block_hashes(self, network: str, low: int, high: int) -> dict[int, str]:
        """Stored canonical hashes of blocks `low..high` (those still kept)."""
        ...

    def lowest_block(self, network: str) -> int | None: ...

    def replace_transfers(
        self, network: str, blocks: Sequence[tuple[int, str]], transfers: Sequence[Transfer]
    ) -> None:
        """Store the transfers of `blocks` ((number, hash) pairs, ascending)."""
        ...

    def replace_sweeps(
        self, network: str, blocks: Sequence[tuple[int, str]], sweeps: Sequence[Sweep]
    ) -> None:
        """Store the sweeps of `blocks` ((number, hash) pairs, ascending), replacing earlier
        rows of the same blocks."""
        ...

    def list_sweeps(
        self,
        network: str,
        addresses: Sequence[str] | None = None,
        include_orphaned: bool = False,
    ) -> list[Sweep]:
        """Sweeps in chain order, of `addresses` when given, canonical unless asked."""
        ...

    def deposit_treasuries(self, network: str, addresses: Sequence[str]) -> dict[str, str]:
        """Of `addresses`, this network's forwarder deposit addresses, with their treasury."""
        ...

    def has_forwarder_stores(self, network: str) -> bool:
        """Whether a forwarder store has a treasury on `network` (its sweeps are watched)."""
        ...

    def upsert_payments(self, payments: Sequence[Payment]) -> None:
        """Insert payments; one already known (re-included after a reorg) moves to its block."""
        ...

    def pending_payments(self, network: str) -> list[PendingPayment]: ...

    def update_confirmations(self, network: str, head: int, now: datetime) -> None: ...

    def confirm_payments(
        self, network: str, keys: Sequence[tuple[str, int]], head: int, now: datetime
    ) -> None:
        """Mark payments confirmed, with their depth at `head` frozen from then on."""
        ...

    def orphan_above(self, network: str, ancestor: int, now: datetime) -> list[str]:
        """Orphan transfers and payments above `ancestor`; the invoices whose payments moved."""
        ...

    def invoices_at(self, addresses: Sequence[str]) -> dict[str, Invoice]:
        """Invoices keyed by lowercase address."""
        ...

    def open_native_addresses(self, network: str, native_symbol: str, now: datetime) -> list[str]:
        """Lowercase addresses of this network's open invoices for its native coin."""
        ...

    def native_credited(
        self, network: str, asset: str, addresses: Sequence[str], through_block: int
    ) -> dict[str, int]:
        """Native coin credited to each address (any invoice, counted or not) up to a block."""
        ...

    def open_addresses(self, network: str, now: datetime) -> list[str]:
        """Lowercase addresses of this network's invoices still watched (any asset)."""
        ...

    def transfers_without_payment(
        self, network: str, after: int, upto: int, issued: Callable[[Iterable[str]], set[str]]
    ) -> list[MissingPayment]:
        """Canonical transfers of blocks `after+1..upto` to issued addresses with no payment."""
        ...

    def unswept_amounts(self) -> dict[tuple[str, str], int]:
        """(network, asset) -> base units that confirmed payments credited to forwarder deposit
        addresses and canonical sweeps have not moved (per address, never below zero)."""
        ...


class EventRepository(Protocol):
    """The events table, which is also the outbox."""

    def add(self, event: EventRow) -> None:
        """Insert a new event (batched with the other writes of the transaction)."""
        ...

    def insert_events(self, events: list[EventRow]) -> None: ...

    def get_event(self, event_id: str) -> EventRow | None: ...

    def list_events(
        self,
        store_id: str,
        limit: int,
        type_: str | None = None,
        invoice_id: str | None = None,
        before_seq: int | None = None,
    ) -> tuple[list[EventRow], bool]:
        """Newest first; `before_seq` is the cursor (the seq of the last event seen)."""
        ...


class WebhookRepository(Protocol):
    """Webhook endpoints, their deliveries and attempts, and the outbox fan-out cursor."""

    def insert_endpoint(self, e: EndpointRow) -> None: ...

    def update_endpoint(self, endpoint_id: str, **changes: Any) -> EndpointRow | None:
        """Set the given columns of a live endpoint; the row after the change, or None."""
        ...

    def live_endpoints(self) -> list[EndpointRow]:
        """Every endpoint not deleted."""
        ...

    def get_endpoint(self, endpoint_id: str) -> EndpointRow | None: ...

    def cancel_pending(self, endpoint_id: str) -> int:
        """Cancel an endpoint's pending deliveries (it was deleted); returns how many."""
        ...

    def outbox_cursor(self) -> int: ...

    def has_events_after(self, seq: int) -> bool: ...

    def fan_out(self, cursor: int, now: datetime, hook: bool, limit: int = 1000) -> FanOut:
        """Turn the next events after `cursor` into deliveries and advance the cursor.

        Raises StaleCursor when the stored cursor is not `cursor`."""
        ...

    def insert_deliveries(self, deliveries: list[NewDelivery]) -> None:
        """Deliveries made by hand (a test ping, a redelivery): due at once."""
        ...

    def pending_deliveries(
        self, hook: bool, endpoint_id: str | None = None
    ) -> list[PendingDelivery]:
        """Pending deliveries to enabled endpoints (and to the hook when it is configured)."""
        ...

    def event_payloads(self, event_ids: Sequence[str]) -> dict[str, str]: ...

    def record_attempts(
        self,
        attempts: list[AttemptRow],
        updates: list[DeliveryUpdate],
        failing_since: dict[str, datetime | None],
    ) -> None:
        """One batch of finished attempts: their rows, their deliveries, endpoints' health."""
        ...

    def list_deliveries(
        self,
        store_id: str,
        limit: int,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        after: DeliveryRow | None = None,
    ) -> tuple[list[DeliveryRow], bool]:
        """Newest first; `after` is the last delivery of the previous page."""
        ...

    def get_delivery(self, delivery_id: str) -> DeliveryRow | None: ...

    def attempts_for(self, delivery_ids: Sequence[str]) -> dict[str, list[AttemptRow]]: ...


class IdempotencyRepository(Protocol):
    """Responses kept per (store, Idempotency-Key)."""

    def add(self, item: IdempotentResponse) -> None:
        """Insert a kept response (batched with the other writes of the transaction)."""
        ...

    def get(self, store_id: str, key: str) -> IdempotentResponse | None:
        """The kept response for this key, if any (another process may have written it)."""
        ...

    def all_responses(self) -> list[IdempotentResponse]:
        """Every kept key, old ones too: a key still in the table must replay, never collide."""
        ...

    def delete_older_than(self, before: datetime, limit: int) -> list[tuple[str, str]]:
        """Delete at most `limit` keys created before `before`; return their (store_id, key)."""
        ...


class LeaseRepository(Protocol):
    """Leases with fencing tokens: work one process at a time may do (see migration 009)."""

    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> int | None:
        """Take or keep `name` until `until`; the fencing token, or None while another holds it."""
        ...

    def renew(self, name: str, holder: str, token: int, until: datetime) -> bool:
        """Extend the lease if it is still ours with `token` (the fencing check)."""
        ...

    def release(self, name: str, holder: str, token: int, now: datetime) -> None: ...

    def all_leases(self) -> list[Lease]: ...


class UnitOfWork(Protocol):
    """One transaction: every repository, one snapshot, one commit."""

    @property
    def stores(self) -> StoreRepository: ...

    @property
    def invoices(self) -> InvoiceRepository: ...

    @property
    def chain(self) -> ChainRepository: ...

    @property
    def events(self) -> EventRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def leases(self) -> LeaseRepository: ...


class Storage(Protocol):
    """Runs units of work. See the module docstring for the write contract."""

    commit_listeners: list[Callable[[set[str]], None]]
    # Called on the event loop when OTHER processes committed ("events", "settings"), while
    # `follow_remote_commits` runs; never on a store only one process can open (DuckDB).
    remote_commit_listeners: list[Callable[[set[str]], None]]
    shared: bool  # several processes may use this store at once (leases, cache refreshes)

    async def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        """`fn` in a read-only snapshot; raises StorageUnavailable when it cannot be read."""
        ...

    async def write(
        self,
        fn: Callable[[UnitOfWork], T],
        kind: str = "api",
        on_commit: Callable[[Any], None] | None = None,
        wait_limit: float | None = None,
    ) -> T:
        """`fn` in a write transaction, returned once durable. `kind` labels metrics."""
        ...

    def read_sync(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Start-up and CLI code, before the writer starts."""
        ...

    def write_sync(self, fn: Callable[[UnitOfWork], T]) -> T:
        """CLI code with no gateway running: one transaction."""
        ...

    def ready(self) -> tuple[bool, str]:
        """Whether writes can be taken now, and why not (for /readyz)."""
        ...

    def alive(self) -> tuple[bool, str]:
        """False only where waiting cannot help and a restart may (for /healthz)."""
        ...

    async def export_snapshot(self, out: Path) -> dict[str, Any]:
        """Parquet files of the analyst tables, from one snapshot, in the directory `out`."""
        ...

    async def backup(self, out: Path) -> dict[str, Any]:
        """A consistent copy of the whole database, written to `out`."""
        ...

    async def follow_remote_commits(self) -> None:
        """Call `remote_commit_listeners` as other processes commit, until cancelled; a hint
        that makes work happen sooner, never the only way it happens (callers still poll)."""
        ...

    async def close(self) -> None: ...
