"""Group commit: concurrent writers share a transaction, yet each one's outcome is its own."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import duckdb
import pytest

from indexer.store.duckdb.connection import Append
from indexer.store.duckdb.database import Database
from indexer.store.errors import UniqueViolation


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database(tmp_path / "gc.duckdb")
    database.write_sync(
        lambda c: c.conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v VARCHAR)")
    )
    yield database
    await database.close()


async def rows(database: Database) -> list[tuple[int, str]]:
    return await database.read_sql(lambda c: c.execute("SELECT k, v FROM t ORDER BY k").fetchall())


async def append(db: Database, rows: list[Append]) -> None:
    """Rows through the writer's appender, as `InvoiceRepository.add` sends them."""
    await db.write(lambda uow: uow.appends.extend(rows))


async def test_one_failing_job_in_a_batch_does_not_undo_the_others(db: Database) -> None:
    # given writers that land in one batch, one of them breaking the primary key
    def insert(k: int):  # type: ignore[no-untyped-def]
        return lambda c: c.conn.execute("INSERT INTO t VALUES (?, 'w')", [k])

    # when they are submitted together
    results = await asyncio.gather(
        db.write(insert(1)),
        db.write(insert(2)),
        db.write(insert(1)),
        db.write(insert(3)),
        return_exceptions=True,
    )

    # then only the duplicate fails, and every other write is committed
    assert [isinstance(r, Exception) for r in results] == [False, False, True, False]
    assert isinstance(results[2], UniqueViolation)  # DuckDB's error, translated at the port
    assert await rows(db) == [(1, "w"), (2, "w"), (3, "w")]


async def test_a_bad_append_fails_alone_and_merged_appends_commit(db: Database) -> None:
    # given appends merged into one INSERT, one of them a duplicate key
    def row(k: int) -> list[Append]:
        return [Append("t", ("k", "v"), (k, "a"))]

    # when they are submitted together
    results = await asyncio.gather(
        append(db, row(10)), append(db, row(11)), append(db, row(10)), return_exceptions=True
    )

    # then the duplicate alone is refused and the rows it was merged with are kept
    assert [isinstance(r, Exception) for r in results] == [False, False, True]
    assert await rows(db) == [(10, "a"), (11, "a")]


async def test_a_write_is_answered_only_once_durable(db: Database, tmp_path: Path) -> None:
    # given an acknowledged write
    await db.write(lambda c: c.conn.execute("INSERT INTO t VALUES (7, 'durable')"))

    # when another connection opens the file after this one closes (as after a crash + restart)
    await db.close()
    with duckdb.connect(str(tmp_path / "gc.duckdb"), read_only=True) as conn:
        found = conn.execute("SELECT v FROM t WHERE k = 7").fetchall()

    # then the write is there
    assert found == [("durable",)]


def transaction_id(uow) -> int:  # type: ignore[no-untyped-def]
    row = uow.conn.execute("SELECT txid_current()").fetchone()
    assert row is not None
    return int(row[0])


async def test_after_a_big_batch_the_next_one_waits_for_the_rest_of_the_wave(
    db: Database,
) -> None:
    # given a writer that just committed a batch of 16 (a window long enough for a slow CI):
    # the 16 queue up while the writer is held inside another transaction
    db.linger = 0.5
    gate = threading.Event()
    held = asyncio.ensure_future(db.write(lambda c: c.execute("SELECT 1") and gate.wait(10)))
    await asyncio.sleep(0.05)
    wave = [asyncio.ensure_future(db.write(transaction_id)) for _ in range(16)]
    await asyncio.sleep(0.05)
    gate.set()
    await held
    assert len(set(await asyncio.gather(*wave))) == 1

    # when the next wave arrives in two parts, 50 ms apart
    lead = asyncio.ensure_future(db.write(transaction_id))
    await asyncio.sleep(0.05)
    rest = await asyncio.gather(*(db.write(transaction_id) for _ in range(11)))

    # then the first request waited for the others: all twelve share one transaction
    assert {await lead, *rest} == {rest[0]}


async def test_a_lone_request_is_never_held_for_company(db: Database) -> None:
    # given a writer whose previous batch held one job
    db.linger = 0.5
    await db.write(transaction_id)

    # when one request comes, then another 100 ms later
    lone = asyncio.ensure_future(db.write(transaction_id))
    await asyncio.sleep(0.1)
    later = await db.write(transaction_id)

    # then the first committed on its own, without waiting for the second
    assert lone.done() and await lone != later


async def test_a_large_wal_is_checkpointed_in_a_lull_not_in_a_burst(
    db: Database, tmp_path: Path
) -> None:
    # given a writer that checkpoints any WAL once nothing was written for 200 ms
    db.checkpoint_bytes, db.lull = 1, 0.2
    wal = tmp_path / "gc.duckdb.wal"

    # when rows are written in a burst of transactions 50 ms apart
    for k in range(5):
        await append(db, [Append("t", ("k", "v"), (100 + k, "burst"))])
        await asyncio.sleep(0.05)
        # then no checkpoint runs inside the burst: the WAL keeps growing
        assert wal.exists() and wal.stat().st_size > 0

    # and once the writes stop, the WAL is folded into the file, every row kept
    for _ in range(100):
        if not wal.exists() or wal.stat().st_size == 0:
            break
        await asyncio.sleep(0.05)
    assert not wal.exists() or wal.stat().st_size == 0
    assert [k for k, _ in await rows(db)] == [100, 101, 102, 103, 104]


async def test_a_write_that_only_adds_rows_is_staged_before_the_writer(db: Database) -> None:
    # given a write that only adds rows, and one that reads first
    staged_on: list[str] = []

    def adds_only(uow) -> str:  # type: ignore[no-untyped-def]
        staged_on.append(threading.current_thread().name)
        uow.appends.append(Append("t", ("k", "v"), (300, "staged")))
        return "added"

    def reads_first(uow) -> int:  # type: ignore[no-untyped-def]
        uow.execute("INSERT INTO t VALUES (301, 'writer')")
        return int(uow.execute("SELECT count(*) FROM t").fetchone()[0])

    # when both are written
    assert await db.write(adds_only) == "added"
    assert await db.write(reads_first) == 2

    # then the adding one ran once, on the caller's thread (its rows reached the writer ready),
    # and both committed
    assert staged_on == [threading.current_thread().name]
    assert await rows(db) == [(300, "staged"), (301, "writer")]
