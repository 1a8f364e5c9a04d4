"""The aiohttp application: middlewares (errors, request ids, metrics, access log) and routes."""

from __future__ import annotations

import functools
import logging
import re
import time
from typing import Any

from aiohttp import http_exceptions, web

from api import checkout, logs
from api.auth import auth_middleware
from api.bootstrap import Gateway
from api.errors import HTTP_CODES, Handler, error_middleware, error_response
from api.keys import GATEWAY, LOG_NOTE
from api.openapi import OPENAPI_PARTS
from api.requests import MAX_BODY
from api.routes import events, invoices, store, system, webhooks
from indexer import metrics
from indexer.domain.ids import new_id

log = logging.getLogger("chainpay.access")
REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, latency histogram by route template (bounded labels), access log line."""
    given = request.headers.get("X-Request-Id", "")[:64]
    request_id = given if _REQUEST_ID.fullmatch(given) else new_id("req")
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


_REQUEST_ID = re.compile(r"[!-~]{1,64}")  # printable ASCII: it goes into logs and a header
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of one (route, method, status): looked up
    once, since route templates, methods and statuses are few."""
    return (
        metrics.API_REQUESTS.labels(route, method, str(status)),
        metrics.API_SECONDS.labels(route, method),
    )


class _JsonErrorHandler(web.RequestHandler):
    """Answers what aiohttp's own HTTP parser refuses (a header over 8 KB, Content-Length with
    Transfer-Encoding, a bad request line) in the API's JSON error shape.

    Those requests never reach a middleware or the request factory's handler: aiohttp's
    protocol builds the answer in `handle_error`, as text/plain. This keeps its logging and
    its checks and replaces only the body.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if already sent
        if status >= 500:
            response = error_response(
                status, "internal_error", "internal error; it has been logged"
            )
        else:  # the parser's own text may echo the request's bytes: never send it back
            code = HTTP_CODES.get(status, "bad_request")
            response = error_response(
                status, code, _PARSER_MESSAGES.get(type(exc), "malformed HTTP request")
            )
        response.force_close()
        return response


_PARSER_MESSAGES = {
    http_exceptions.LineTooLong: "a request line or header is too long (at most 8190 bytes)",
    http_exceptions.InvalidHeader: "a request header is malformed",
    http_exceptions.BadStatusLine: "the request line is malformed",
}


class _JsonErrorServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer HTTP parser errors as JSON: use it for every
    site that serves the API (aiohttp has no public hook for those answers)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # same state; only the protocol class differs
        return server


def build_app(gateway: Gateway, api: bool = True) -> web.Application:
    """The HTTP app; with api=False only the operator endpoints (for `serve --no-api`).

    Every route it registers needs an API key unless `api.auth.PUBLIC_ROUTES` lists it.
    """
    app = web.Application(
        middlewares=[observe_middleware, error_middleware, auth_middleware],
        client_max_size=MAX_BODY,
    )
    app[GATEWAY] = gateway
    app[OPENAPI_PARTS] = (webhooks.openapi_part, events.openapi_part)
    app.add_routes(system.routes)
    if api:
        for table in (store.routes, invoices.routes, webhooks.routes, events.routes):
            app.add_routes(table)
        app.add_routes(checkout.routes)
        checkout.setup_checkout(app)
    return app
