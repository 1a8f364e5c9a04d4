"""/v1/webhook-endpoints: shapes, validation (every bad input a 4xx that stores nothing), isolation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.webhooks import HarnessFactory

URL = "http://127.0.0.1:9/hook"  # private targets are allowed in this harness


async def test_create_answers_the_endpoint_with_its_secret_once(
    webhook_harness: HarnessFactory,
) -> None:
    h = await webhook_harness(start=False)

    status, created = await h.call(
        "POST",
        "/v1/webhook-endpoints",
        {"url": URL, "events": ["invoice.paid"], "description": "orders"},
    )

    assert status == 201
    assert created["id"].startswith("we_")
    assert created["object"] == "webhook_endpoint"
    assert created["url"] == URL
    assert created["events"] == ["invoice.paid"]
    assert created["description"] == "orders"
    assert created["status"] == "enabled"
    assert created["secret"].startswith("whsec_")
    assert created["created_at"].endswith("Z")
    _, shown = await h.call("GET", f"/v1/webhook-endpoints/{created['id']}")
    assert "secret" not in shown
    assert shown["events"] == ["invoice.paid"]
    _, listed = await h.call("GET", "/v1/webhook-endpoints")
    assert all("secret" not in e for e in listed["data"])


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "url", "invalid_url"),
        ({"url": 5}, "url", "invalid_url"),
        ({"url": "ftp://example.com/x"}, "url", "invalid_url"),
        ({"url": "https://user:pw@example.com/"}, "url", "credentials_in_url"),
        ({"url": URL, "events": ["invoice.teleported"]}, "events", "unknown_event_type"),
        ({"url": URL, "events": ["ping"]}, "events", "unknown_event_type"),
        ({"url": URL, "events": []}, "events", "invalid_events"),
        ({"url": URL, "events": "invoice.paid"}, "events", "invalid_events"),
        ({"url": URL, "description": 7}, "description", "invalid_description"),
        ({"url": URL, "description": "x" * 501}, "description", "invalid_description"),
        ({"url": URL, "secret": "mine"}, "secret", "unknown_field"),
        ({"url": URL, "status": "disabled"}, "status", "unknown_field"),
    ],
    ids=[
        "no-url", "url-not-text", "ftp", "credentials", "unknown-type", "ping", "empty-events",
        "events-not-list", "description-not-text", "description-too-long", "secret-field",
        "status-on-create",
    ],
)  # fmt: skip
async def test_bad_create_is_a_400_naming_the_field_and_stores_nothing(
    webhook_harness: HarnessFactory, body: dict[str, Any], field: str, code: str
) -> None:
    h = await webhook_harness(start=False)

    status, answer = await h.call("POST", "/v1/webhook-endpoints", body)

    assert status == 400
    assert answer["error"]["code"] == code
    assert answer["error"]["field"] == field
    assert await h.query("SELECT count(*) FROM webhook_endpoints") == [(0,)]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ("not json", 400, "invalid_json"),
        ("[1, 2]", 400, "invalid_body"),
        ("", 400, "invalid_json"),
    ],
    ids=["not-json", "array", "empty"],
)
async def test_malformed_body_is_a_4xx(
    webhook_harness: HarnessFactory, raw: str, status: int, code: str
) -> None:
    h = await webhook_harness(start=False)

    got, answer = await h.call("POST", "/v1/webhook-endpoints", raw)

    assert got == status
    assert answer["error"]["code"] == code


async def test_patch_changes_only_the_given_fields_and_validates_them(
    webhook_harness: HarnessFactory,
) -> None:
    h = await webhook_harness(start=False)
    created = await h.endpoint(URL, description="before")
    path = f"/v1/webhook-endpoints/{created['id']}"

    status, changed = await h.call("PATCH", path, {"events": ["invoice.expired"]})
    assert status == 200
    assert changed["events"] == ["invoice.expired"]
    assert changed["description"] == "before"

    status, changed = await h.call("PATCH", path, {"events": None, "description": None})
    assert status == 200
    assert changed["events"] is None and changed["description"] is None

    for body, field in [
        ({"status": "paused"}, "status"),
        ({"url": "https://10.0.0.1:99999/"}, "url"),
        ({"secret": "x"}, "secret"),
    ]:
        status, answer = await h.call("PATCH", path, body)
        assert status == 400, body
        assert answer["error"]["field"] == field
    _, shown = await h.call("GET", path)
    assert shown["url"] == URL and shown["status"] == "enabled"


async def test_endpoints_are_listed_newest_first_in_pages(
    webhook_harness: HarnessFactory,
) -> None:
    h = await webhook_harness(start=False)
    ids = [(await h.endpoint(f"{URL}/{i}"))["id"] for i in range(5)]

    _, first = await h.call("GET", "/v1/webhook-endpoints?limit=2")
    _, second = await h.call(
        "GET", f"/v1/webhook-endpoints?limit=2&starting_after={first['data'][-1]['id']}"
    )
    _, third = await h.call(
        "GET", f"/v1/webhook-endpoints?limit=2&starting_after={second['data'][-1]['id']}"
    )

    assert first["object"] == "list"
    assert [e["id"] for e in first["data"] + second["data"] + third["data"]] == ids[::-1]
    assert (first["has_more"], second["has_more"], third["has_more"]) == (True, True, False)
    status, bad = await h.call("GET", "/v1/webhook-endpoints?starting_after=we_nope")
    assert status == 400 and bad["error"]["field"] == "starting_after"
    status, bad = await h.call("GET", "/v1/webhook-endpoints?limit=0")
    assert status == 400 and bad["error"]["field"] == "limit"


async def test_a_store_never_sees_or_touches_another_stores_endpoints(
    webhook_harness: HarnessFactory,
) -> None:
    h = await webhook_harness(start=False)
    other = await h.new_merchant()
    theirs = await h.endpoint(URL, merchant=other)
    one = f"/v1/webhook-endpoints/{theirs['id']}"

    for method, path, body in [
        ("GET", one, None),
        ("PATCH", one, {"description": "mine now"}),
        ("DELETE", one, None),
        ("POST", f"{one}/rotate-secret", None),
        ("POST", f"{one}/test", None),
        ("GET", f"{one}/deliveries", None),
    ]:
        status, answer = await h.call(method, path, body)
        assert status == 404, (method, path)
        assert answer["error"]["code"] == "not_found"
    _, listed = await h.call("GET", "/v1/webhook-endpoints")
    assert listed["data"] == []
    _, still = await h.call("GET", one, merchant=other)
    assert still["description"] is None and still["status"] == "enabled"


async def test_requests_without_a_valid_key_are_401(webhook_harness: HarnessFactory) -> None:
    h = await webhook_harness(start=False)

    response = await h.client.get("/v1/webhook-endpoints")
    assert response.status == 401
    response = await h.client.get("/v1/events", headers={"Authorization": "Bearer cpk_not_a_key"})
    assert response.status == 401


async def test_endpoint_paths_are_in_the_openapi_document(webhook_harness: HarnessFactory) -> None:
    h = await webhook_harness(start=False)

    document = await (await h.client.get("/openapi.json")).json()

    for path in [
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{endpoint_id}",
        "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        "/v1/webhook-endpoints/{endpoint_id}/test",
        "/v1/webhook-endpoints/{endpoint_id}/deliveries",
        "/v1/events",
        "/v1/events/{event_id}",
        "/v1/events/{event_id}/redeliver",
    ]:
        assert path in document["paths"], path
    assert "WebhookEndpoint" in document["components"]["schemas"]


async def test_a_cursor_from_another_store_or_nowhere_is_a_400_on_every_list(
    webhook_harness: HarnessFactory,
) -> None:
    # given another store with an endpoint, an event and a delivery of its own
    h = await webhook_harness(start=False)
    other = await h.new_merchant()
    theirs = await h.endpoint(URL, merchant=other)
    [event_id] = await h.insert_events(1, merchant=other)
    status, _ = await h.call("POST", f"/v1/webhook-endpoints/{theirs['id']}/test", merchant=other)
    assert status < 300
    status, log = await h.call(
        "GET", f"/v1/webhook-endpoints/{theirs['id']}/deliveries", merchant=other
    )
    assert status == 200 and log["data"], log
    mine = await h.endpoint(URL)

    # when this store pages its lists from those objects, or from ids that name nothing
    for path, noun, foreign in (
        ("/v1/webhook-endpoints", "an endpoint", theirs["id"]),
        ("/v1/events", "an event", event_id),
        (f"/v1/webhook-endpoints/{mine['id']}/deliveries", "a delivery", log["data"][0]["id"]),
    ):
        for cursor in (foreign, "nothing_here"):
            status, body = await h.call("GET", f"{path}?starting_after={cursor}")

            # then each answers 400 on the field, the same for both: nothing leaks
            assert status == 400, (path, body)
            assert body["error"] == {
                "code": "invalid_cursor",
                "message": f"starting_after is not {noun} of this store",
                "field": "starting_after",
            }
