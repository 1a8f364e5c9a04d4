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
from dataclasses import dataclass
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
    """One row to insert, collected across a group commit into one appender flush per table.

    Values are converted by the column's type: amounts as decimal text (BIGNUM), JSON as text.
    """

    table: str
    columns: tuple[str, ...]
    row: tuple[Any, ...]


@dataclass
class _Job:
    fn: Callable[[Connection], Any] | None
    future: asyncio.Future[Any]
    kind: str
    appends: Sequence[Append] = ()


class Database:
    """Owns the DuckDB connection. `write()` group-commits; `read()` runs on reader cursors."""

    def __init__(self, path: Path | str, readers: int = 2, threads: int | None = None) -> None:
        self.path = Path(path)
        self.conn = open_connection(self.path)
        if threads is not None:  # DuckDB's worker threads, for every query of this process
            self.conn.execute(f"SET threads = {int(threads)}")
        # The writer's appenders, one per (table, columns): rows go in without SQL to parse or
        # plan, converted by the column types. Used on the writer thread only.
        self._appenders: dict[tuple[str, tuple[str, ...]], duckdb.Appender] = {}
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="duckdb-reader")
        self._local = threading.local()
        # The writer thread takes every job queued while it committed the previous batch, so it
        # never waits for the event loop between commits (the loop answers requests meanwhile).
        self._queue: list[_Job] = []
        self._queued = threading.Condition()
        self._writer: threading.Thread | None = None
        self.linger = 0.003  # seconds a batch may wait for the rest of a wave of requests
        self.lull = 0.1  # seconds without a write after which a large WAL is checkpointed
        self.checkpoint_bytes = 4 << 20
        self._stopping = False
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
        """Commit what is queued, stop the writer, close the connection."""
        with self._queued:
            self._closed = self._stopping = True
            self._queued.notify()
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._readers.shutdown(wait=True)
        self._appenders.clear()
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
        """Insert rows in the next group commit: one appender flush per table for the batch.

        DuckDB's cost is per statement (~1 ms) as much as per commit, so appends from concurrent
        requests are merged, and go through an appender: no SQL to parse or plan.
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
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._queued:
            if self._closed:  # under the lock: a job queued after the writer stopped would hang
                raise StoreError("database is closed")
            self._queue.append(_Job(fn, future, kind, appends))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_forever, name="duckdb-writer", daemon=True
                )
                self._writer.start()
            self._queued.notify()
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

    def _write_forever(self) -> None:
        """The writer thread: commit everything queued as one batch, answer it, repeat."""
        last = 0  # the size of the previous batch
        while (jobs := self._next_batch(last)) is not None:
            last = len(jobs)
            try:
                outcomes = self._commit_batch(jobs)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                outcomes = [(False, exc)] * len(jobs)
            loops = {job.future.get_loop() for job in jobs}
            for loop in loops:
                mine = [
                    (j, o)
                    for j, o in zip(jobs, outcomes, strict=True)
                    if j.future.get_loop() is loop
                ]
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(self._answer, mine)

    def _next_batch(self, last: int) -> list[_Job] | None:
        """The next jobs to commit; None once stopping with nothing queued.

        After a batch (`last` > 0), a lull of `lull` seconds is used to checkpoint a large WAL.
        """
        with self._queued:
            lull = False
            if last and not self._queue and not self._stopping:
                self._queued.wait(self.lull)
                lull = not self._queue and not self._stopping
        if lull:
            self._checkpoint_if_large()
        with self._queued:
            while not self._queue and not self._stopping:
                self._queued.wait()
            if not self._queue:  # stopping, and everything queued is committed
                return None
            self._linger(last * 3 // 4)
            jobs, self._queue = self._queue, []
            return jobs

    def _checkpoint_if_large(self) -> None:
        """In a lull, fold a large WAL into the database file.

        DuckDB checkpoints by itself once the WAL passes 16 MB, inside the COMMIT that crosses
        the line: a stall of 80-170 ms measured here, felt by every request of that batch.
        Doing it when nothing has been written for `lull` seconds, from `checkpoint_bytes` on,
        keeps it out of bursts; under sustained load DuckDB's own checkpoint still runs.
        """
        try:
            size = Path(f"{self.path}.wal").stat().st_size
        except OSError:
            return
        if size < self.checkpoint_bytes:
            return
        started = time.perf_counter()
        try:
            self.conn.execute("CHECKPOINT")
        except duckdb.Error:
            log.warning("checkpoint in a lull failed; DuckDB will checkpoint later", exc_info=True)
            return
        metrics.DB_COMMIT_SECONDS.labels("checkpoint").observe(time.perf_counter() - started)

    def _linger(self, target: int) -> None:
        """Under load, wait up to `linger` seconds for the batch to reach `target` jobs.

        Concurrent clients come back in waves: a writer that wakes on the first request of
        a wave would commit it nearly alone while the rest arrive, paying a whole commit for
        one or two invoices. After a batch of n the next one waits for 3n/4 (measured 1.18×
        invoices/s at concurrency 32, 1.12× at 8). After a batch of one the target is zero:
        a lone request is never held. Called with the lock held.
        """
        deadline = time.perf_counter() + self.linger
        while len(self._queue) < target and not self._stopping:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._queued.wait(left)

    def _answer(self, answered: list[tuple[_Job, tuple[bool, Any]]]) -> None:
        """On the event loop: resolve each job's future, then tell the commit listeners."""
        committed = {job.kind for job, (ok, _) in answered if ok}
        for job, (ok, value) in answered:
            if job.future.done():  # the caller was cancelled; its work committed anyway
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        if committed:
            for listener in self.commit_listeners:
                listener(committed)

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

    def _flush_appends(self, appends: Sequence[Append]) -> None:
        """One appender flush per (table, columns): the rows of every request in the batch."""
        groups: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
        for item in appends:
            groups.setdefault((item.table, item.columns), []).append(item.row)
        for target, rows in groups.items():
            appender = self._appenders.get(target)
            if appender is None:
                table, columns = target
                appender = self.conn.appender(table, columns=list(columns))
                self._appenders[target] = appender
            try:
                appender.append_rows(rows)
                appender.flush()
            except BaseException:
                appender.clear()  # nothing of a failed batch may ride along with the next
                raise

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
            self._flush_appends([a for job in jobs for a in job.appends])
            conn.execute("COMMIT")
            return results
        except Exception:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise
