"""A failing disk: the gateway says so, answers 503 without storing anything, and recovers.

The database lives on a small tmpfs the test mounts (the tests run as root, as CI does), so a
full disk is a real ENOSPC from the kernel, and a checkpoint that fails for want of space is
DuckDB's own FatalException that invalidates the database (issue 10, item 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from indexer.store.duckdb.database import Database
from indexer.store.errors import StorageUnavailable
from tests.support.api import Merchant, write_config

BIG_ROW = "INSERT INTO t SELECT range, repeat('x', 1000) FROM range(?, ? + 2000)"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs, private to the test (needs root, like CI: not skipped without it)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the file system; returns the file to delete to free them."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    return filler


async def wait_until(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def db(small_disk: Path):  # type: ignore[no-untyped-def]
    database = Database(small_disk / "store.duckdb")
    database.migrate()
    database.write_sync(
        lambda c: c.conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v VARCHAR)")
    )
    database.probe_interval = 0.1
    database.checkpoint_bytes = 1 << 40  # no checkpoint in lulls: the test decides
    yield database
    await database.close()


async def count(db: Database) -> int:
    rows = await db.read_sql(lambda c: c.execute("SELECT count(*) FROM t").fetchall())
    return int(rows[0][0])


async def test_a_full_disk_fails_writes_cleanly_and_they_resume_once_space_is_freed(
    db: Database, small_disk: Path
) -> None:
    # given a committed batch of rows
    await db.write(lambda c: c.conn.execute(BIG_ROW, [0, 0]))

    # when the disk fills up
    filler = fill(small_disk)

    # then a write fails as StorageUnavailable, nothing of it stays, and readiness says why
    with pytest.raises(StorageUnavailable, match="No space left"):
        await db.write(lambda c: c.conn.execute(BIG_ROW, [10_000, 10_000]))
    ready, why = db.ready()
    assert not ready and "No space left" in why
    assert db.alive() == (True, "ok")  # a full disk is not a reason to restart
    assert await count(db) == 2000

    # and when space is freed, the writer finds out by itself and writes commit again
    filler.unlink()
    await wait_until(lambda: db.ready()[0])
    await db.write(lambda c: c.conn.execute(BIG_ROW, [10_000, 10_000]))
    assert await count(db) == 4000


async def test_an_invalidated_database_is_reopened_once_the_disk_recovers(
    db: Database, small_disk: Path
) -> None:
    # given rows in the WAL, not yet checkpointed
    for start in range(0, 6000, 2000):
        await db.write(lambda c, s=start: c.conn.execute(BIG_ROW, [s, s]))

    # when a checkpoint runs out of space (DuckDB's own, at a commit, does this on a full disk)
    filler = fill(small_disk)
    with pytest.raises(StorageUnavailable, match="invalidated"):
        await db.write(lambda c: c.conn.execute("CHECKPOINT"))

    # then writes keep failing cleanly while the disk is full (DuckDB may invalidate the
    # reopened database again on a torn WAL write: it is reopened again)
    reopens = db.reopens
    with pytest.raises(StorageUnavailable, match="No space left"):
        await db.write(lambda c: c.conn.execute(BIG_ROW, [9_000, 9_000]))
    assert not db.ready()[0]
    assert db.alive() == (True, "ok")

    # and when space is freed the database is reopened with every committed row, and writes
    # commit again
    filler.unlink()
    await wait_until(lambda: db.ready()[0] and not db.health.invalidated)
    assert db.reopens > reopens
    assert await count(db) == 6000
    await db.write(lambda c: c.conn.execute(BIG_ROW, [9_000, 9_000]))
    assert await count(db) == 8000


async def test_a_database_that_stays_invalidated_fails_liveness_after_the_bound(
    db: Database, small_disk: Path
) -> None:
    # given a database DuckDB invalidated, whose file is then found corrupt (cannot reopen)
    db.probe_interval = 30.0  # no recovery attempt but the one this test triggers
    await db.write(lambda c: c.conn.execute(BIG_ROW, [0, 0]))
    filler = fill(small_disk)
    with pytest.raises(StorageUnavailable, match="invalidated"):
        await db.write(lambda c: c.conn.execute("CHECKPOINT"))
    filler.unlink()
    garbage = small_disk / "garbage"
    garbage.write_bytes(b"not a database" * 1000)
    os.replace(garbage, db.path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{db.path}.wal")

    # when a write makes the writer try to reopen it, and it stays invalidated past the bound
    with pytest.raises(StorageUnavailable):
        await db.write(lambda c: c.conn.execute(BIG_ROW, [5_000, 5_000]))
    db.unrecoverable_after = 0.3
    await asyncio.sleep(0.5)

    # then /healthz's check fails (a restart may help), and /readyz's too
    alive, why = db.alive()
    assert not alive and "invalidated" in why
    assert not db.ready()[0]


async def test_a_stalled_commit_is_answered_503_within_the_bound_and_lands_later(
    db: Database,
) -> None:
    # given a commit that hangs (a frozen file system), and a short bound on waiting
    db.write_timeout = 0.3
    db.stalled_after = 0.2
    release = threading.Event()

    def frozen(conn):  # type: ignore[no-untyped-def]
        conn.conn.execute("SELECT 1")  # on the writer's connection (a staged write has none)
        release.wait(10)
        conn.conn.execute("INSERT INTO t VALUES (1, 'late')")

    landed: list[object] = []

    # when a caller waits on it
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as failure:
        await db.write(frozen, on_commit=landed.append)

    # then it is answered within the bound, readiness reports the stall, liveness does not
    assert failure.value.timed_out
    assert time.monotonic() - started < 5
    assert not db.ready()[0] and "frozen" in db.ready()[1]
    assert db.alive()[0]

    # and when the file system thaws, the write lands and its on-commit hook still runs
    release.set()
    await wait_until(lambda: landed)
    assert await count(db) == 1
    await wait_until(lambda: db.ready()[0])


# -- the same through the HTTP API -----------------------------------------------------------
@pytest.fixture
def config_path(small_disk: Path) -> Path:
    return write_config(small_disk)


async def test_the_api_answers_503_on_a_full_disk_and_readyz_says_why(
    client: TestClient[Any, Any], merchant: Merchant, small_disk: Path
) -> None:
    body = {"network": "ethereum", "asset": "USDT", "amount": "10"}
    first = await client.post("/v1/invoices", json=body, headers=merchant.headers)
    assert first.status == 201

    # when the disk is full
    filler = fill(small_disk)
    reply = await client.post(
        "/v1/invoices", json=body, headers={**merchant.headers, "Idempotency-Key": "k-1"}
    )

    # then the create answers 503 storage_unavailable with Retry-After, and readyz tells why
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "5"
    assert (await reply.json())["error"]["code"] == "storage_unavailable"
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert "No space left" in (await ready.json())["store"]
    assert (await client.get("/healthz")).status == 200

    # and once space is freed the same request (same key) creates the invoice, once
    filler.unlink()
    for _ in range(100):
        if "No space left" not in (await (await client.get("/readyz")).json())["store"]:
            break
        await asyncio.sleep(0.1)
    again = await client.post(
        "/v1/invoices", json=body, headers={**merchant.headers, "Idempotency-Key": "k-1"}
    )
    assert again.status == 201
    listed = await client.get("/v1/invoices", headers=merchant.headers)
    assert len((await listed.json())["data"]) == 2


async def test_a_lull_checkpoint_is_not_tried_without_room_and_says_so_once(
    db: Database, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a WAL over the checkpoint size, and a disk with no room to fold it in
    db.checkpoint_bytes = 1 << 20
    db.lull = 0.05
    for start in range(0, 4000, 2000):
        await db.write(lambda c, s=start: c.conn.execute(BIG_ROW, [s, s]))
    filler = fill(small_disk)

    # when the writer goes through several lulls
    for k in range(3):
        with contextlib.suppress(StorageUnavailable):
            await db.write(lambda c, k=k: c.conn.execute("SELECT ?", [k]))
        await asyncio.sleep(0.2)

    # then no checkpoint ran (a failed one would have invalidated the database), and the skip
    # was logged once, in one line
    assert not db.health.invalidated
    skipped = [r for r in caplog.records if "checkpoint in a lull not done" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].exc_info is None
    filler.unlink()
    assert await count(db) == 4000
