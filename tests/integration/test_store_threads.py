"""No DuckDB connection, cursor or result is shared across threads (issue 10, item 1).

With duckdb 2.0 two threads on one connection can be refused, swap result sets or get an empty
one; /readyz querying on the writer's connection made the block job's invoice lookup come back
empty and a payment was skipped. These tests pin the construction: one connection per thread,
refused elsewhere, snapshot reads, a writer that survives broken transactions, and a block that
fails (and is retried) rather than skip a payment it cannot read.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from indexer.domain.transfer import Transfer
from indexer.services.blocks import InvoiceUnreadable, _payments
from indexer.store.duckdb.database import Database
from indexer.store.errors import ConnectionShared
from tests.support.gateway import Chain, GatewayFactory


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database(tmp_path / "threads.duckdb")
    database.migrate()
    database.write_sync(
        lambda c: c.conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v VARCHAR)")
    )
    yield database
    await database.close()


async def count(db: Database) -> int:
    rows = await db.read_sql(lambda c: c.execute("SELECT count(*) FROM t").fetchall())
    return int(rows[0][0])


async def test_a_connection_refuses_a_thread_that_does_not_own_it(db: Database) -> None:
    # given a connection opened on this thread
    conn = db.connect("test")
    errors: list[BaseException] = []

    # when another thread uses it
    def use() -> None:
        try:
            conn.execute("SELECT 1").fetchall()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()

    # then it is refused, and the owner can still use it
    assert len(errors) == 1 and isinstance(errors[0], ConnectionShared)
    assert conn.execute("SELECT 1").fetchall() == [(1,)]
    conn.retire()


async def test_start_up_access_is_refused_once_the_writer_runs(db: Database) -> None:
    # given a database whose writer thread has started
    await db.write(lambda c: c.conn.execute("INSERT INTO t VALUES (1, 'a')"))

    # when code on the event loop asks the start-up connection (what /readyz used to do)
    # then it is refused instead of racing the writer on its connection
    with pytest.raises(ConnectionShared):
        db.pending_migrations()
    with pytest.raises(ConnectionShared):
        db.read_sync(lambda c: c.conn.execute("SELECT 1").fetchall())


async def test_a_read_sees_one_snapshot_across_its_statements(db: Database) -> None:
    # given a row, and a read that counts twice with a commit in between
    await db.write(lambda c: c.conn.execute("INSERT INTO t VALUES (1, 'a')"))
    loop = asyncio.get_running_loop()

    def counts(conn):  # type: ignore[no-untyped-def]
        first = conn.conn.execute("SELECT count(*) FROM t").fetchall()[0][0]
        write = db.write(lambda c: c.conn.execute("INSERT INTO t VALUES (2, 'b')"))
        asyncio.run_coroutine_threadsafe(write, loop).result(timeout=10)
        second = conn.conn.execute("SELECT count(*) FROM t").fetchall()[0][0]
        return first, second

    # when it runs
    first, second = await db.read(counts)

    # then both statements saw the same state, and the commit is visible to the next read
    assert (first, second) == (1, 1)
    assert await count(db) == 2


@pytest.mark.parametrize(
    "breaker",
    [
        pytest.param(lambda c: c.conn.execute("INSERT INTO t VALUES (1, 'dup')"), id="constraint"),
        pytest.param(lambda c: c.conn.execute("ROLLBACK"), id="job-rolls-back-the-batch"),
        pytest.param(lambda c: c.conn.execute("BEGIN TRANSACTION"), id="job-begins-again"),
        pytest.param(lambda c: c.conn.execute("COMMIT"), id="job-commits-early"),
        pytest.param(lambda c: c.conn.execute("SELEC nonsense"), id="syntax-error"),
    ],
)
async def test_the_writer_recovers_from_a_job_that_breaks_its_transaction(
    db: Database, breaker
) -> None:  # type: ignore[no-untyped-def]
    # given a committed row
    await db.write(lambda c: c.conn.execute("INSERT INTO t VALUES (1, 'a')"))

    # when a job leaves the writer's transaction in a state of its own making, then raises
    def broken(c):  # type: ignore[no-untyped-def]
        breaker(c)
        raise RuntimeError("the job failed")

    with pytest.raises(Exception):  # noqa: B017 - the job's own error, whatever it is
        await db.write(broken)

    # then every later write commits, alone and in a batch, and nothing of the job stayed
    await db.write(lambda c: c.conn.execute("INSERT INTO t VALUES (2, 'b')"))
    await asyncio.gather(
        *(
            db.write(lambda c, k=k: c.conn.execute("INSERT INTO t VALUES (?, 'c')", [k]))
            for k in (3, 4)
        )
    )
    rows = await db.read_sql(lambda c: c.execute("SELECT k, v FROM t ORDER BY k").fetchall())
    assert rows == [(1, "a"), (2, "b"), (3, "c"), (4, "c")]
    assert db.ready() == (True, "ok")


async def test_an_issued_address_whose_invoice_cannot_be_read_fails_the_block(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a transfer to an address the matcher confirms but whose invoice is not readable
    # (the empty result the shared connection used to hand the block job)
    gw = await gateway_factory([chain])
    network = gw.gateway.settings.networks["ethereum"]
    address = "0x" + "ab" * 20
    transfer = Transfer(
        network="ethereum", block_number=10, block_hash="0x" + "11" * 32,
        block_time=datetime.now(UTC), tx_hash="0x" + "22" * 32, log_index=0, kind="erc20",
        asset="USDT", token=chain.usdt, from_address="0x" + "33" * 20, to_address=address,
        amount=10**6,
    )  # fmt: skip

    # when the block job looks for its payments
    # then it fails, so the block commits nothing and is retried, instead of skipping the payment
    with pytest.raises(InvoiceUnreadable, match=address):
        await gw.gateway.db.write(
            lambda c: _payments(c, network, [transfer], 10, datetime.now(UTC)), kind="block"
        )
