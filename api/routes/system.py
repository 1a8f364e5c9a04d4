"""Operator endpoints: /healthz (alive), /readyz (store and chains), /metrics, /openapi.json."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.keys import GATEWAY
from api.openapi import OPENAPI_PARTS, openapi_document

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive: 503 only when a restart may help (a dead writer or worker, a database that
    stays invalidated); a slow or full disk and a node outage are /readyz's to report."""
    ok, detail = request.app[GATEWAY].alive()
    if ok:
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "dead", "detail": detail}, status=503)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    store_ok, detail = gateway.ready()
    chains_ok, not_ready = gateway.networks_ready()  # per network: docs/operations.md#readiness
    ok = store_ok and chains_ok
    networks = {name: s.as_json() for name, s in gateway.network_status.items()}
    body: dict[str, object] = {
        "status": "ok" if ok else "unavailable",
        "store": detail,
        "networks": networks,
        "behind": not_ready,
    }
    if not networks:
        body["reason"] = "no networks configured: chainpay watches no chain"
    return web.json_response(body, status=200 if ok else 503)


@routes.get("/metrics")
async def metrics_endpoint(request: web.Request) -> web.Response:
    data = generate_latest(REGISTRY)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response(openapi_document(app[GATEWAY].settings, app[OPENAPI_PARTS]))
