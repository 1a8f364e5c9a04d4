"""The unit of work of the SQL repositories: one connection's transaction, as typed repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from indexer.store.errors import StoreError
from indexer.store.repositories.chain import SqlChainRepository
from indexer.store.repositories.events import SqlEventRepository
from indexer.store.repositories.idempotency import SqlIdempotencyRepository
from indexer.store.repositories.invoices import SqlInvoiceRepository
from indexer.store.repositories.leases import SqlLeaseRepository
from indexer.store.repositories.stores import SqlStoreRepository
from indexer.store.repositories.webhooks import SqlWebhookRepository
from indexer.store.sql import Append, Connection


class SqlUnitOfWork:
    """The repositories of one transaction on `conn` (see indexer.store.port.UnitOfWork).

    `appends` collects rows that `add()` inserts: the writer flushes them through DuckDB's
    appender before COMMIT, merged with the other jobs of its group commit. A read's unit of
    work has none, and refuses to write. `conn` is for the adapter and its tests only.
    """

    __slots__ = (
        "appends",
        "chain",
        "conn",
        "events",
        "idempotency",
        "invoices",
        "leases",
        "stores",
        "webhooks",
    )

    def __init__(self, conn: Connection, appends: list[Append] | None) -> None:
        self.conn = conn
        self.appends = appends
        self.stores = SqlStoreRepository(conn)
        self.invoices = SqlInvoiceRepository(conn, appends)
        self.chain = SqlChainRepository(conn)
        self.events = SqlEventRepository(conn, appends)
        self.webhooks = SqlWebhookRepository(conn)
        self.idempotency = SqlIdempotencyRepository(conn, appends)
        self.leases = SqlLeaseRepository(conn)

    def execute(self, query: str, parameters: object = None) -> Connection:
        """Raw SQL on this transaction's connection: for the adapter's own tests and tools.

        Not part of the port: services and workers type against `UnitOfWork`, which has no
        SQL, so mypy refuses this there.
        """
        return self.conn.execute(query, parameters)


class NeedsTransaction(StoreError):
    """A staged write asked the database for something: it needs a transaction of its own."""


class _Staging:
    """The connection of a staging unit of work: any use means the write is not adds-only."""

    def __getattr__(self, name: str) -> Any:
        raise NeedsTransaction(name)


STAGING = cast(Connection, _Staging())


def stage(fn: Callable[[SqlUnitOfWork], Any]) -> tuple[list[Append], Any] | None:
    """`fn`'s rows and result when it only adds rows, run without a connection; None when it
    needs the database (or fails: then it runs in a real transaction, and fails there).

    Both adapters stage writes this way on the caller's thread, so their committer only
    flushes rows; the port allows any `fn` to run more than once.
    """
    uow = SqlUnitOfWork(STAGING, [])
    try:
        result = fn(uow)
    except Exception:
        return None
    return list(uow.appends or ()), result
