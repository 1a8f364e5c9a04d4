"""Addresses derived ahead in the deriver process: the same addresses, checked before use."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from indexer import deriver
from indexer.domain.clock import SystemClock
from indexer.services.stores import POOL_SIZE, StoreService
from indexer.store.duckdb.database import Database
from indexer.wallet import parse_xpub
from tests.support.anvil import REPO_ROOT
from tests.support.api import TEST_XPUB

FIRST = [
    "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
    "0xb6716976A3ebe8D39aCEB04372f22Ff8e6802D7A",
]


def test_the_deriver_process_gives_the_published_addresses() -> None:
    assert deriver.submit(TEST_XPUB, 0, 3).result(timeout=60) == FIRST


async def test_pooled_addresses_are_the_store_keys_own_in_index_order(tmp_path: Path) -> None:
    # given a store whose pool is refilled by the deriver process
    db = Database(tmp_path / "pool.duckdb")
    db.migrate()
    stores = StoreService(db, SystemClock())
    try:
        store, _ = await stores.create_store("pool", TEST_XPUB)

        # when more addresses are allocated than one refill holds, giving the worker time
        allocated = []
        for _ in range(POOL_SIZE + 200):
            await stores.reserve(store.id)
            allocated.append(stores.allocate_address(store, "ethereum"))
            if len(allocated) % 100 == 0:
                await asyncio.sleep(0.05)

        # then index i always carries the key's own child i, with no index skipped or reused
        key = parse_xpub(TEST_XPUB)
        assert [i for i, _ in allocated] == list(range(len(allocated)))
        assert all(address == key.address(i) for i, address in allocated)
    finally:
        await db.close()


async def test_a_batch_that_disagrees_with_the_key_is_discarded(tmp_path: Path) -> None:
    # given a store and a derived batch whose first address is not the key's
    db = Database(tmp_path / "pool.duckdb")
    db.migrate()
    stores = StoreService(db, SystemClock())
    try:
        store, _ = await stores.create_store("pool", TEST_XPUB)
        await stores.reserve(store.id)
        index, _ = stores.allocate_address(store, "ethereum")
        wrong: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        wrong.set_result([FIRST[0]] * 10)  # index 0's address offered for indexes 1-10

        # when it arrives as a refill
        stores._pools[store.id].clear()
        stores._refilled(store, index + 1, wrong)

        # then nothing of it is handed out: the next address is derived from the key itself
        assert stores._pools[store.id] == {}
        await stores.reserve(store.id)
        assert stores.allocate_address(store, "ethereum") == (1, FIRST[1])
    finally:
        await db.close()


PARENT = """
import sys, time
sys.path.insert(0, {root!r})
from indexer import deriver
deriver.submit({xpub!r}, 0, 1).result(timeout=60)
print(*deriver._pool._processes, flush=True)
time.sleep(600)
"""


def test_the_deriver_process_exits_when_its_gateway_is_killed() -> None:
    # given a process whose deriver worker is running
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(root=str(REPO_ROOT), xpub=TEST_XPUB)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        [worker] = [int(pid) for pid in parent.stdout.readline().split()]
        assert Path(f"/proc/{worker}").exists()

        # when that process is killed without a chance to clean up
        parent.send_signal(signal.SIGKILL)
        parent.wait()

        # then the worker notices and exits instead of lingering
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (init here) reaps it


async def test_prefill_derives_a_loaded_stores_addresses_before_its_first_invoice(
    tmp_path: Path,
) -> None:
    # given a store created earlier and loaded by a fresh service, as `serve` starts
    db = Database(tmp_path / "pool.duckdb")
    db.migrate()
    try:
        store, _ = await StoreService(db, SystemClock()).create_store("pool", TEST_XPUB)
        stores = StoreService(db, SystemClock())
        await db.read(stores.load)

        # when its pool is prefilled
        stores.prefill()
        for _ in range(600):
            if stores._pools[store.id]:
                break
            await asyncio.sleep(0.05)

        # then the first invoice pops index 0 from the pool, the key's own address
        assert len(stores._pools[store.id]) == POOL_SIZE
        await stores.reserve(store.id)
        assert stores.allocate_address(stores.stores[store.id], "ethereum") == (0, FIRST[0])
    finally:
        await db.close()
