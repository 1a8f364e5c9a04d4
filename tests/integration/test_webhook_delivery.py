"""The dispatcher against a real loopback receiver: delivered, retried, timed out, logged."""

from __future__ import annotations

import json

from indexer.domain.signing import verify_signature
from tests.support.gateway import eventually
from tests.support.receiver import Receiver
from tests.support.webhooks import HarnessFactory


async def test_invoice_event_is_delivered_with_a_verifiable_signature(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)

    invoice = await h.create_invoice()

    [request] = await receiver.wait_for_requests(1)
    event = json.loads(request.body)
    assert event["type"] == "invoice.created"
    assert event["data"]["invoice"]["id"] == invoice["id"]
    assert request.headers["Chainpay-Event-Id"] == event["id"]
    assert verify_signature(request.body, request.headers["Chainpay-Signature"], endpoint["secret"])
    stored = await h.query("SELECT payload::VARCHAR FROM events WHERE id = ?", [event["id"]])
    assert request.body == stored[0][0].encode()  # the stored bytes, exactly

    async def delivered() -> bool:
        return (await h.deliveries(endpoint["id"]))[0]["status"] == "delivered"

    await eventually(delivered)
    [delivery] = await h.deliveries(endpoint["id"])
    assert delivery["event_id"] == event["id"]
    assert delivery["attempt_count"] == 1
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["response_excerpt"] == "ok"


async def test_receiver_answering_500_then_200_is_retried_and_both_attempts_are_logged(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)
    receiver.respond_sequence(500)

    [event_id] = await h.insert_events(1)

    first, second = await receiver.wait_for_requests(2)
    assert first.body == second.body
    assert first.headers["Chainpay-Event-Id"] == second.headers["Chainpay-Event-Id"] == event_id

    async def delivered() -> bool:
        return (await h.deliveries(endpoint["id"]))[0]["status"] == "delivered"

    await eventually(delivered)
    [delivery] = await h.deliveries(endpoint["id"])
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    assert delivery["attempts"][0]["error"] == "http_status: 500"
    assert delivery["attempt_count"] == 2
    assert len(receiver.requests) == 2


async def test_receiver_down_then_up_gets_the_event(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)
    await receiver.down()

    [event_id] = await h.insert_events(1)

    async def refused_twice() -> bool:
        delivery = (await h.deliveries(endpoint["id"]) or [{}])[0]
        return len(delivery.get("attempts", [])) >= 2

    await eventually(refused_twice)
    await receiver.up()
    [request] = await receiver.wait_for_requests(1)
    assert request.headers["Chainpay-Event-Id"] == event_id

    async def delivered() -> bool:
        return (await h.deliveries(endpoint["id"]))[0]["status"] == "delivered"

    await eventually(delivered)
    [delivery] = await h.deliveries(endpoint["id"])
    errors = [a["error"] for a in delivery["attempts"]]
    assert errors[0] == "connection_refused"
    assert errors[-1] is None


async def test_receiver_slower_than_the_timeout_is_retried_as_a_timeout(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness(timeout=0.3)
    endpoint = await h.endpoint(receiver.url)
    receiver.respond_with(200, delay=1.0)

    await h.insert_events(1)

    async def timed_out() -> bool:
        delivery = (await h.deliveries(endpoint["id"]) or [{}])[0]
        return any(a["error"] == "timeout" for a in delivery.get("attempts", []))

    await eventually(timed_out)
    receiver.respond_with(200)

    async def delivered() -> bool:
        return (await h.deliveries(endpoint["id"]))[0]["status"] == "delivered"

    await eventually(delivered)
    [delivery] = await h.deliveries(endpoint["id"])
    timeouts = [a for a in delivery["attempts"] if a["error"] == "timeout"]
    assert timeouts and all(a["status_code"] is None for a in timeouts)
    assert all(250 <= a["latency_ms"] < 1000 for a in timeouts)


async def test_delivery_is_failed_after_the_last_attempt(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)
    receiver.respond_with(503)

    await h.insert_events(1)

    async def failed() -> bool:
        return ((await h.deliveries(endpoint["id"])) or [{}])[0].get("status") == "failed"

    await eventually(failed)
    [delivery] = await h.deliveries(endpoint["id"])
    assert delivery["attempt_count"] == 14
    assert len(delivery["attempts"]) == 14
    assert delivery["next_attempt_at"] is None
    assert len(receiver.requests) == 14


async def test_slow_endpoint_does_not_delay_the_others(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    slow = Receiver()
    await slow.up()
    try:
        h = await webhook_harness(timeout=5.0, concurrency=2)
        await h.endpoint(slow.url)
        await h.endpoint(receiver.url)
        slow.respond_with(200, delay=3.0)

        await h.insert_events(20)

        fast = await receiver.wait_for_requests(20, within=1.5)
        assert len(fast) == 20
        assert len(slow.requests) == 2  # its own concurrency limit, nothing more
    finally:
        await slow.down()
