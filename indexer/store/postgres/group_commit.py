"""Group commit for the PostgreSQL adapter: concurrent adds-only writes share one transaction.

Most API writes only add rows (an invoice, its event, its idempotency key). Alone, each paid a
transaction of its own: five round trips (the pool's check, BEGIN, one INSERT per table, COMMIT),
one WAL flush and a thread hop per request. Such a write is *staged* on the caller's thread: its
`fn` runs against a unit of work without a connection (any query raises NeedsTransaction, and
the write takes the adapter's ordinary path instead; the port allows `fn` to run twice). A
committer thread takes every staged write queued so far and commits them in one transaction,
its INSERTs sent as one pipeline: four round trips (the pool's check, BEGIN, every INSERT,
COMMIT), one WAL flush and one hop back to the event loop for the whole group.

- Rows go in in job order: events take their `seq` in that order and share the group's
  transaction id (`events.tx`), and the outbox reads in (tx, seq) order, as for one job.
- A job's own error (a UniqueViolation: an Idempotency-Key another replica committed first)
  fails the group; each job is then committed alone, so only that job fails.
- A serialization failure or deadlock retries the group, as the adapter retries every write.
- A failure of PostgreSQL itself (StorageUnavailable) fails every job of the group, no replay.
- `on_commit` runs once per committed job, on its event loop, after the commit.
Writes that read (address reservation, leases with fencing, blocks, expiry) never come here:
they keep their own REPEATABLE READ transaction and its retries.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from indexer import metrics
from indexer.store.answers import answer_on_loops
from indexer.store.errors import StorageUnavailable, StoreError
from indexer.store.sql import Append

log = logging.getLogger(__name__)


@dataclass
class StagedWrite:
    """A write whose `fn` only added rows: its rows and its result stand for it."""

    appends: Sequence[Append]
    result: Any
    future: asyncio.Future[Any]
    kind: str
    on_commit: Callable[[Any], None] | None


class GroupCommitter:
    """A queue of staged writes and the thread that commits them in groups.

    `commit(rows)` commits the rows in one transaction (retrying serialization failures) and
    raises the port's errors; `answered(kinds)` is told, on the event loop, which kinds of
    writes a group committed (the storage's commit listeners).
    """

    def __init__(
        self,
        commit: Callable[[Sequence[Append]], None],
        answered: Callable[[set[str]], None],
    ) -> None:
        self._commit = commit
        self._answered = answered
        self._queue: list[StagedWrite] = []
        self._queued = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, job: StagedWrite) -> None:
        with self._queued:
            if self._stopping:  # under the lock: a job queued after the thread stopped would hang
                raise StoreError("database is closed")
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._commit_forever, name="postgres-group-commit", daemon=True
                )
                self._thread.start()
            self._queued.notify()

    def stop(self) -> None:
        """Commit what is queued, then stop the thread (blocking: call it off the loop)."""
        with self._queued:
            self._stopping = True
            self._queued.notify()
        if self._thread is not None:
            self._thread.join()

    def _commit_forever(self) -> None:
        while True:
            with self._queued:
                while not self._queue and not self._stopping:
                    self._queued.wait()
                if not self._queue:
                    return
                jobs, self._queue = self._queue, []
            try:
                outcomes = self.commit_group(jobs)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                outcomes = [(False, exc)] * len(jobs)
            answer_on_loops(jobs, outcomes, [self._answered])

    def commit_group(self, jobs: Sequence[StagedWrite]) -> list[tuple[bool, Any]]:
        """Every job's rows in one transaction; after a job's own error, each job alone."""
        kind = jobs[0].kind if len({j.kind for j in jobs}) == 1 else "mixed"
        started = time.perf_counter()
        try:
            self._commit([row for job in jobs for row in job.appends])
            outcomes: list[tuple[bool, Any]] = [(True, job.result) for job in jobs]
        except StorageUnavailable as failure:  # every job would fail alike
            outcomes = [(False, failure)] * len(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                outcomes = [(False, exc)]
            else:
                outcomes = [self._alone(job) for job in jobs]
        metrics.DB_COMMIT_SECONDS.labels(kind).observe(time.perf_counter() - started)
        metrics.DB_BATCH_SIZE.labels(kind).observe(len(jobs))
        return outcomes

    def _alone(self, job: StagedWrite) -> tuple[bool, Any]:
        try:
            self._commit(job.appends)
        except Exception as exc:
            return False, exc
        return True, job.result
