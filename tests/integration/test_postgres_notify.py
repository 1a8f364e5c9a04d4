"""Two gateways on one PostgreSQL: a commit on one wakes the other through LISTEN/NOTIFY.

Gateway A runs the webhook dispatcher with a poll interval of an hour, so an event committed
through gateway B (another replica: its commits wake only its own process) can reach A's
dispatcher only through the notification. The same holds after PostgreSQL restarts: the
listener reconnects and keeps waking A. Settings (a store, a key) changed through B reach A's
caches without waiting for their periodic refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from api.bootstrap import Gateway
from indexer.services.invoices import NewInvoice
from indexer.services.webhooks import parse_new_endpoint
from indexer.workers.dispatcher import Dispatcher
from tests.support.gateway import eventually
from tests.support.postgres import PostgresCluster
from tests.support.receiver import Receiver
from tests.support.webhooks import webhook_settings, xpub_for_seed

HOUR = 3600.0  # a poll that never comes within a test
INVOICE = NewInvoice("ethereum", "USDT", 10_000_000, None, None, 900, None)


def woken(kind: str) -> float:
    """How often this process was woken by others' commits of `kind` (chainpay's metric)."""
    value = REGISTRY.get_sample_value("chainpay_db_remote_commits_total", {"kind": kind})
    return value or 0.0


@pytest.fixture
async def pair(tmp_path: Path, postgres_url: str) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Gateways A and B on one database; A has the store and an endpoint, B knows them."""
    gateways = []
    for name in ("a", "b"):
        gateway = Gateway(webhook_settings(tmp_path / f"{name}.duckdb", postgres_url))
        gateway.open()
        gateways.append(gateway)
    try:
        yield gateways[0], gateways[1]
    finally:
        for gateway in gateways:
            await gateway.close()


async def start_listening(gateway: Gateway) -> None:
    """Follow other processes' commits, and wait until the listener is connected."""
    before = woken("events")
    gateway.start_workers([gateway.db.follow_remote_commits])
    await eventually(lambda: _true(woken("events") > before), within=10)  # the connect wake-up


async def _true(value: bool) -> bool:
    return value


async def test_an_invoice_created_on_another_replica_wakes_the_leaders_dispatcher(
    pair: tuple[Gateway, Gateway], receiver: Receiver, postgres_cluster: PostgresCluster
) -> None:
    a, b = pair
    # given a store and an endpoint made through A, a dispatcher on A that polls once an hour
    store, _ = await a.stores.create_store("shop", xpub_for_seed(1))
    await a.webhooks.create(store.id, parse_new_endpoint({"url": receiver.url}, a.settings))
    await b.db.read(b.stores.refresh)
    dispatcher = Dispatcher(a.db, a.webhooks, a.settings, a.clock, poll_interval=HOUR)
    a.start_workers([dispatcher.run])
    await start_listening(a)
    # and past its first fan-out: an invoice made on A itself (A's commit wakes A) arrives
    await a.invoices.create(store, INVOICE, None, "test")
    await receiver.wait_for_requests(1, within=10)
    heard = woken("events")

    # when an invoice is created through B
    await b.invoices.create(b.stores.stores[store.id], INVOICE, None, "test")

    # then A's dispatcher delivers it without waiting for its poll: B's NOTIFY woke it
    await receiver.wait_for_requests(2, within=10)
    assert woken("events") > heard

    # when PostgreSQL restarts (every connection, the listener's too, is cut)
    reconnects = woken("settings")
    await asyncio.to_thread(postgres_cluster.restart)
    # then the listener reconnects (and wakes everyone once: notifications may have been lost)
    await eventually(lambda: _true(woken("settings") > reconnects), within=30)

    # and an invoice created through B afterwards still wakes A's dispatcher at once
    async def create_on_b() -> bool:
        try:
            await b.invoices.create(b.stores.stores[store.id], INVOICE, None, "test")
        except Exception:  # the pool may hand out a connection the restart cut: try again
            return False
        return True

    await eventually(create_on_b, within=30, every=0.5)
    await receiver.wait_for_requests(3, within=10)


async def test_a_store_created_on_another_replica_counts_there_before_its_refresh(
    pair: tuple[Gateway, Gateway],
) -> None:
    a, b = pair
    # given A refreshing its caches once an hour, but listening for other replicas' commits
    a.start_workers([partial(a.refresh_caches, every=HOUR)])
    await start_listening(a)

    # when B creates a store and its key
    store, key = await b.stores.create_store("elsewhere", xpub_for_seed(2))

    # then A authenticates the key at once: the store's NOTIFY refreshed A's cache
    async def known() -> bool:
        found = a.stores.authenticate(key.secret)
        return found is not None and found.id == store.id

    await eventually(known, within=10)

    # and a key revoked through B stops working on A just as soon
    await b.stores.revoke_key(key.key_id)

    async def refused() -> bool:
        return a.stores.authenticate(key.secret) is None

    await eventually(refused, within=10)
