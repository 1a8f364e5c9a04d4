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
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from indexer import metrics
from indexer.store.answers import answer_on_loops
from indexer.store.duckdb.connection import (
    Append,
    Connection,
    Migration,
    OwnedConnection,
    migrate,
    open_raw,
    pending_migrations,
)
from indexer.store.errors import (
    ConnectionShared,
    StorageConflict,
    StorageUnavailable,
    StoreError,
    UniqueViolation,
)
from indexer.store.port import UnitOfWork
from indexer.store.repositories.unit_of_work import SqlUnitOfWork, stage
from indexer.store.sql import group_appends

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Job:
    fn: Callable[[UnitOfWork], Any] | None  # None: staged, `appends` and `result` stand for it
    future: asyncio.Future[Any]
    kind: str
    on_commit: Callable[[Any], None] | None = None
    appends: Sequence[Append] = ()
    result: Any = None


# DuckDB reports a failing disk or file system inside these exceptions; the messages below are
# what it said here for a full disk, a read-only directory and a lost file (duckdb 2.0).
_STORAGE_MESSAGES = (
    "could not write",
    "cannot open file",
    "no space left",
    "permission denied",
    "read-only file system",
    "input/output error",
    "failed to commit",
    "could not fsync",
    "could not truncate",
)


class DatabaseInvalidated(StorageUnavailable):
    """DuckDB gave up on the database after a fatal error: it must be closed and reopened."""


def storage_failure(exc: BaseException) -> StorageUnavailable | None:
    """The driver error as a StorageUnavailable when the storage is at fault, else None."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if not isinstance(exc, duckdb.Error):
        return None
    message = str(exc)
    lowered = message.lower()
    if isinstance(exc, duckdb.FatalException) or "invalidated" in lowered:
        return DatabaseInvalidated(f"the database was invalidated by a fatal error: {message}")
    if isinstance(exc, duckdb.IOException | duckdb.OutOfMemoryException) or any(
        phrase in lowered for phrase in _STORAGE_MESSAGES
    ):
        return StorageUnavailable(f"the database cannot commit: {message}")
    return None


def driver_neutral(exc: BaseException) -> BaseException:
    """DuckDB's error translated at the port (indexer.store.errors); any other error as it is.

    A job's own exceptions (domain errors) pass through untouched.
    """
    if not isinstance(exc, duckdb.Error):
        return exc
    message = str(exc)
    if isinstance(exc, duckdb.ConstraintException):
        lowered = message.lower()
        if "duplicate key" in lowered or "unique" in lowered or "primary key" in lowered:
            return UniqueViolation(message)
    if isinstance(exc, duckdb.SerializationException) or (
        isinstance(exc, duckdb.TransactionException) and "conflict" in message.lower()
    ):
        return StorageConflict(message)
    return StoreError(message)


@dataclass
class StoreHealth:
    """What the writer knows about the storage, read by /readyz and /healthz."""

    writable: bool = True
    invalidated: bool = False
    problem: str | None = None
    since: float | None = None  # monotonic time the current problem started
    busy_since: float | None = None  # monotonic start of the commit in progress


class Database:
    """Owns the DuckDB database: a writer thread that group-commits, reader threads for reads.

    Every thread uses its own connection (see `OwnedConnection`): the writer thread one, each
    reader thread one, start-up code (before the writer starts) one. The writer recovers from
    any failed transaction with a fresh connection, reports a storage that cannot commit in
    `health`, and reopens the database when DuckDB invalidated it (a failed checkpoint).
    """

    def __init__(
        self,
        path: Path | str,
        readers: int = 2,
        threads: int | None = None,
        *,
        write_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self._threads = threads
        self._root_lock = threading.Lock()  # guards the root connection and `_generation`
        self._root = self._open_root()
        self._generation = 0  # bumped by a reopen: reader threads then open new connections
        self._startup: Connection | None = self.connect("start-up")
        self._reader_count = readers
        self._readers = self._new_reader_pool()
        self._reader_connections: list[Connection] = []
        self._local = threading.local()
        self._writer_conn: Connection | None = None
        # The writer's appenders, one per (table, columns): rows go in without SQL to parse or
        # plan, converted by the column types. Bound to the writer's connection.
        self._appenders: dict[tuple[str, tuple[str, ...]], duckdb.Appender] = {}
        # The writer thread takes every job queued while it committed the previous batch, so it
        # never waits for the event loop between commits (the loop answers requests meanwhile).
        self._queue: list[_Job] = []
        self._queued = threading.Condition()
        self._writer: threading.Thread | None = None
        self.linger = 0.003  # seconds a batch may wait for the rest of a wave of requests
        self.lull = 0.1  # seconds without a write after which a large WAL is checkpointed
        self.checkpoint_bytes = 4 << 20
        self.write_timeout = write_timeout  # a caller waits this long for its commit, then 503
        self.read_timeout = read_timeout
        self.probe_interval = 1.0  # seconds between recovery attempts while not writable
        self.stalled_after = 5.0  # a commit running longer than this makes /readyz say so
        self.unrecoverable_after = 60.0  # invalidated and not reopened this long: /healthz fails
        self.health = StoreHealth()
        self.shared = False  # one process owns the file (DuckDB's lock)
        self.reopens = 0
        self._stopping = False
        self._closed = False
        self._skipped_checkpoint: str | None = None  # the last reason logged, to log it once
        # Called on the event loop after a transaction with at least one successful job commits
        # (e.g. the webhook dispatcher's wake-up), with the kinds of the jobs it held.
        self.commit_listeners: list[Callable[[set[str]], None]] = []
        self.remote_commit_listeners: list[Callable[[set[str]], None]] = []  # never called
        metrics.DB_WRITABLE.set(1)

    # -- connections -------------------------------------------------------------------------
    def _open_root(self) -> duckdb.DuckDBPyConnection:
        root = open_raw(self.path)
        if self._threads is not None:  # DuckDB's worker threads, for every query of this process
            root.execute(f"SET threads = {int(self._threads)}")
        return root

    def connect(self, label: str) -> Connection:
        """A new connection to this database, owned by the calling thread (close it when done)."""
        with self._root_lock:
            return OwnedConnection(self._root.cursor(), label)

    def _new_reader_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            max_workers=self._reader_count, thread_name_prefix="duckdb-reader"
        )

    def _reader(self) -> Connection:
        """This reader thread's connection, opened anew after a reopen."""
        mine = getattr(self._local, "conn", None)
        if mine is None or self._local.generation != self._generation:
            mine = self.connect("reader")
            self._local.conn, self._local.generation = mine, self._generation
            with self._root_lock:
                self._reader_connections.append(mine)
        return mine

    def _drop_reader(self) -> None:
        mine = getattr(self._local, "conn", None)
        if mine is not None:
            mine.retire()
            self._local.conn = None

    # -- lifecycle ---------------------------------------------------------------------------
    def _startup_connection(self) -> Connection:
        if self._startup is None:
            raise ConnectionShared(
                "start-up access after the writer started: use `await read()` / `await write()`"
            )
        return self._startup

    def migrate(self) -> list[Migration]:
        return migrate(self._startup_connection())

    def pending_migrations(self) -> list[Migration]:
        """For start-up code; a running gateway asks `await read(pending_migrations)`."""
        return pending_migrations(self._startup_connection())

    async def follow_remote_commits(self) -> None:
        """Nothing to follow: no other process can commit to a file this process holds."""

    async def close(self) -> None:
        """Commit what is queued, stop the writer, close every connection."""
        with self._queued:
            self._closed = self._stopping = True
            self._queued.notify()
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._readers.shutdown(wait=True)
        self._close_connections()

    def _close_connections(self) -> None:
        self._appenders.clear()
        with self._root_lock:
            for conn in [self._startup, self._writer_conn, *self._reader_connections]:
                if conn is not None:
                    conn.retire()
            self._startup = self._writer_conn = None
            self._reader_connections.clear()
            with contextlib.suppress(duckdb.Error):
                self._root.close()

    # -- copies of a live database ----------------------------------------------------------
    async def export_snapshot(self, out: Path) -> dict[str, Any]:
        """Parquet files of the analyst tables from one snapshot (indexer.store.duckdb.export)."""
        from indexer.store.duckdb.export import write_snapshot

        return await self._on_own_connection(write_snapshot, out)

    async def backup(self, out: Path) -> dict[str, Any]:
        """A consistent copy of the whole database in a new file (indexer.store.duckdb.backup)."""
        from indexer.store.duckdb.backup import write_backup

        return await self._on_own_connection(write_backup, out)

    async def _on_own_connection(
        self, fn: Callable[[Connection, Path], dict[str, Any]], out: Path
    ) -> dict[str, Any]:
        """`fn` on a connection of its own, on a thread of its own: the reader pool and the
        writer are left alone, and DuckDB's MVCC lets the writer commit meanwhile."""

        def run() -> dict[str, Any]:  # opened, used and closed on one thread
            conn = self.connect("snapshot")
            try:
                return fn(conn, out)
            finally:
                conn.retire()

        return await asyncio.to_thread(run)

    # -- reads -------------------------------------------------------------------------------
    async def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run a read-only function on a reader thread's connection, in one snapshot.

        All of `fn`'s statements see the same committed state (one transaction, rolled back).
        Raises StorageUnavailable when the database does not answer within `read_timeout` or
        cannot be read (invalidated).
        """
        if self._closed:
            raise StoreError("database is closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._readers, self._read_snapshot, fn)
        try:
            async with asyncio.timeout(self.read_timeout):
                return await future
        except TimeoutError:
            raise StorageUnavailable(
                f"the database did not answer a read within {self.read_timeout:g} s"
            ) from None

    def _read_snapshot(self, fn: Callable[[UnitOfWork], T]) -> T:
        conn = self._reader()
        try:
            conn.execute("BEGIN TRANSACTION")
            try:
                return fn(SqlUnitOfWork(conn, None))
            finally:
                conn.execute("ROLLBACK")
        except duckdb.Error as exc:
            self._drop_reader()  # never reuse a connection whose transaction state is unknown
            failure = storage_failure(exc)
            if failure is None:
                raise driver_neutral(exc) from exc
            if isinstance(failure, DatabaseInvalidated):
                self._invalidated(str(failure))
            raise failure from exc

    def read_sync(self, fn: Callable[[UnitOfWork], T]) -> T:
        """For start-up and CLI code that runs before the writer starts."""
        return fn(SqlUnitOfWork(self._startup_connection(), None))

    async def read_sql(self, fn: Callable[[Connection], T]) -> T:
        """The adapter's own escape hatch (tests, benchmarks): `fn` on a reader's connection."""
        return await self.read(lambda uow: fn(uow.conn))  # type: ignore[attr-defined]

    # -- writes ------------------------------------------------------------------------------
    async def write(
        self,
        fn: Callable[[UnitOfWork], T],
        kind: str = "api",
        on_commit: Callable[[Any], None] | None = None,
        wait_limit: float | None = None,
    ) -> T:
        """Run `fn` inside a write transaction shared with whatever else is waiting to commit.

        Returns once the transaction is committed. If `fn` raises, only its own work is undone
        (the batch is replayed without it) and the exception is raised here. After `wait_limit`
        (default `write_timeout`) it raises StorageUnavailable(timed_out=True): the work may
        still commit later, and `on_commit` (with `fn`'s result) runs if it does.
        """
        result: T = await self._submit(fn, kind, on_commit, wait_limit)
        return result

    async def _submit(
        self,
        fn: Callable[[UnitOfWork], Any],
        kind: str,
        on_commit: Callable[[Any], None] | None = None,
        wait_limit: float | None = None,
    ) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._queued:
            if self._closed:  # under the lock: a job queued after the writer stopped would hang
                raise StoreError("database is closed")
            self._queue.append(self._job(fn, future, kind, on_commit))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_forever, name="duckdb-writer", daemon=True
                )
                self._writer.start()
            self._queued.notify()
        limit = self.write_timeout if wait_limit is None else wait_limit
        try:
            async with asyncio.timeout(limit):
                return await asyncio.shield(future)
        except TimeoutError:
            metrics.DB_WRITE_TIMEOUTS.inc()
            raise StorageUnavailable(
                f"the database did not commit within {limit:g} s (the write may still land)",
                timed_out=True,
            ) from None

    @staticmethod
    def _job(
        fn: Callable[[UnitOfWork], Any],
        future: asyncio.Future[Any],
        kind: str,
        on_commit: Callable[[Any], None] | None,
    ) -> _Job:
        """A job for the writer; one that only adds rows is staged here, on the caller's thread.

        Most API writes only add rows (an invoice, its event, its idempotency key). Running such
        a `fn` against a unit of work without a connection turns its records into appender rows
        before they reach the writer thread, which commits for everyone and is the bottleneck
        (issue 11: doing this on the writer cost ~5% of invoice creation). A `fn` that needs
        the database raises NeedsTransaction at its first query and runs on the writer as
        usual; the port allows any `fn` to run more than once.
        """
        staged = stage(fn)
        if staged is None:  # needs the database, or fails: the writer runs it for real
            return _Job(fn, future, kind, on_commit)
        return _Job(None, future, kind, on_commit, *staged)

    def write_sync(self, fn: Callable[[UnitOfWork], T]) -> T:
        """One transaction, outside the event loop (CLI commands with the server stopped)."""
        conn = self._startup_connection()
        conn.execute("BEGIN TRANSACTION")
        try:
            uow = SqlUnitOfWork(conn, [])
            result = fn(uow)
            flush_appends(conn, uow.appends or [], {})
            conn.execute("COMMIT")
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- health ------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Whether writes can be taken now, and why not (for /readyz)."""
        health = self.health
        if not health.writable:
            return False, health.problem or "the database cannot commit"
        busy = health.busy_since
        if busy is not None and time.monotonic() - busy > self.stalled_after:
            return False, (
                f"a commit has been running for {time.monotonic() - busy:.0f} s "
                "(is the file system frozen or failing?)"
            )
        return True, "ok"

    def alive(self) -> tuple[bool, str]:
        """False only where waiting cannot help and a restart may (for /healthz)."""
        if self._writer is not None and not self._writer.is_alive() and not self._stopping:
            return False, "the database writer thread is dead"
        health = self.health
        if health.invalidated and health.since is not None:
            down = time.monotonic() - health.since
            if down > self.unrecoverable_after:
                return False, f"the database is invalidated for {down:.0f} s: {health.problem}"
        return True, "ok"

    def _failed(self, failure: StorageUnavailable) -> None:
        health = self.health
        if health.writable:
            log.error("%s", failure)
            health.since = time.monotonic()
        health.writable, health.problem = False, str(failure)
        metrics.DB_WRITABLE.set(0)
        metrics.DB_STORAGE_FAILURES.inc()

    def _invalidated(self, problem: str) -> None:
        self.health.invalidated = True
        self._failed(StorageUnavailable(problem))

    def _recovered(self) -> None:
        health = self.health
        if not health.writable:
            log.warning("database commits again after: %s", health.problem)
        health.writable, health.invalidated, health.problem, health.since = True, False, None, None
        metrics.DB_WRITABLE.set(1)

    def _recover(self) -> bool:
        """On the writer thread, while not writable: reopen an invalidated database, or probe
        the file system. True once writes may be tried again."""
        if self.health.invalidated:
            return self._reopen()
        probe = self.path.parent / f".{self.path.name}.probe"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError:
            return False
        self._recovered()  # a real commit that fails again marks it down again
        return True

    def _reopen(self) -> bool:
        """Close every connection of the invalidated database and open it again.

        DuckDB keeps an invalidated database until its last connection closes, so reader
        threads are replaced (their connections closed once they are idle) along with the
        writer's and the root connection.
        """
        old_readers = self._readers
        with self._root_lock:
            self._readers = self._new_reader_pool()
            self._generation += 1
        old_readers.shutdown(wait=True)  # reads in flight fail fast on the invalid database
        self._appenders.clear()
        with self._root_lock:
            for conn in [self._writer_conn, self._startup, *self._reader_connections]:
                if conn is not None:
                    conn.retire()
            self._writer_conn, self._startup = None, None
            self._reader_connections.clear()
            with contextlib.suppress(duckdb.Error):
                self._root.close()
            try:
                self._root = self._open_root()
            except StoreError as exc:
                log.warning("reopening the database failed: %s", exc)
                return False
        try:
            self._writer_conn = self.connect("writer")
            self._writer_conn.execute("SELECT count(*) FROM schema_migrations").fetchall()
        except duckdb.Error as exc:
            log.warning("the reopened database does not answer: %s", exc)
            return False
        metrics.DB_REOPENS.inc()
        self.reopens += 1
        log.warning("database reopened after: %s", self.health.problem)
        self._recovered()
        return True

    # -- the writer thread -------------------------------------------------------------------
    def _writer_connection(self) -> Connection:
        if self._writer_conn is None:
            self._writer_conn = self.connect("writer")
        return self._writer_conn

    def _fresh_writer(self) -> None:
        """After any failed transaction: never reuse a connection whose state is unknown."""
        self._appenders.clear()
        if self._writer_conn is not None:
            self._writer_conn.retire()
            self._writer_conn = None

    def _write_forever(self) -> None:
        """The writer thread: commit everything queued as one batch, answer it, repeat."""
        with self._root_lock:  # start-up access ends here: from now on, only these threads
            if self._startup is not None:
                self._startup.retire()
                self._startup = None
        last = 0  # the size of the previous batch
        while (jobs := self._next_batch(last)) is not None:
            last = len(jobs)
            self.health.busy_since = time.monotonic()
            try:
                outcomes = self._commit_batch(jobs)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                outcomes = [(False, exc)] * len(jobs)
            finally:
                self.health.busy_since = None
            answer_on_loops(jobs, outcomes, self.commit_listeners)

    def _next_batch(self, last: int) -> list[_Job] | None:
        """The next jobs to commit; None once stopping with nothing queued.

        After a batch (`last` > 0), a lull of `lull` seconds is used to checkpoint a large WAL.
        While the storage cannot commit, the writer tries to recover every `probe_interval`.
        """
        with self._queued:
            lull = False
            if last and not self._queue and not self._stopping:
                self._queued.wait(self.lull)
                lull = not self._queue and not self._stopping
        if lull and self.health.writable:
            self._checkpoint_if_large()
        while True:
            with self._queued:
                while not self._queue and not self._stopping and self.health.writable:
                    self._queued.wait()
                if not self._queue and not self._stopping:  # not writable: wait, then recover
                    self._queued.wait(self.probe_interval)
                if self._queue or self._stopping:
                    if not self._queue:  # stopping, and everything queued is committed
                        return None
                    self._linger(last * 3 // 4)
                    jobs, self._queue = self._queue, []
                    return jobs
            self._recover()

    def _checkpoint_if_large(self) -> None:
        """In a lull, fold a large WAL into the database file, when that can succeed.

        DuckDB checkpoints by itself once the WAL passes 16 MB, inside the COMMIT that crosses
        the line: a stall of 80-170 ms measured here, felt by every request of that batch.
        Doing it when nothing has been written for `lull` seconds, from `checkpoint_bytes` on,
        keeps it out of bursts. A checkpoint that fails for want of space invalidates DuckDB's
        database, so it is not tried without room for the WAL's pages twice over; a refusal
        (another transaction busy) is logged once, in one line, and tried at the next lull.
        """
        try:
            size = Path(f"{self.path}.wal").stat().st_size
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return
        if size < self.checkpoint_bytes:
            return
        if free < 2 * size + (16 << 20):
            self._checkpoint_skipped(
                "disk", f"{free} bytes free for a WAL of {size} bytes; DuckDB will checkpoint later"
            )
            return
        started = time.perf_counter()
        try:
            self._writer_connection().execute("CHECKPOINT")
        except duckdb.Error as exc:
            self._writer_failed(exc)
            self._checkpoint_skipped("error", str(exc).splitlines()[0][:200])
            return
        self._skipped_checkpoint = None
        metrics.DB_COMMIT_SECONDS.labels("checkpoint").observe(time.perf_counter() - started)

    def _checkpoint_skipped(self, reason: str, detail: str) -> None:
        metrics.DB_CHECKPOINTS_SKIPPED.labels(reason).inc()
        if self._skipped_checkpoint != reason:  # once per cause, not once per lull
            log.warning("checkpoint in a lull not done (%s): %s", reason, detail)
            self._skipped_checkpoint = reason

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

    def _writer_failed(self, exc: Exception) -> StorageUnavailable | None:
        """After the writer's statement failed: a fresh connection, and when the failure is the
        storage's own (disk, file, invalidated database), the health that says so."""
        self._fresh_writer()
        failure = storage_failure(exc)
        if failure is not None:
            if isinstance(failure, DatabaseInvalidated):
                self.health.invalidated = True
            self._failed(failure)
        return failure

    def _commit_batch(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        kind = jobs[0].kind if len({j.kind for j in jobs}) == 1 else "mixed"
        started = time.perf_counter()
        if not self.health.writable and self.health.invalidated and not self._reopen():
            failure = StorageUnavailable(self.health.problem or "the database is invalidated")
            return [(False, failure)] * len(jobs)
        try:
            outcomes = self._run_in_transaction(jobs)
        except StorageUnavailable as failure:  # no replay: every job would fail alike
            outcomes = [(False, failure)] * len(jobs)
        except Exception as exc:  # a job's own error, or DuckDB's (a constraint)
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
        """All jobs and their appends in one transaction; undone and raised on any error.

        A failure leaves the connection in a state DuckDB does not always report (an aborted
        transaction, a failed ROLLBACK), so the writer drops it and opens a fresh one. A
        failure of the storage itself is raised as StorageUnavailable and marks `health`.
        """
        conn = self._writer_connection()
        try:
            conn.execute("BEGIN TRANSACTION")
            appends: list[Append] = []
            uow = SqlUnitOfWork(conn, appends)
            results = []
            for job in jobs:  # rows in job order: events take their seq in this order
                if job.fn is None:
                    appends.extend(job.appends)
                    results.append((True, job.result))
                else:
                    results.append((True, job.fn(uow)))
            flush_appends(conn, appends, self._appenders)
            conn.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(duckdb.Error, ConnectionShared):
                conn.execute("ROLLBACK")
            failure = self._writer_failed(exc)
            if failure is not None:
                raise failure from exc
            raise driver_neutral(exc) from exc
        if not self.health.writable:
            self._recovered()
        return results


def flush_appends(
    conn: Connection,
    appends: Sequence[Append],
    appenders: dict[tuple[str, tuple[str, ...]], duckdb.Appender],
) -> None:
    """One appender flush per (table, columns): the rows of every job in the transaction.

    `appenders` caches DuckDB appenders bound to `conn` (the writer's, across batches).
    """
    for target, rows in group_appends(appends).items():
        appender = appenders.get(target)
        if appender is None:
            table, columns = target
            appender = conn.appender(table, columns=list(columns))
            appenders[target] = appender
        try:
            appender.append_rows(rows)
            appender.flush()
        except BaseException:
            appender.clear()  # nothing of a failed batch may ride along with the next
            raise
