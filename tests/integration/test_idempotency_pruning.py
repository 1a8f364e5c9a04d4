"""Idempotency-Keys are forgotten once older than the window: from the table and from memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from api.bootstrap import Gateway
from indexer.config import load_settings
from indexer.domain.clock import FrozenClock
from indexer.services.invoices import IDEMPOTENCY_WINDOW
from indexer.workers.pruner import IdempotencyPruner
from tests.support.api import Merchant, make_merchant

Client = TestClient[Any, Any]
ORDER = {"network": "ethereum", "asset": "USDT", "amount": "12.50"}
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = IDEMPOTENCY_WINDOW.total_seconds()


@pytest_asyncio.fixture
async def frozen(config_path: Path) -> AsyncIterator[tuple[Gateway, FrozenClock]]:
    clock = FrozenClock(START)
    gateway = Gateway(load_settings(config_path, env={}), clock=clock)
    gateway.open()
    yield gateway, clock
    await gateway.close()


async def create(client: Client, merchant: Merchant, key: str) -> dict[str, Any]:
    headers = {**merchant.headers, "Idempotency-Key": key}
    response = await client.post("/v1/invoices", json=ORDER, headers=headers)
    assert response.status == 201, await response.text()
    return {"replayed": response.headers.get("Idempotent-Replayed") == "true"} | (
        await response.json()
    )


async def keys_in_table(gateway: Gateway) -> list[str]:
    rows = await gateway.db.read_sql(
        lambda c: c.execute("SELECT key FROM idempotency_keys ORDER BY key").fetchall()
    )
    return [r[0] for r in rows]


async def test_a_key_older_than_the_window_is_forgotten_and_a_younger_one_replays(
    frozen: tuple[Gateway, FrozenClock],
) -> None:
    gateway, clock = frozen
    merchant = await make_merchant(gateway)
    async with TestClient(TestServer(build_app(gateway))) as client:
        old = await create(client, merchant, "old")
        clock.advance(3600)
        young = await create(client, merchant, "young")
        clock.advance(WINDOW - 3600 + 1)  # "old" is a second past the window, "young" is not

        pruned = await IdempotencyPruner(gateway.invoices).tick()
        old_again = await create(client, merchant, "old")
        young_again = await create(client, merchant, "young")

    assert pruned == 1
    assert not old_again["replayed"] and old_again["id"] != old["id"]  # a new invoice
    assert young_again["replayed"] and young_again["id"] == young["id"]
    assert await keys_in_table(gateway) == ["old", "young"]  # the new "old" row, the kept "young"


async def test_a_key_exactly_window_old_is_still_kept(
    frozen: tuple[Gateway, FrozenClock],
) -> None:
    gateway, clock = frozen
    merchant = await make_merchant(gateway)
    async with TestClient(TestServer(build_app(gateway))) as client:
        first = await create(client, merchant, "k")
        clock.advance(WINDOW)
        assert await IdempotencyPruner(gateway.invoices).tick() == 0
        again = await create(client, merchant, "k")
    assert again["replayed"] and again["id"] == first["id"]


async def test_a_backlog_is_pruned_in_bounded_batches_from_table_and_memory(
    frozen: tuple[Gateway, FrozenClock],
) -> None:
    gateway, clock = frozen
    merchant = await make_merchant(gateway)
    async with TestClient(TestServer(build_app(gateway))) as client:
        for i in range(7):
            await create(client, merchant, f"k{i}")
        clock.advance(WINDOW + 1)
        await create(client, merchant, "fresh")
        batches: list[int] = []
        prune = gateway.invoices.prune_idempotency

        async def counted(limit: int) -> int:
            batches.append(await prune(limit))
            return batches[-1]

        gateway.invoices.prune_idempotency = counted  # type: ignore[method-assign]
        pruned = await IdempotencyPruner(gateway.invoices, batch=3).tick()

    assert pruned == 7 and batches == [3, 3, 1]
    assert await keys_in_table(gateway) == ["fresh"]
    assert gateway.invoices.idempotency_keys_held() == 1


async def test_an_expired_key_left_in_the_table_replays_after_a_restart_until_pruned(
    config_path: Path,
) -> None:
    clock = FrozenClock(START)
    first = Gateway(load_settings(config_path, env={}), clock=clock)
    first.open()
    merchant = await make_merchant(first)
    async with TestClient(TestServer(build_app(first))) as client:
        before = await create(client, merchant, "r")
    await first.close()
    clock.advance(WINDOW + 60)  # down past the window: nothing pruned the row

    second = Gateway(load_settings(config_path, env={}), clock=clock)
    second.open()
    try:
        async with TestClient(TestServer(build_app(second))) as client:
            replay = await create(client, merchant, "r")  # not a duplicate-key failure
            await IdempotencyPruner(second.invoices).tick()
            fresh = await create(client, merchant, "r")
    finally:
        await second.close()
    assert replay["replayed"] and replay["id"] == before["id"]
    assert not fresh["replayed"] and fresh["id"] != before["id"]
