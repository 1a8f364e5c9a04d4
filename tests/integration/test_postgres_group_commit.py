"""PostgreSQL's group commit: concurrent adds-only writes share one transaction, and each keeps
its own outcome (indexer/store/postgres/group_commit.py).

To queue writes deterministically, the committer is first held: a write whose idempotency key
another, still open transaction has inserted waits on that row's lock, and every write
submitted meanwhile queues behind it and forms the next group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from indexer.store.errors import StorageUnavailable, StoreError, UniqueViolation
from indexer.store.port import UnitOfWork
from indexer.store.postgres.database import PostgresStorage
from indexer.store.rows import EventRow, IdempotentResponse, StoreRow

T0 = datetime(2026, 11, 29, tzinfo=UTC)
STORE = StoreRow("st_" + "G" * 22, "group", "xpub-group", "chain-group", T0)


def key_row(key: str) -> IdempotentResponse:
    return IdempotentResponse(STORE.id, key, "hash", 201, '{"ok":true}', T0)


def creation(key: str) -> Callable[[UnitOfWork], str]:
    """The shape of an invoice creation's write: an event and an idempotency key, adds only."""

    def write(uow: UnitOfWork) -> str:
        uow.events.add(EventRow(f"evt_{key:0>22}", STORE.id, "invoice.created", None, "{}", T0))
        uow.idempotency.add(key_row(key))
        return key

    return write


class Holder:
    """An open transaction that has inserted idempotency keys: writes of the same keys wait."""

    def __init__(self, url: str, *keys: str, deadlock_timeout: str = "1s") -> None:
        self.url = url
        self.conn = psycopg.connect(url)
        self.conn.execute(f"SET deadlock_timeout = '{deadlock_timeout}'".encode())
        for key in keys:
            self.insert(key)

    def insert(self, key: str) -> None:
        row = key_row(key)
        self.conn.execute(
            "INSERT INTO idempotency_keys (store_id, key, request_hash, status, response, "
            "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            [row.store_id, row.key, row.request_hash, row.status, row.response, row.created_at],
        )

    def waiting(self, count: int) -> None:
        """Until `count` other sessions wait on a lock (the committer is held)."""
        deadline = time.monotonic() + 30
        with psycopg.connect(self.url, autocommit=True) as probe:
            while time.monotonic() < deadline:
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                ).fetchone()
                if row is not None and row[0] >= count:
                    return
                time.sleep(0.01)
        raise AssertionError(f"never saw {count} session(s) waiting on a lock")


class Hooks:
    """on_commit hooks that count their calls per write."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __call__(self, result: Any) -> None:
        self.calls[result] = self.calls.get(result, 0) + 1


async def committed_tx(storage: PostgresStorage) -> dict[str, int]:
    """Each committed event's transaction id, by its write's key."""
    rows = await storage.read_sql(lambda c: c.execute("SELECT id, tx FROM events").fetchall())
    return {event_id[4:].lstrip("0"): tx for event_id, tx in rows}


async def held_then(
    storage: PostgresStorage, holder: Holder, hooks: Hooks, keys: list[str]
) -> tuple[asyncio.Task[str], list[asyncio.Task[str]]]:
    """A write of the holder's first key (waiting on it), and `keys`' writes queued behind."""
    first = asyncio.ensure_future(storage.write(creation("held"), on_commit=hooks))
    await asyncio.to_thread(holder.waiting, 1)
    queued = [asyncio.ensure_future(storage.write(creation(k), on_commit=hooks)) for k in keys]
    await asyncio.sleep(0.05)  # let every task stage and queue its write
    return first, queued


@pytest.fixture
async def storage(postgres_url: str) -> Any:
    storage = PostgresStorage(postgres_url, pool_size=4)
    await storage.write(lambda uow: uow.stores.insert_store(STORE))
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
def hold(storage: PostgresStorage, postgres_url: str) -> Any:
    """Holders on the test's database, all ended before the storage closes (even on failure,
    so a held write never keeps the storage from closing)."""
    made: list[Holder] = []

    def make(*keys: str, deadlock_timeout: str = "1s") -> Holder:
        made.append(Holder(postgres_url, *keys, deadlock_timeout=deadlock_timeout))
        return made[-1]

    yield make
    for holder in made:
        holder.conn.close()


async def test_concurrent_adds_only_writes_commit_in_one_transaction(
    storage: PostgresStorage, hold: Callable[..., Holder]
) -> None:
    hooks = Hooks()
    holder = hold("held")
    # given the committer held, and five creations queued behind it
    first, queued = await held_then(storage, holder, hooks, ["a1", "a2", "a3", "a4", "a5"])
    # when the holder gives its key up
    holder.conn.rollback()
    # then every write commits, each once, and the five queued ones share one transaction
    assert await first == "held"
    assert await asyncio.gather(*queued) == ["a1", "a2", "a3", "a4", "a5"]
    tx = await committed_tx(storage)
    assert len({tx[k] for k in ("a1", "a2", "a3", "a4", "a5")}) == 1
    assert tx["held"] != tx["a1"]
    assert hooks.calls == {"held": 1, "a1": 1, "a2": 1, "a3": 1, "a4": 1, "a5": 1}
    # and their events are numbered in the order the writes were submitted
    seqs = await storage.read_sql(
        lambda c: c.execute("SELECT id FROM events ORDER BY seq").fetchall()
    )
    assert [row[0][4:].lstrip("0") for row in seqs] == ["held", "a1", "a2", "a3", "a4", "a5"]


async def test_a_duplicate_key_in_a_group_fails_only_its_own_write(
    storage: PostgresStorage, hold: Callable[..., Holder]
) -> None:
    await storage.write(lambda uow: uow.idempotency.add(key_row("taken")))
    hooks = Hooks()
    holder = hold("held")
    # given a group of four creations, one of them with a key already committed
    first, queued = await held_then(storage, holder, hooks, ["b1", "b2", "taken", "b3"])
    # when it commits
    holder.conn.rollback()
    await first
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    # then only the duplicate fails, with the port's UniqueViolation
    assert outcomes[:2] == ["b1", "b2"] and outcomes[3] == "b3"
    assert isinstance(outcomes[2], UniqueViolation)
    # and the others' rows are all there, its own are not, and hooks ran once per commit
    tx = await committed_tx(storage)
    assert set(tx) == {"held", "b1", "b2", "b3"}
    assert hooks.calls == {"held": 1, "b1": 1, "b2": 1, "b3": 1}


async def test_a_group_that_deadlocks_is_retried_whole(
    storage: PostgresStorage, hold: Callable[..., Holder]
) -> None:
    hooks = Hooks()
    holder = hold("held")
    blocker = hold("d2", deadlock_timeout="60s")  # never the deadlock's victim
    # given a group of two creations waiting on a key another transaction holds
    first, queued = await held_then(storage, holder, hooks, ["d1", "d2"])
    holder.conn.rollback()
    await first
    await asyncio.to_thread(blocker.waiting, 1)
    # when that transaction then waits on the group's other key (a deadlock: the group's
    # session detects it and is rolled back), and ends
    await asyncio.to_thread(blocker.insert, "d1")
    blocker.conn.rollback()
    # then the group ran again as one transaction, and each write committed once
    assert await asyncio.gather(*queued) == ["d1", "d2"]
    tx = await committed_tx(storage)
    assert tx["d1"] == tx["d2"]
    assert hooks.calls == {"held": 1, "d1": 1, "d2": 1}


async def test_a_write_that_stopped_waiting_still_runs_its_hook_once_committed(
    storage: PostgresStorage, hold: Callable[..., Holder]
) -> None:
    hooks = Hooks()
    holder = hold("held")
    first = asyncio.ensure_future(storage.write(creation("held"), on_commit=hooks))
    await asyncio.to_thread(holder.waiting, 1)
    # given a write queued behind the held committer, whose caller stops waiting
    with pytest.raises(StorageUnavailable) as timed_out:
        await storage.write(creation("late"), on_commit=hooks, wait_limit=0.1)
    assert timed_out.value.timed_out
    # when the committer moves on
    holder.conn.rollback()
    await first
    # then the write commits and its hook runs once
    for _ in range(500):
        if "late" in hooks.calls:
            break
        await asyncio.sleep(0.01)
    assert hooks.calls == {"held": 1, "late": 1}
    assert "late" in await committed_tx(storage)


async def test_a_write_that_reads_does_not_wait_behind_a_held_group(
    storage: PostgresStorage, hold: Callable[..., Holder]
) -> None:
    hooks = Hooks()
    holder = hold("held")
    first = asyncio.ensure_future(storage.write(creation("held"), on_commit=hooks))
    await asyncio.to_thread(holder.waiting, 1)
    # when a write that reads (an address reservation) runs while the group is held
    reserved = await storage.write(lambda uow: uow.stores.reserve_indexes(STORE.id, 16))
    # then it commits in a transaction of its own
    assert reserved == 0
    assert not first.done()
    holder.conn.rollback()
    assert await first == "held"


async def test_grouped_writes_fail_cleanly_while_postgres_is_gone_and_resume_after(
    postgres_url: str,
) -> None:
    name = urlsplit(postgres_url).path.lstrip("/")
    admin_url = postgres_url.replace(f"/{name}?", "/postgres?")
    storage = PostgresStorage(postgres_url, pool_size=2, connect_timeout=1.0)
    try:
        await storage.write(lambda uow: uow.stores.insert_store(STORE))
        assert await storage.write(creation("before")) == "before"
        # given the database refuses connections and the adapter's ones are cut
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false".encode())
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
            # when an adds-only write comes
            with pytest.raises(StorageUnavailable):
                await storage.write(creation("lost"))
            # then it fails as unavailable and the adapter says it is not ready
            assert storage.ready()[0] is False
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true".encode())
        # and once PostgreSQL takes connections again, the adapter recovers by itself
        for _ in range(300):
            if storage.ready()[0]:
                break
            await asyncio.sleep(0.05)
        assert storage.ready() == (True, "ok")
        assert await storage.write(creation("after")) == "after"
        # and the failed write left nothing behind
        assert set(await committed_tx(storage)) == {"before", "after"}
    finally:
        await storage.close()


async def test_closing_commits_the_writes_already_queued(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url, pool_size=2)
    await storage.write(lambda uow: uow.stores.insert_store(STORE))
    hooks = Hooks()
    holder = Holder(postgres_url, "held")
    try:
        # given writes queued behind a held group
        first, queued = await held_then(storage, holder, hooks, ["c1", "c2"])
        # when the storage closes meanwhile, and the holder then lets go
        closing = asyncio.ensure_future(storage.close())
        await asyncio.sleep(0.05)
        holder.conn.rollback()
        await closing
    finally:
        holder.conn.close()
    # then every write queued before the close was committed and answered
    assert await first == "held"
    assert await asyncio.gather(*queued) == ["c1", "c2"]
    assert hooks.calls == {"held": 1, "c1": 1, "c2": 1}
    # and a write after the close is refused
    with pytest.raises(StoreError):
        await storage.write(creation("late"))
