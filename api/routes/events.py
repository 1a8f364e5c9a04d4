"""/v1/events: the store's event log (the outbox), one event, its deliveries, redelivery."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import authenticated_store
from api.keys import GATEWAY
from api.openapi import Part, error_responses, json_body, ref
from api.requests import LIMIT, QueryText, cursor, parse_json, read_body
from api.routes.webhooks import DELIVERY_CURSOR
from indexer.config import Settings
from indexer.services.webhooks import EVENT_TYPES

routes = web.RouteTableDef()
TYPE = QueryText("type", EVENT_TYPES)
INVOICE_ID = QueryText("invoice_id", description="Only events of this invoice")
EVENT_CURSOR = cursor("evt_[0-9A-Za-z]{22}", "an event")


@routes.get("/v1/events")
async def list_events(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    items, has_more = await request.app[GATEWAY].events.list(
        store.id,
        limit=LIMIT.parse(request),
        type_=TYPE.parse(request),
        invoice_id=INVOICE_ID.parse(request),
        starting_after=EVENT_CURSOR.parse(request),
    )
    return web.json_response({"object": "list", "data": items, "has_more": has_more})


@routes.get("/v1/events/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    event = await request.app[GATEWAY].events.get(store.id, request.match_info["event_id"])
    return web.json_response(event)


@routes.get("/v1/events/{event_id}/deliveries")
async def event_deliveries(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    webhooks = request.app[GATEWAY].webhooks
    event_id = request.match_info["event_id"]
    await request.app[GATEWAY].events.event(store.id, event_id)  # 404: another store's event
    items, has_more = await webhooks.deliveries(
        store.id, LIMIT.parse(request), DELIVERY_CURSOR.parse(request), event_id=event_id
    )
    return web.json_response({"object": "list", "data": items, "has_more": has_more})


@routes.post("/v1/events/{event_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    body = await read_body(request)
    payload = parse_json(request, body) if body.strip() else {}
    gateway = request.app[GATEWAY]
    event = await gateway.events.event(store.id, request.match_info["event_id"])
    items = await gateway.webhooks.redeliver(store.id, event, payload)
    return web.json_response({"object": "list", "data": items, "has_more": False}, status=202)


# --- OpenAPI -------------------------------------------------------------------------------
def _event_paths() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"apiKey": []}]
    one = [{"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    event = {
        "type": "object",
        "description": "Exactly the JSON body endpoints receive",
        "properties": {
            "id": {"type": "string", "example": "evt_4ZbQ…"},
            "object": {"const": "event"},
            "type": ref("WebhookEventType"),
            "created_at": {"type": "string", "format": "date-time"},
            "data": {"type": "object"},
        },
    }
    events_list = {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": event},
            "has_more": {"type": "boolean"},
        },
    }
    return {
        "/v1/events": {
            "get": {
                "summary": "List events, newest first",
                "security": secured,
                "parameters": [
                    LIMIT.openapi(),
                    EVENT_CURSOR.openapi(),
                    TYPE.openapi(),
                    INVOICE_ID.openapi(),
                ],
                "responses": {"200": json_body(events_list), **error_responses(400, 401)},
            }
        },
        "/v1/events/{event_id}": {
            "get": {
                "summary": "Retrieve an event",
                "security": secured,
                "parameters": one,
                "responses": {"200": json_body(event), **error_responses(401, 404)},
            }
        },
        "/v1/events/{event_id}/deliveries": {
            "get": {
                "summary": "Deliveries of one event (endpoints and the on_event hook)",
                "security": secured,
                "parameters": [*one, LIMIT.openapi(), DELIVERY_CURSOR.openapi()],
                "responses": {
                    "200": json_body(ref("DeliveryList")),
                    **error_responses(400, 401, 404),
                },
            }
        },
        "/v1/events/{event_id}/redeliver": {
            "post": {
                "summary": "Send the event again: to every subscribed endpoint, or to one",
                "security": secured,
                "parameters": one,
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "endpoint_id": {
                                        "type": ["string", "null"],
                                        "description": "we_…; null or absent for every "
                                        "subscribed endpoint",
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": json_body(ref("DeliveryList"), "New deliveries, queued"),
                    **error_responses(400, 401, 404, 409, 413, 415),
                },
            }
        },
    }


def openapi_part(settings: Settings) -> Part:
    """This module's paths and schemas for the OpenAPI document (`build_app` passes it)."""
    return _event_paths(), {}
