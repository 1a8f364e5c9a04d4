"""/v1/webhook-endpoints: register, list, change, delete, rotate the secret, test, delivery log."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import authenticated_store
from api.keys import GATEWAY
from api.openapi import Part, error_responses, json_body, ref
from api.requests import LIMIT, cursor, parse_json, read_body
from indexer.config import Settings
from indexer.services.webhooks import (
    EVENT_TYPES,
    MAX_DESCRIPTION,
    SUBSCRIBABLE,
    parse_new_endpoint,
)
from indexer.webhook.target import MAX_URL_LENGTH

routes = web.RouteTableDef()
_ONE = "/v1/webhook-endpoints/{endpoint_id}"
ENDPOINT_CURSOR = cursor("we_[0-9A-Za-z]{22}", "an endpoint")
DELIVERY_CURSOR = cursor("dlv_[0-9a-f]{32}", "a delivery")


@routes.post("/v1/webhook-endpoints")
async def create_endpoint(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    payload = parse_json(request, await read_body(request))
    gateway = request.app[GATEWAY]
    view = await gateway.webhooks.create(store.id, parse_new_endpoint(payload, gateway.settings))
    return web.json_response(view, status=201)


@routes.get("/v1/webhook-endpoints")
async def list_endpoints(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    items, has_more = request.app[GATEWAY].webhooks.list_endpoints(
        store.id, LIMIT.parse(request), ENDPOINT_CURSOR.parse(request)
    )
    return web.json_response({"object": "list", "data": items, "has_more": has_more})


@routes.get(_ONE)
async def get_endpoint(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    view = request.app[GATEWAY].webhooks.get(store.id, request.match_info["endpoint_id"])
    return web.json_response(view)


@routes.patch(_ONE)
async def update_endpoint(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    payload = parse_json(request, await read_body(request))
    view = await request.app[GATEWAY].webhooks.update(
        store.id, request.match_info["endpoint_id"], payload
    )
    return web.json_response(view)


@routes.delete(_ONE)
async def delete_endpoint(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    view = await request.app[GATEWAY].webhooks.delete(store.id, request.match_info["endpoint_id"])
    return web.json_response(view)


@routes.post(_ONE + "/rotate-secret")
async def rotate_secret(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    view = await request.app[GATEWAY].webhooks.rotate_secret(
        store.id, request.match_info["endpoint_id"]
    )
    return web.json_response(view)


@routes.post(_ONE + "/test")
async def test_endpoint(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    view = await request.app[GATEWAY].webhooks.send_test(
        store.id, request.match_info["endpoint_id"]
    )
    return web.json_response(view, status=202)


@routes.get(_ONE + "/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    webhooks = request.app[GATEWAY].webhooks
    endpoint_id = request.match_info["endpoint_id"]
    webhooks.owned(store.id, endpoint_id)
    items, has_more = await webhooks.deliveries(
        store.id,
        LIMIT.parse(request),
        DELIVERY_CURSOR.parse(request),
        endpoint_id=endpoint_id,
    )
    return web.json_response({"object": "list", "data": items, "has_more": has_more})


# --- OpenAPI -------------------------------------------------------------------------------
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_EVENTS = {
    "type": ["array", "null"],
    "items": ref("SubscribableEventType"),
    "minItems": 1,
    "description": "Event types to receive; null or absent for all",
}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def url_schema(settings: Settings) -> dict[str, Any]:
    """A shape of webhook URL that validate_url always accepts: a public-looking DNS name,
    https unless `[webhooks] allow_private_targets`. The server also accepts more (public IP
    literals, ports, other TLDs); it refuses private, loopback and metadata hosts."""
    scheme = "https?" if settings.webhooks.allow_private_targets else "https"
    label = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    pattern = (
        f"^{scheme}://(?:{label}\\.){{1,4}}(?:com|net|org|io|dev|app|shop)"
        "(?:/[A-Za-z0-9._~/-]{0,200})?$"
    )
    return {"type": "string", "format": "uri", "pattern": pattern, "maxLength": MAX_URL_LENGTH}


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": ref(name)},
            "has_more": {"type": "boolean"},
        },
    }


def _schemas(settings: Settings) -> dict[str, Any]:
    url = url_schema(settings)
    description = {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION}
    return {
        "WebhookEventType": {"enum": list(EVENT_TYPES)},
        "SubscribableEventType": {"enum": list(SUBSCRIBABLE)},
        "WebhookEndpointCreate": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {
                "url": url,
                "events": _EVENTS,
                "description": description,
            },
        },
        "WebhookEndpointUpdate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "url": url,
                "events": _EVENTS,
                "description": description,
                "status": {"enum": ["enabled", "disabled"]},
            },
        },
        "WebhookEndpoint": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "example": "we_4ZbQ…"},
                "object": {"const": "webhook_endpoint"},
                "url": {"type": "string"},
                "description": {"type": ["string", "null"]},
                "events": {"type": ["array", "null"], "items": ref("SubscribableEventType")},
                "status": {"enum": ["enabled", "disabled"]},
                "disabled_reason": {"type": ["string", "null"]},
                "previous_secret_expires_at": _NULLABLE_TIME,
                "created_at": _TIME,
                "updated_at": _TIME,
                "secret": {
                    "type": "string",
                    "description": "whsec_…; only in the answers to create and rotate-secret",
                },
            },
        },
        "WebhookEndpointList": _list_of("WebhookEndpoint"),
        "DeliveryAttempt": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "attempted_at": _TIME,
                "status_code": {"type": ["integer", "null"]},
                "latency_ms": {"type": "integer"},
                "error": {"type": ["string", "null"]},
                "response_excerpt": {"type": ["string", "null"], "maxLength": 4096},
            },
        },
        "Delivery": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "delivery"},
                "event_id": {"type": "string"},
                "event_type": ref("WebhookEventType"),
                "endpoint_id": {
                    "type": "string",
                    "description": "we_…, or `hook` for the in-process on_event hook",
                },
                "status": {"enum": ["pending", "delivered", "failed", "cancelled"]},
                "attempt_count": {"type": "integer"},
                "next_attempt_at": _NULLABLE_TIME,
                "last_attempt_at": _NULLABLE_TIME,
                "delivered_at": _NULLABLE_TIME,
                "created_at": _TIME,
                "attempts": {"type": "array", "items": ref("DeliveryAttempt")},
            },
        },
        "DeliveryList": _list_of("Delivery"),
    }


def _endpoint_paths() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"apiKey": []}]
    one = [_path_param("endpoint_id")]
    return {
        "/v1/webhook-endpoints": {
            "post": {
                "summary": "Register a webhook endpoint (the answer holds its signing secret)",
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("WebhookEndpointCreate")}},
                },
                "responses": {
                    "201": json_body(ref("WebhookEndpoint"), "Created; `secret` shown only now"),
                    **error_responses(400, 401, 409, 413, 415),
                },
            },
            "get": {
                "summary": "List webhook endpoints, newest first",
                "security": secured,
                "parameters": [LIMIT.openapi(), ENDPOINT_CURSOR.openapi()],
                "responses": {
                    "200": json_body(ref("WebhookEndpointList")),
                    **error_responses(400, 401),
                },
            },
        },
        _ONE: {
            "get": {
                "summary": "Retrieve a webhook endpoint",
                "security": secured,
                "parameters": one,
                "responses": {
                    "200": json_body(ref("WebhookEndpoint")),
                    **error_responses(401, 404),
                },
            },
            "patch": {
                "summary": "Change url, events, description, or enable/disable",
                "security": secured,
                "parameters": one,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("WebhookEndpointUpdate")}},
                },
                "responses": {
                    "200": json_body(ref("WebhookEndpoint")),
                    **error_responses(400, 401, 404, 413, 415),
                },
            },
            "delete": {
                "summary": "Delete an endpoint; its pending deliveries are cancelled",
                "security": secured,
                "parameters": one,
                "responses": {
                    "200": {"description": "Deleted"},
                    **error_responses(401, 404),
                },
            },
        },
        _ONE + "/rotate-secret": {
            "post": {
                "summary": "New signing secret; the old one also signs for 24 hours",
                "security": secured,
                "parameters": one,
                "responses": {
                    "200": json_body(ref("WebhookEndpoint")),
                    **error_responses(401, 404),
                },
            }
        },
        _ONE + "/test": {
            "post": {
                "summary": "Send a `ping` event to this endpoint only",
                "security": secured,
                "parameters": one,
                "responses": {
                    "202": json_body(ref("Delivery"), "Queued"),
                    **error_responses(401, 404, 409),
                },
            }
        },
        _ONE + "/deliveries": {
            "get": {
                "summary": "The endpoint's delivery log, newest first, with every attempt",
                "security": secured,
                "parameters": [*one, LIMIT.openapi(), DELIVERY_CURSOR.openapi()],
                "responses": {
                    "200": json_body(ref("DeliveryList")),
                    **error_responses(400, 401, 404),
                },
            }
        },
    }


def openapi_part(settings: Settings) -> Part:
    """This module's paths and schemas for the OpenAPI document (`build_app` passes it)."""
    return _endpoint_paths(), _schemas(settings)
