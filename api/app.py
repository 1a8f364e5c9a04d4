"""The aiohttp application: middlewares (errors, request ids, metrics, access log) and routes."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from aiohttp import web

from api import checkout, logs
from api.bootstrap import Gateway
from api.errors import Handler, error_middleware
from api.keys import GATEWAY, LOG_NOTE
from api.requests import MAX_BODY
from api.routes import events, invoices, store, system, webhooks
from indexer import metrics
from indexer.domain.ids import new_id

log = logging.getLogger("chainpay.access")
REQUEST_ID = web.RequestKey("request_id", str)
EXTRA_ROUTES: list[web.RouteTableDef] = []  # webhooks, events, checkout register here


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, latency histogram by route template (bounded labels), access log line."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or new_id("req")
    request[REQUEST_ID] = request_id
    logs.REQUEST_ID.set(request_id)  # this request's own task: lines it logs carry the id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:  # a streamed response has sent its headers already
            response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        method = request.method if request.method in _METHODS else "OTHER"
        count, seconds = _series(route, method, status)
        count.inc()
        seconds.observe(elapsed)
        if route != "/metrics":
            note, fields = request.get(LOG_NOTE, ("", {}))
            log.info(
                "%s %s %s %.1fms%s",
                request.method,
                route,
                status,
                elapsed * 1000,
                f" {note}" if note else "",
                extra={"request_id": request_id, "status": status, "route": route, **fields},
            )


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of one (route, method, status): looked up
    once, since route templates, methods and statuses are few."""
    return (
        metrics.API_REQUESTS.labels(route, method, str(status)),
        metrics.API_SECONDS.labels(route, method),
    )


def build_app(gateway: Gateway, api: bool = True) -> web.Application:
    """The HTTP app; with api=False only the operator endpoints (for `serve --no-api`)."""
    app = web.Application(
        middlewares=[observe_middleware, error_middleware], client_max_size=MAX_BODY
    )
    app[GATEWAY] = gateway
    tables = [system.routes]
    if api:
        tables += [store.routes, invoices.routes, checkout.routes, webhooks.routes, events.routes]
        tables += EXTRA_ROUTES
        checkout.setup_checkout(app)
    for table in tables:
        app.add_routes(table)
    return app
