"""JSON errors `{"error": {"code", "message", "field"}}` and the middleware that maps exceptions.

Every malformed input gets a 4xx; a 500 is a bug, logged with the request id, never a traceback
to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from indexer.domain.errors import ChainpayError, ConflictError, NotFoundError, ValidationError
from indexer.domain.pricing import PriceUnavailable
from indexer.store.errors import StorageUnavailable

log = logging.getLogger("chainpay.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(ChainpayError):
    """An HTTP error with a stable code, raised by handlers and middlewares."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Any = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": field}},
        status=status,
        headers=headers,
    )


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except ValidationError as exc:
        return error_response(400, exc.code, exc.message, exc.field)
    except NotFoundError as exc:
        return error_response(404, "not_found", exc.message)
    except ConflictError as exc:
        return error_response(409, exc.code, exc.message)
    except PriceUnavailable as exc:  # nothing stored; the reason says what to wait for
        return web.json_response(
            {"error": {"code": "price_unavailable", "message": exc.message, "field": "price",
                       "reason": exc.reason}},
            status=503,
            headers={"Retry-After": "10"},
        )  # fmt: skip
    except StorageUnavailable as exc:  # disk full, read-only, frozen: retry, nothing is lost
        log.warning("storage unavailable on %s %s: %s", request.method, request.rel_url.path, exc)
        return error_response(503, "storage_unavailable", str(exc), headers={"Retry-After": "5"})
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body_too_large", "the request body is too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else "no such route"
        return error_response(exc.status, code, message, headers=_allow(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.rel_url.path)
        return error_response(500, "internal_error", "internal error; it has been logged")


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None
