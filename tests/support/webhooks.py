"""A real Gateway with the webhook API and dispatcher running in-process, on a temporary DuckDB.

`webhook_harness(...)` opens a Gateway (private targets allowed unless told otherwise, so the
loopback receiver is reachable), serves its API through aiohttp's TestServer, creates a store
with an API key and starts the dispatcher with a fast retry schedule (no real waits of the
production schedule). Everything is closed after the test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from bip_utils import Bip32Secp256k1

from api.app import build_app
from api.bootstrap import Gateway
from indexer.config import Settings, WebhookSettings
from indexer.domain.ids import new_id
from indexer.domain.network import Asset, Network
from indexer.domain.retry import MAX_ATTEMPTS
from indexer.services.invoices import NewInvoice
from indexer.services.stores import Store
from indexer.store.rows import EventRow
from indexer.workers.dispatcher import Dispatcher, RetryDelay
from indexer.workers.hook import load_hook
from tests.support.postgres import Backend

FAST_RETRY = timedelta(milliseconds=50)


def fast_retry(attempt_number: int) -> timedelta | None:
    """The production number of attempts, 50 ms apart."""
    return FAST_RETRY if attempt_number < MAX_ATTEMPTS else None


def xpub_for_seed(seed: int) -> str:
    """A distinct account xpub per seed (public test keys, never for funds)."""
    root = Bip32Secp256k1.FromSeed(seed.to_bytes(4, "big") * 8)
    return str(root.DerivePath("m/44'/60'/0'").PublicKey().ToExtended())


class OffsetClock:
    """UTC wall clock plus an offset a test can move forward (days, without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def webhook_settings(
    database: Path,
    postgres_url: str | None = None,
    allow_private: bool = True,
    timeout: float = 1.0,
    concurrency: int = 4,
    hook: str | None = None,
) -> Settings:
    network = Network(
        name="ethereum",
        chain_id=1,
        rpc_url="ws://127.0.0.1:9",  # never contacted: no chain tail runs here
        confirmations=12,
        native=Asset("ETH", 18),
        tokens=(Asset("USDT", 6, "0xdAC17F958D2ee523a2206206994597C13D831ec7"),),
    )
    return Settings(
        source=str(database.with_suffix(".toml")),
        database=database,
        postgres_url=postgres_url,
        public_url="https://pay.example.com",
        networks={"ethereum": network},
        webhooks=WebhookSettings(
            allow_private_targets=allow_private,
            timeout_seconds=timeout,
            max_concurrency_per_endpoint=concurrency,
        ),
        on_event_hook=hook,
    )


@dataclass
class Merchant:
    store: Store
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class WebhookHarness:
    gateway: Gateway
    client: TestClient[Any, Any]
    merchant: Merchant
    clock: OffsetClock
    dispatcher: Dispatcher | None = None
    _seeds: list[int] = field(default_factory=lambda: [100])

    # -- setup ----------------------------------------------------------------------------
    def start_dispatcher(
        self, retry_delay: RetryDelay = fast_retry, poll_interval: float = 0.05
    ) -> Dispatcher:
        g = self.gateway
        hook = load_hook(g.settings.on_event_hook)
        self.dispatcher = Dispatcher(
            g.db, g.webhooks, g.settings, g.clock, hook, retry_delay, poll_interval
        )
        g.start_workers([self.dispatcher.run])
        return self.dispatcher

    async def new_merchant(self, name: str = "other") -> Merchant:
        self._seeds[0] += 1
        store, key = await self.gateway.stores.create_store(name, xpub_for_seed(self._seeds[0]))
        return Merchant(store, key.secret)

    # -- API ----------------------------------------------------------------------------------
    async def call(
        self, method: str, path: str, body: Any = None, merchant: Merchant | None = None
    ) -> tuple[int, Any]:
        headers = dict((merchant or self.merchant).headers)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = body if isinstance(body, str | bytes) else json.dumps(body)
        response = await self.client.request(method, path, data=data, headers=headers)
        return response.status, await response.json()

    async def endpoint(self, url: str, merchant: Merchant | None = None, **fields: Any) -> Any:
        status, body = await self.call(
            "POST", "/v1/webhook-endpoints", {"url": url, **fields}, merchant
        )
        assert status == 201, body
        return body

    async def deliveries(self, endpoint_id: str) -> list[dict[str, Any]]:
        status, body = await self.call(
            "GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=100"
        )
        assert status == 200, body
        return list(body["data"])

    # -- events -----------------------------------------------------------------------------
    async def create_invoice(self, merchant: Merchant | None = None) -> dict[str, Any]:
        """An invoice through the invoice service: commits its `invoice.created` event."""
        command = NewInvoice("ethereum", "USDT", 10_000_000, None, None, 900, None)
        reply = await self.gateway.invoices.create(
            (merchant or self.merchant).store, command, None, "test"
        )
        return reply.body

    async def insert_events(
        self, count: int, type_: str = "invoice.paid", merchant: Merchant | None = None
    ) -> list[str]:
        """`count` outbox events in one transaction, as the indexer commits a block."""
        store_id = (merchant or self.merchant).store.id
        now = self.gateway.clock.now()
        rows = []
        for i in range(count):
            event_id = new_id("evt")
            payload = {"id": event_id, "object": "event", "type": type_, "n": i, "data": {}}
            rows.append(EventRow(event_id, store_id, type_, None, json.dumps(payload), now))
        await self.gateway.db.write(lambda uow: uow.events.insert_events(rows), kind="test")
        self.gateway.webhooks.notify()
        return [r.id for r in rows]

    async def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return await self.gateway.db.read_sql(lambda c: c.execute(sql, params or []).fetchall())


HarnessFactory = Callable[..., Awaitable[WebhookHarness]]


@pytest.fixture
async def webhook_harness(tmp_path: Path, backend: Backend) -> AsyncIterator[HarnessFactory]:
    """`await webhook_harness(allow_private=..., hook=..., start=True)`."""
    opened: list[tuple[Gateway, TestClient[Any, Any]]] = []

    async def make(start: bool = True, **options: Any) -> WebhookHarness:
        clock = OffsetClock()
        path = tmp_path / f"gw{len(opened)}.duckdb"
        settings = webhook_settings(path, backend.url_for(path), **options)
        gateway = Gateway(settings, clock=clock)
        gateway.open()
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(gateway)))
        await client.start_server()
        opened.append((gateway, client))
        store, key = await gateway.stores.create_store("shop", xpub_for_seed(1))
        harness = WebhookHarness(gateway, client, Merchant(store, key.secret), clock)
        if start:
            harness.start_dispatcher()
        return harness

    yield make
    for gateway, client in opened:
        await client.close()
        await gateway.close()
