"""Health probes at full speed while blocks with payments are processed (issue 10, item 1).

A load balancer polling /readyz made the block job's invoice lookup come back empty through a
shared DuckDB connection: payments were skipped with no error. Here probes hammer /readyz,
/healthz and /metrics from several clients while every block carries a payment; every payment
must be credited exactly once, the books checker must find nothing missing, and no probe may
answer 5xx but /readyz's documented 503.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from indexer.workers.invariants import BooksChecker
from tests.support.gateway import Chain, GatewayFactory

pytestmark = pytest.mark.anvil
PAYMENTS = 24


async def test_payments_are_all_credited_while_probes_hammer_the_gateway(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a gateway following the chain, and clients probing it back to back
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoices = [await gw.create_invoice("ethereum", "USDT", 10**6) for _ in range(PAYMENTS)]
    statuses: Counter[tuple[str, int]] = Counter()
    stop = asyncio.Event()

    async def probe(client: TestClient[Any, Any]) -> None:
        while not stop.is_set():
            for path in ("/readyz", "/healthz", "/readyz", "/metrics"):
                async with client.get(path) as reply:
                    await reply.read()
                    statuses[(path, reply.status)] += 1

    async with TestClient(TestServer(build_app(gw.gateway))) as client:
        probes = [asyncio.create_task(probe(client)) for _ in range(4)]
        try:
            # when each invoice is paid in a block of its own while the probes run
            for invoice in invoices:
                await asyncio.to_thread(chain.pay_usdt, invoice.address, 10**6)
                await asyncio.sleep(0.05)
            chain.anvil.mine(3)
            for invoice in invoices:
                await gw.wait_status(invoice.id, "paid", within=60)
        finally:
            stop.set()
            await asyncio.gather(*probes)

    # then every payment was credited exactly once
    for invoice in invoices:
        payments = await gw.payments(invoice.id)
        assert [p.amount for p in payments] == [10**6]
    # and no stored transfer to an issued address lacks its payment
    checker = BooksChecker(gw.gateway.db, ["ethereum"], gw.gateway.matcher.screen)
    assert await checker.check("ethereum") == []
    # and the probes answered all along: liveness always 200, readiness 200 or its 503
    assert sum(statuses.values()) > 100
    assert {s for (path, s) in statuses if path == "/healthz"} == {200}
    assert {s for (path, s) in statuses if path == "/metrics"} == {200}
    assert {s for (path, s) in statuses if path == "/readyz"} <= {200, 503}
