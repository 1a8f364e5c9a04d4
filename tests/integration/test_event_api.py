"""/v1/events: the outbox as the merchant sees it — pages, filters, one event, redelivery input."""

from __future__ import annotations

from tests.support.webhooks import HarnessFactory


async def test_events_are_listed_newest_first_in_pages(webhook_harness: HarnessFactory) -> None:
    h = await webhook_harness(start=False)
    ids = await h.insert_events(5)

    _, first = await h.call("GET", "/v1/events?limit=2")
    _, second = await h.call("GET", f"/v1/events?limit=2&starting_after={first['data'][-1]['id']}")
    _, third = await h.call("GET", f"/v1/events?limit=2&starting_after={second['data'][-1]['id']}")

    assert first["object"] == "list"
    assert [e["id"] for e in first["data"] + second["data"] + third["data"]] == ids[::-1]
    assert (first["has_more"], second["has_more"], third["has_more"]) == (True, True, False)


async def test_events_filter_by_type_and_invoice(webhook_harness: HarnessFactory) -> None:
    h = await webhook_harness(start=False)
    invoice = await h.create_invoice()
    await h.create_invoice()
    [paid] = await h.insert_events(1, type_="invoice.paid")

    _, created = await h.call("GET", "/v1/events?type=invoice.created")
    _, for_invoice = await h.call("GET", f"/v1/events?invoice_id={invoice['id']}")
    _, paid_only = await h.call("GET", "/v1/events?type=invoice.paid")

    assert len(created["data"]) == 2
    assert [e["type"] for e in for_invoice["data"]] == ["invoice.created"]
    assert for_invoice["data"][0]["data"]["invoice"]["id"] == invoice["id"]
    assert [e["id"] for e in paid_only["data"]] == [paid]


async def test_one_event_is_its_exact_payload(webhook_harness: HarnessFactory) -> None:
    h = await webhook_harness(start=False)
    invoice = await h.create_invoice()
    _, listed = await h.call("GET", f"/v1/events?invoice_id={invoice['id']}")
    event_id = listed["data"][0]["id"]

    status, event = await h.call("GET", f"/v1/events/{event_id}")

    assert status == 200
    assert event["id"] == event_id
    assert event["type"] == "invoice.created"
    assert event["data"]["invoice"] == invoice


async def test_bad_event_queries_are_400_naming_the_parameter(
    webhook_harness: HarnessFactory,
) -> None:
    h = await webhook_harness(start=False)

    for query, field in [
        ("type=invoice.teleported", "type"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("starting_after=evt_unknown", "starting_after"),
    ]:
        status, answer = await h.call("GET", f"/v1/events?{query}")
        assert status == 400, query
        assert answer["error"]["field"] == field


async def test_a_store_never_sees_another_stores_events(webhook_harness: HarnessFactory) -> None:
    h = await webhook_harness(start=False)
    other = await h.new_merchant()
    [theirs] = await h.insert_events(1, merchant=other)
    [mine] = await h.insert_events(1)

    _, listed = await h.call("GET", "/v1/events")
    assert [e["id"] for e in listed["data"]] == [mine]
    for method, path in [
        ("GET", f"/v1/events/{theirs}"),
        ("GET", f"/v1/events/{theirs}/deliveries"),
        ("POST", f"/v1/events/{theirs}/redeliver"),
    ]:
        status, _ = await h.call(method, path)
        assert status == 404, path
    status, answer = await h.call("GET", f"/v1/events?starting_after={theirs}")
    assert status == 400 and answer["error"]["field"] == "starting_after"


async def test_redelivery_input_is_validated(webhook_harness: HarnessFactory) -> None:
    h = await webhook_harness(start=False)
    other = await h.new_merchant()
    theirs = await h.endpoint("http://127.0.0.1:9/x", merchant=other)
    [event_id] = await h.insert_events(1)
    path = f"/v1/events/{event_id}/redeliver"

    for body, field in [
        ({"endpoint_id": theirs["id"]}, "endpoint_id"),
        ({"endpoint_id": 3}, "endpoint_id"),
        ({"to": "everyone"}, "to"),
    ]:
        status, answer = await h.call("POST", path, body)
        assert status == 400, body
        assert answer["error"]["field"] == field
    assert await h.query("SELECT count(*) FROM deliveries") == [(0,)]
    status, none = await h.call("POST", path)  # no endpoints of mine: nothing to send
    assert status == 202 and none["data"] == []
