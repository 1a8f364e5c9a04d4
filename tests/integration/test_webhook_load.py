"""1,000 events to 50 endpoints: every (event, endpoint) pair arrives exactly once when healthy."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.gateway import eventually
from tests.support.receiver import Receiver
from tests.support.webhooks import HarnessFactory

EVENTS = 1000
ENDPOINTS = 50


@pytest.mark.slow
async def test_thousand_events_to_fifty_endpoints_none_lost_none_duplicated(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness(timeout=10.0)
    endpoints = [await h.endpoint(receiver.url_for(f"/e{i}")) for i in range(ENDPOINTS)]

    event_ids: list[str] = []
    for _ in range(EVENTS // 100):  # committed like blocks: 100 events a transaction
        event_ids += await h.insert_events(100)

    async def all_arrived() -> bool:
        return len(receiver.requests) >= EVENTS * ENDPOINTS

    await eventually(all_arrived, within=90.0, every=0.25)

    async def all_recorded() -> bool:
        rows = await h.query("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
        return rows[0][0] == EVENTS * ENDPOINTS

    await eventually(all_recorded, within=30.0)
    seen = Counter((r.path, r.headers["Chainpay-Event-Id"]) for r in receiver.requests)
    expected = {(f"/e{i}", e) for i in range(ENDPOINTS) for e in event_ids}
    assert set(seen) == expected
    assert max(seen.values()) == 1
    attempts = await h.query("SELECT count(*) FROM delivery_attempts")
    assert attempts == [(EVENTS * ENDPOINTS,)]
    assert len(endpoints) == ENDPOINTS
