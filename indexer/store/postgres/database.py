"""The PostgreSQL adapter: the system of record for several `chainpay serve` replicas.

Every unit of work is one PostgreSQL transaction on a pooled connection, run on a worker thread
(the repositories are synchronous SQL, shared with the DuckDB adapter through dialect.py):
- reads: REPEATABLE READ, READ ONLY — one snapshot for every statement of `fn`;
- writes: REPEATABLE READ. A write that conflicts with a concurrent one (serialization failure,
  deadlock) is rolled back and `fn` runs again — the port allows any `fn` to run more than once —
  up to `retries` times, then StorageConflict. `on_commit` runs once, on the event loop, after the
  commit, whether or not the caller still waits.
Writes that only add rows (invoice creation) are grouped: concurrent ones share one transaction
(group_commit.py); other writes are concurrent transactions. psycopg errors are translated at
this boundary (indexer.store.errors).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import IsolationLevel, errors
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from indexer import metrics
from indexer.store.answers import run_on_commit
from indexer.store.errors import (
    StorageConflict,
    StorageUnavailable,
    StoreError,
    UniqueViolation,
)
from indexer.store.port import UnitOfWork
from indexer.store.postgres import notify
from indexer.store.postgres.connection import PgConnection
from indexer.store.postgres.group_commit import GroupCommitter, StagedWrite
from indexer.store.repositories.unit_of_work import SqlUnitOfWork, stage
from indexer.store.sql import Append, Migration, group_appends, migrate, pending_migrations

log = logging.getLogger(__name__)
T = TypeVar("T")
MIGRATION_LOCK = 0x63686169  # pg_advisory_lock key: replicas starting together migrate once
# After the shared migrations: what only PostgreSQL needs. Events record the id of the
# transaction that inserted them, so the outbox is read in an order no commit can overtake.
POSTGRES_ONLY = (
    "ALTER TABLE events ALTER COLUMN tx SET DEFAULT txid_current()",
    "CREATE INDEX IF NOT EXISTS events_position ON events (tx, seq)",
    # the chain tail of a replica learns other replicas' addresses by creation time
    "CREATE INDEX IF NOT EXISTS invoices_created ON invoices (created_at)",
)


def is_postgres_url(database: object) -> bool:
    return str(database).startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"{parts.username}@" if parts.username else "") + host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def translated(exc: BaseException) -> BaseException:
    """psycopg's error as the port's (indexer.store.errors); any other error as it is."""
    if not isinstance(exc, psycopg.Error):
        return exc
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, errors.UniqueViolation):
        return UniqueViolation(message)
    if isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected):
        return StorageConflict(message)
    if isinstance(exc, psycopg.OperationalError | errors.AdminShutdown | errors.DiskFull):
        return StorageUnavailable(f"PostgreSQL: {message}")
    return StoreError(f"PostgreSQL: {message}")


class PostgresStorage:
    """Storage on PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 16,
        write_timeout: float = 10.0,
        read_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        retries: int = 8,
    ) -> None:
        self.url = url
        self.write_timeout = write_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.commit_listeners: list[Callable[[set[str]], None]] = []
        self.remote_commit_listeners: list[Callable[[set[str]], None]] = []  # notify.follow
        self.shared = True  # replicas share the database: leases and cache refreshes apply
        self._problem: str | None = None
        self._closed = False
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=connect_timeout,
            kwargs={"autocommit": True, "connect_timeout": int(max(connect_timeout, 1))},
            configure=_configure,
            check=ConnectionPool.check_connection,
            name="chainpay",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout:
            self._pool.close()
            raise StorageUnavailable(
                f"cannot connect to PostgreSQL at {redacted(url)} within {connect_timeout:g} s"
            ) from None
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="postgres")
        self._group = GroupCommitter(self._commit_rows, self._tell_listeners)

    # -- lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> list[Migration]:
        """Apply pending migrations under an advisory lock (replicas starting together)."""
        with self._pool.connection() as raw:
            raw.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
            try:
                applied = migrate(PgConnection(raw))
                for statement in (*POSTGRES_ONLY, *notify.SCHEMA):
                    raw.execute(statement.encode())
                return applied
            finally:
                raw.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])

    def pending_migrations(self) -> list[Migration]:
        with self._pool.connection() as raw:
            return pending_migrations(PgConnection(raw))

    async def follow_remote_commits(self) -> None:
        def wake(kinds: set[str]) -> None:
            for listener in self.remote_commit_listeners:
                listener(kinds)

        await notify.follow(self.url, wake)

    async def close(self) -> None:
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._close_sync)

    def _close_sync(self) -> None:
        self._group.stop()
        self._threads.shutdown(wait=True)
        self._pool.close()

    # -- units of work -----------------------------------------------------------------------
    def _run(self, fn: Callable[[UnitOfWork], T], read_only: bool) -> T:
        """`fn` in one transaction, retried on a serialization failure or deadlock."""

        def body(raw: psycopg.Connection[Any]) -> T:
            raw.isolation_level = IsolationLevel.REPEATABLE_READ
            raw.read_only = read_only
            with raw.transaction():
                appends: list[Append] = []
                uow = SqlUnitOfWork(PgConnection(raw), None if read_only else appends)
                result = fn(uow)
                if appends:
                    flush_appends(raw, appends)
            return result

        return self._retrying(body)

    def _commit_rows(self, appends: Sequence[Append]) -> None:
        """A group's rows in one transaction, sent as one pipeline (group_commit.py)."""

        def body(raw: psycopg.Connection[Any]) -> None:
            raw.isolation_level = IsolationLevel.REPEATABLE_READ
            raw.read_only = False
            with raw.pipeline(), raw.transaction():
                flush_appends(raw, appends)

        self._retrying(body)

    def _retrying(self, body: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`body` on a pooled connection, again after a serialization failure or deadlock;
        psycopg's errors translated (indexer.store.errors)."""
        attempt = 0
        while True:
            try:
                with self._pool.connection() as raw:
                    result = body(raw)
                self._healthy()
                return result
            except (errors.SerializationFailure, errors.DeadlockDetected) as exc:
                attempt += 1
                if attempt > self.retries:
                    raise translated(exc) from exc
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
            except PoolTimeout as exc:
                failure = StorageUnavailable(f"no PostgreSQL connection: {exc}")
                self._unhealthy(failure)
                raise failure from exc
            except psycopg.Error as exc:
                error = translated(exc)
                if isinstance(error, StorageUnavailable):
                    self._unhealthy(error)
                raise error from exc

    def _open(self) -> None:
        if self._closed:
            raise StoreError("database is closed")

    async def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        self._open()
        future = asyncio.get_running_loop().run_in_executor(self._threads, self._run, fn, True)
        try:
            async with asyncio.timeout(self.read_timeout):
                return await future
        except TimeoutError:
            raise StorageUnavailable(
                f"PostgreSQL did not answer a read within {self.read_timeout:g} s"
            ) from None

    async def read_sql(self, fn: Callable[[PgConnection], T]) -> T:
        """The adapter's escape hatch (tests, benchmarks): `fn` on a read transaction's
        connection, in the repositories' SQL dialect."""
        return await self.read(lambda uow: fn(uow.conn))  # type: ignore[attr-defined]

    def read_sync(self, fn: Callable[[UnitOfWork], T]) -> T:
        return self._run(fn, True)

    def write_sync(self, fn: Callable[[UnitOfWork], T]) -> T:
        return self._run(fn, False)

    async def write(
        self,
        fn: Callable[[UnitOfWork], T],
        kind: str = "api",
        on_commit: Callable[[Any], None] | None = None,
        wait_limit: float | None = None,
    ) -> T:
        self._open()
        loop = asyncio.get_running_loop()
        staged = stage(fn)
        if staged is not None:  # adds-only: committed with every other one queued (group commit)
            future = loop.create_future()
            self._group.submit(StagedWrite(*staged, future, kind, on_commit))
            return await self._answer(future, wait_limit)
        started = time.perf_counter()
        future = loop.run_in_executor(self._threads, self._run, fn, False)

        def done(finished: asyncio.Future[T]) -> None:
            if finished.cancelled() or finished.exception() is not None:
                return
            metrics.DB_COMMIT_SECONDS.labels(kind).observe(time.perf_counter() - started)
            run_on_commit(on_commit, finished.result(), kind)
            self._tell_listeners({kind})

        future.add_done_callback(done)
        return await self._answer(future, wait_limit)

    def _tell_listeners(self, kinds: set[str]) -> None:
        for listener in self.commit_listeners:
            listener(kinds)

    async def _answer(self, future: asyncio.Future[T], wait_limit: float | None) -> T:
        """The write's result, or StorageUnavailable(timed_out) after the limit (the write
        goes on, and its on_commit runs if it commits)."""
        limit = self.write_timeout if wait_limit is None else wait_limit
        try:
            async with asyncio.timeout(limit):
                return await asyncio.shield(future)
        except TimeoutError:
            metrics.DB_WRITE_TIMEOUTS.inc()
            raise StorageUnavailable(
                f"PostgreSQL did not commit within {limit:g} s (the write may still land)",
                timed_out=True,
            ) from None

    # -- health ------------------------------------------------------------------------------
    def _healthy(self) -> None:
        if self._problem is not None:
            log.warning("PostgreSQL answers again after: %s", self._problem)
            self._problem = None
            metrics.DB_WRITABLE.set(1)

    def _unhealthy(self, failure: StorageUnavailable) -> None:
        if self._problem is None:
            log.error("%s", failure)
            metrics.DB_STORAGE_FAILURES.inc()
        self._problem = str(failure)
        metrics.DB_WRITABLE.set(0)
        threading.Thread(target=self._probe, daemon=True).start()

    def _probe(self) -> None:
        """While unhealthy, try a trivial statement every second until it answers."""
        while self._problem is not None and not self._closed:
            time.sleep(1.0)
            try:
                with self._pool.connection(timeout=2.0) as raw:
                    raw.execute("SELECT 1")
            except (psycopg.Error, PoolTimeout):
                continue
            self._healthy()

    def ready(self) -> tuple[bool, str]:
        if self._problem is not None:
            return False, self._problem
        return True, "ok"

    def alive(self) -> tuple[bool, str]:
        return True, "ok"  # PostgreSQL's own availability is /readyz's; restarting won't help

    # -- copies ------------------------------------------------------------------------------
    async def export_snapshot(self, out: Path) -> dict[str, Any]:
        """The analyst tables from one snapshot, as the same Parquet files as DuckDB's."""
        from indexer.store.postgres.export import export_snapshot

        return await asyncio.to_thread(export_snapshot, self._pool, out)

    async def backup(self, out: Path) -> dict[str, Any]:
        raise StoreError(
            "on PostgreSQL, back up with pg_dump, pg_basebackup or your provider's backups "
            "(docs/operations.md, 'Running more than one replica')"
        )


def _configure(raw: psycopg.Connection[Any]) -> None:
    raw.execute("SET TIME ZONE 'UTC'")
    # JSON comes back as its text, as DuckDB returns it: payloads are delivered byte for byte
    for name in ("json", "jsonb"):
        raw.adapters.register_loader(name, TextLoader)


def flush_appends(raw: psycopg.Connection[Any], appends: Sequence[Append]) -> None:
    """The transaction's added rows: one multi-row INSERT per (table, columns)."""
    conn = PgConnection(raw)
    for (table, columns), rows in group_appends(appends).items():
        conn.insert_rows(table, columns, rows)
