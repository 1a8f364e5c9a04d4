"""The DuckDB store: the one connection, numbered migrations, and the threads that talk to it.

DuckDB is slow at single-row commits (~500/s here) and fast in bulk, and one process owns the
file. So every write goes through `write()`: concurrent callers are grouped into one
transaction (group commit) and each is answered only after that transaction is durable.
Reads run on their own cursors on a small thread pool so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from indexer import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
Connection = duckdb.DuckDBPyConnection


class StoreError(Exception):
    """The database cannot be used as it is (locked by another process, newer schema, …)."""


class DatabaseLocked(StoreError):
    """Another process (usually a running `chainpay serve`) holds the DuckDB file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The numbered migrations shipped with the package, in order."""
    found = []
    for entry in resources.files("indexer.store.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append(Migration(int(name[:3]), name[:-4], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 001, 002, … without gaps: {versions}")
    return found


def open_connection(path: Path | str, read_only: bool = False) -> Connection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseLocked(
                f"{path} is in use by another process (is `chainpay serve` running?)"
            ) from None
        raise StoreError(f"cannot open {path}: {exc}") from None


def bulk_insert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    casts: Mapping[str, str] | None = None,
) -> None:
    """Insert many rows with one list parameter per column, unnested side by side.

    DuckDB binds parameters slowly (~15 us each), so a multi-row VALUES of 20 columns runs at
    ~4,000 rows/s; one list per column keeps the parameter count fixed: ~11,000 rows/s in
    batches of 32 and ~40,000 in batches of 256 (measured here). `casts` maps a column to a
    SQL type for values sent as text (BIGNUM amounts, JSON).
    """
    if not rows:
        return
    casts = casts or {}
    selects = ", ".join(f"unnest(?)::{casts[c]}" if c in casts else "unnest(?)" for c in columns)
    values = [list(column) for column in zip(*rows, strict=True)]
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selects}", values)


def _flush_appends(conn: Connection, appends: Sequence[Append]) -> None:
    groups: dict[
        tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], list[tuple[Any, ...]]
    ] = {}
    for item in appends:
        groups.setdefault((item.table, item.columns, item.casts), []).append(item.row)
    for (table, columns, casts), rows in groups.items():
        bulk_insert(conn, table, columns, rows, dict(casts))


def applied_versions(conn: Connection) -> list[int]:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return []
    return [
        row[0]
        for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    ]


def pending_migrations(conn: Connection) -> list[Migration]:
    done = set(applied_versions(conn))
    known = migrations()
    newer = done - {m.version for m in known}
    if newer:
        raise StoreError(
            f"the database has schema versions {sorted(newer)} that this chainpay does not know: "
            "it was written by a newer release"
        )
    return [m for m in known if m.version not in done]


def migrate(conn: Connection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns what was applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    applied = []
    for migration in pending_migrations(conn):
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.name, datetime.now(UTC)],
            )
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        log.info("applied migration %s", migration.name)
        applied.append(migration)
    return applied


@dataclass(frozen=True)
class Append:
    """One row for `bulk_insert`, collected across a group commit into one INSERT per table."""

    table: str
    columns: tuple[str, ...]
    row: tuple[Any, ...]
    casts: tuple[tuple[str, str], ...] = ()


@dataclass
class _Job:
    fn: Callable[[Connection], Any] | None
    future: asyncio.Future[Any]
    kind: str
    appends: Sequence[Append] = ()


@dataclass
class _Batch:
    jobs: list[_Job] = field(default_factory=list)


class Database:
    """Owns the DuckDB connection. `write()` group-commits; `read()` runs on reader cursors."""

    def __init__(self, path: Path | str, readers: int = 2) -> None:
        self.path = Path(path)
        self.conn = open_connection(self.path)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-writer")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="duckdb-reader")
        self._local = threading.local()
        self._pending: list[_Job] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        # Called on the event loop after a transaction with at least one successful job commits
        # (e.g. the webhook dispatcher's wake-up), with the kinds of the jobs it held.
        self.commit_listeners: list[Callable[[set[str]], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> list[Migration]:
        return migrate(self.conn)

    def pending_migrations(self) -> list[Migration]:
        return pending_migrations(self.conn)

    async def close(self) -> None:
        self._closed = True
        while self._flush_task is not None and not self._flush_task.done():
            await self._flush_task
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self.conn.close()

    # -- reads -------------------------------------------------------------------------------
    def _cursor(self) -> Connection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.conn.cursor()
            self._local.cursor = cursor
        return cursor

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run a read-only function on a reader thread's own cursor (a consistent snapshot)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._cursor()))

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        """For start-up and CLI code that runs before the event loop."""
        return fn(self.conn)

    # -- writes ------------------------------------------------------------------------------
    async def append(self, rows: Sequence[Append], kind: str = "api") -> None:
        """Insert rows in the next group commit: one statement per table for the whole batch.

        DuckDB's cost is per statement (~1 ms) as much as per commit, so appends from concurrent
        requests are merged into a single multi-row INSERT per table.
        """
        await self._submit(None, kind, rows)

    async def write(self, fn: Callable[[Connection], T], kind: str = "api") -> T:
        """Run `fn` inside a write transaction shared with whatever else is waiting to commit.

        Returns once the transaction is committed. If `fn` raises, only its own work is undone
        (the batch is replayed without it) and the exception is raised here.
        """
        result: T = await self._submit(fn, kind, ())
        return result

    async def _submit(
        self, fn: Callable[[Connection], Any] | None, kind: str, appends: Sequence[Append]
    ) -> Any:
        if self._closed:
            raise StoreError("database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Job(fn, future, kind, appends))
        if not self._flushing:
            self._flushing = True
            self._flush_task = loop.create_task(self._flush())
        return await future

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """One transaction, outside the event loop (CLI commands with the server stopped)."""
        self.conn.execute("BEGIN TRANSACTION")
        try:
            result = fn(self.conn)
            self.conn.execute("COMMIT")
            return result
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                # Let requests whose bytes already arrived reach `write` first: a yield costs
                # microseconds and makes the batch, and so each commit, larger.
                await asyncio.sleep(0)
                jobs, self._pending = self._pending, []
                outcomes = await loop.run_in_executor(self._writer, self._commit_batch, jobs)
                committed = {job.kind for job, (ok, _) in zip(jobs, outcomes, strict=True) if ok}
                for job, (ok, value) in zip(jobs, outcomes, strict=True):
                    if job.future.done():
                        continue
                    if ok:
                        job.future.set_result(value)
                    else:
                        job.future.set_exception(value)
                if committed:
                    for listener in self.commit_listeners:
                        listener(committed)
        finally:
            self._flushing = False
            if self._pending:  # arrived between the last swap and the flag reset
                self._flushing = True
                self._flush_task = loop.create_task(self._flush())

    def _commit_batch(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        kind = jobs[0].kind if len({j.kind for j in jobs}) == 1 else "mixed"
        started = time.perf_counter()
        try:
            outcomes = self._run_in_transaction(jobs)
        except Exception as exc:  # a job's own error, or DuckDB's (a constraint, the commit)
            if len(jobs) == 1:
                outcomes = [(False, exc)]
            else:  # replay each job alone so one bad job cannot undo the others
                outcomes = [self._run_alone(job) for job in jobs]
        metrics.DB_COMMIT_SECONDS.labels(kind).observe(time.perf_counter() - started)
        metrics.DB_BATCH_SIZE.labels(kind).observe(len(jobs))
        return outcomes

    def _run_alone(self, job: _Job) -> tuple[bool, Any]:
        try:
            return self._run_in_transaction([job])[0]
        except Exception as exc:
            return False, exc

    def _run_in_transaction(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        """All jobs and their appends in one transaction; rolled back and raised on any error."""
        conn = self.conn
        conn.execute("BEGIN TRANSACTION")
        try:
            results = [(True, job.fn(conn) if job.fn is not None else None) for job in jobs]
            _flush_appends(conn, [a for job in jobs for a in job.appends])
            conn.execute("COMMIT")
            return results
        except Exception:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise
