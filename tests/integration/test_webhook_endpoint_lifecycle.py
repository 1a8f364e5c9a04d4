"""Endpoints over their life: rotation, test pings, subscriptions, disabling, redelivery, deletion."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from prometheus_client import REGISTRY

from indexer.domain.signing import verify_signature
from tests.support.gateway import eventually
from tests.support.receiver import Receiver
from tests.support.webhooks import HarnessFactory, WebhookHarness


async def settled(h: WebhookHarness) -> None:
    """Until fan-out has passed every committed event and no delivery is pending: from then on
    the dispatcher has nothing left to send, so what the receiver got is all it gets."""

    async def nothing_left() -> bool:
        [(passed, pending)] = await h.query(
            "SELECT (SELECT last_seq FROM outbox_cursor) >= (SELECT coalesce(max(seq), 0) "
            "FROM events), (SELECT count(*) FROM deliveries WHERE status = 'pending')"
        )
        return bool(passed) and pending == 0

    await eventually(nothing_left)


async def test_two_rotations_at_once_keep_both_new_secrets(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    # given an endpoint, and two rotations sent at the same time (one group commit)
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret"

    # when both are answered
    (s1, first), (s2, second) = await asyncio.gather(h.call("POST", path), h.call("POST", path))
    assert (s1, s2) == (200, 200)

    # then the later secret is current and the earlier one is the previous: neither is lost,
    # so deliveries verify with whichever secret the merchant kept
    [(secret, previous)] = await h.query(
        "SELECT secret, previous_secret FROM webhook_endpoints WHERE id = ?", [endpoint["id"]]
    )
    assert {secret, previous} == {first["secret"], second["secret"]}
    await h.insert_events(1)
    [request] = await receiver.wait_for_requests(1)
    header = request.headers["Chainpay-Signature"]
    assert verify_signature(request.body, header, first["secret"])
    assert verify_signature(request.body, header, second["secret"])


async def test_rotated_secret_signs_with_both_secrets_during_the_overlap(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)
    old = endpoint["secret"]

    status, rotated = await h.call("POST", f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert status == 200
    new = rotated["secret"]
    assert new != old and new.startswith("whsec_")
    await h.insert_events(1)

    [request] = await receiver.wait_for_requests(1)
    header = request.headers["Chainpay-Signature"]
    assert header.count("v1=") == 2
    assert verify_signature(request.body, header, new)
    assert verify_signature(request.body, header, old)
    assert not verify_signature(request.body, header, "whsec_someone_else")

    h.clock.advance(timedelta(hours=24, seconds=1))  # the overlap is over
    await h.insert_events(1)
    requests = await receiver.wait_for_requests(2)
    later = requests[1].headers["Chainpay-Signature"]
    assert later.count("v1=") == 1
    now = int(h.clock.now().timestamp())
    assert verify_signature(requests[1].body, later, new, now=now)
    assert not verify_signature(requests[1].body, later, old, now=now)
    _, shown = await h.call("GET", f"/v1/webhook-endpoints/{endpoint['id']}")
    assert "secret" not in shown


async def test_test_ping_goes_to_the_tested_endpoint_only(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    tested = await h.endpoint(receiver.url_for("/tested"))
    await h.endpoint(receiver.url_for("/other"))

    status, delivery = await h.call("POST", f"/v1/webhook-endpoints/{tested['id']}/test")

    assert status == 202
    assert delivery["event_type"] == "ping"
    [request] = await receiver.wait_for_requests(1)
    assert request.path == "/tested"
    ping = json.loads(request.body)
    assert ping["type"] == "ping"
    assert ping["data"]["webhook_endpoint"]["id"] == tested["id"]
    assert "secret" not in ping["data"]["webhook_endpoint"]
    await settled(h)  # the fan-out has passed the ping, which it must skip
    assert len(receiver.requests) == 1
    deliveries = await h.query(
        "SELECT endpoint_id FROM deliveries WHERE event_id = ?", [ping["id"]]
    )
    assert deliveries == [(tested["id"],)]
    _, events = await h.call("GET", "/v1/events?type=ping")
    assert [e["id"] for e in events["data"]] == [ping["id"]]


async def test_endpoint_receives_only_the_event_types_it_subscribed_to(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    await h.endpoint(receiver.url_for("/paid"), events=["invoice.paid"])
    await h.endpoint(receiver.url_for("/all"))

    await h.insert_events(1, type_="invoice.created")
    await h.insert_events(1, type_="invoice.paid")

    requests = await receiver.wait_for_requests(3)
    await settled(h)
    seen = sorted((r.path, json.loads(r.body)["type"]) for r in receiver.requests)
    assert seen == [
        ("/all", "invoice.created"),
        ("/all", "invoice.paid"),
        ("/paid", "invoice.paid"),
    ]
    assert len(requests) == 3


async def test_redelivery_sends_the_event_again_to_all_or_to_one_endpoint(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    first = await h.endpoint(receiver.url_for("/a"))
    await h.endpoint(receiver.url_for("/b"))
    [event_id] = await h.insert_events(1)
    await receiver.wait_for_requests(2)

    status, all_again = await h.call("POST", f"/v1/events/{event_id}/redeliver")
    assert status == 202
    assert len(all_again["data"]) == 2
    await receiver.wait_for_requests(4)

    status, one_again = await h.call(
        "POST", f"/v1/events/{event_id}/redeliver", {"endpoint_id": first["id"]}
    )
    assert status == 202
    [delivery] = one_again["data"]
    assert delivery["endpoint_id"] == first["id"]
    requests = await receiver.wait_for_requests(5)
    assert requests[-1].path == "/a"
    assert {r.headers["Chainpay-Event-Id"] for r in requests} == {event_id}

    async def three_deliveries_to_a() -> bool:
        rows = await h.deliveries(first["id"])
        return len(rows) == 3 and all(d["status"] == "delivered" for d in rows)

    await eventually(three_deliveries_to_a)


async def test_disabled_endpoint_keeps_pending_deliveries_and_resumes_when_enabled(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)
    receiver.respond_with(500)
    [event_id] = await h.insert_events(1)
    await receiver.wait_for_requests(1)

    status, disabled = await h.call(
        "PATCH", f"/v1/webhook-endpoints/{endpoint['id']}", {"status": "disabled"}
    )
    assert status == 200 and disabled["status"] == "disabled"
    await asyncio.sleep(0.3)
    sent_while_enabled = len(receiver.requests)
    await h.insert_events(1)  # no delivery is made for a disabled endpoint
    await asyncio.sleep(0.5)
    assert len(receiver.requests) <= sent_while_enabled + 1  # at most one already in flight
    [pending] = await h.deliveries(endpoint["id"])
    assert pending["status"] == "pending"

    receiver.respond_with(200)
    status, enabled = await h.call(
        "PATCH", f"/v1/webhook-endpoints/{endpoint['id']}", {"status": "enabled"}
    )
    assert status == 200 and enabled["status"] == "enabled"

    async def delivered() -> bool:
        return (await h.deliveries(endpoint["id"]))[0]["status"] == "delivered"

    await eventually(delivered)
    assert receiver.requests[-1].headers["Chainpay-Event-Id"] == event_id


async def test_endpoint_failing_for_three_days_is_disabled_with_an_event(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url, description="shop backend")
    receiver.respond_with(500)
    disabled_before = REGISTRY.get_sample_value("chainpay_webhook_endpoints_disabled_total")
    await h.insert_events(1)
    await receiver.wait_for_requests(1)

    h.clock.advance(timedelta(days=3, minutes=1))
    h.gateway.webhooks.notify()

    async def disabled() -> bool:
        _, shown = await h.call("GET", f"/v1/webhook-endpoints/{endpoint['id']}")
        return bool(shown["status"] == "disabled")

    await eventually(disabled)
    _, shown = await h.call("GET", f"/v1/webhook-endpoints/{endpoint['id']}")
    assert shown["disabled_reason"] == "failing for 3 days"
    _, events = await h.call("GET", "/v1/events?type=webhook_endpoint.disabled")
    [event] = events["data"]
    assert event["data"]["webhook_endpoint"]["id"] == endpoint["id"]
    assert event["data"]["webhook_endpoint"]["status"] == "disabled"
    after = REGISTRY.get_sample_value("chainpay_webhook_endpoints_disabled_total")
    assert after == (disabled_before or 0) + 1
    [delivery] = await h.deliveries(endpoint["id"])
    assert delivery["status"] == "pending"  # kept for when the merchant enables it again


async def test_deleting_an_endpoint_cancels_its_pending_deliveries(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    h = await webhook_harness()
    endpoint = await h.endpoint(receiver.url)
    receiver.respond_with(500)
    await h.insert_events(1)
    await receiver.wait_for_requests(1)

    status, deleted = await h.call("DELETE", f"/v1/webhook-endpoints/{endpoint['id']}")

    assert status == 200 and deleted == {
        "id": endpoint["id"],
        "object": "webhook_endpoint",
        "deleted": True,
    }
    status, _ = await h.call("GET", f"/v1/webhook-endpoints/{endpoint['id']}")
    assert status == 404
    await asyncio.sleep(0.3)
    count = len(receiver.requests)
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == count
    rows = await h.query("SELECT status FROM deliveries WHERE endpoint_id = ?", [endpoint["id"]])
    assert rows == [("cancelled",)]


async def test_an_endpoint_created_on_a_gateway_without_endpoints_gets_only_later_events(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    # given a gateway with no endpoint, whose fan-out has had events to pass over
    h = await webhook_harness()
    await h.insert_events(2)
    await settled(h)
    await h.insert_events(3)  # the cursor lags now (no endpoint): nothing can be delivered

    # when an endpoint is created and more events follow
    await h.endpoint(receiver.url)
    later = await h.insert_events(2)

    # then it receives exactly the later ones, once each
    await receiver.wait_for_requests(2)
    await settled(h)
    assert sorted(r.headers["Chainpay-Event-Id"] for r in receiver.requests) == sorted(later)
    assert await h.query("SELECT count(*) FROM deliveries") == [(2,)]
