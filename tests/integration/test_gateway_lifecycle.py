"""Stopping the gateway: bounded even when a worker will not stop."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from api.bootstrap import Gateway
from indexer.store.errors import StoreError


async def test_close_is_bounded_when_a_worker_swallows_its_cancellation(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    # given a worker that ignores cancellation (as asyncio.wait_for could make one on 3.11)
    released = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if released.is_set():
                    raise

    gateway.start_workers([stubborn])
    task = gateway._tasks[0]
    await asyncio.sleep(0)

    # when the gateway closes with a short grace
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await gateway.close(grace=0.3)

    # then it returns, says where the worker is stuck, and the store is closed
    assert time.monotonic() - started < 5
    stuck = [r.getMessage() for r in caplog.records if "did not stop" in r.getMessage()]
    assert stuck and "stubborn" in stuck[0]
    with pytest.raises(StoreError, match="closed"):
        await gateway.db.write(lambda c: None)

    released.set()  # let the test's event loop end
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.duckdb_only
async def test_the_store_runs_duckdb_with_the_configured_threads(gateway: Gateway) -> None:
    # the default of one worker thread: on two cores the writer should not wait for a core
    assert gateway.settings.duckdb_threads == 1
    threads = await gateway.db.read_sql(
        lambda c: c.execute("SELECT current_setting('threads')").fetchone()
    )
    assert threads == (1,)
