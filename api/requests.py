"""Reading request input: JSON bodies and query parameters, with 4xx errors that name the field."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.errors import ApiError

MAX_BODY = 64 * 1024


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", f"the request body must be at most {MAX_BODY} bytes")
    body = await request.read()  # aiohttp enforces client_max_size as well
    if len(body) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"the request body must be at most {MAX_BODY} bytes")
    return body


def parse_json(request: web.Request, body: bytes) -> Any:
    ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if not body.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; expected a JSON object")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def query_limit(request: web.Request, default: int = 20, maximum: int = 100) -> int:
    text = request.query.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise ApiError(
            400, "invalid_limit", f"limit must be an integer from 1 to {maximum}", "limit"
        )
    return int(text)


def query_text(
    request: web.Request, name: str, choices: tuple[str, ...] | None = None
) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    if choices is not None and value not in choices:
        raise ApiError(400, f"invalid_{name}", f"{name} must be one of: {', '.join(choices)}", name)
    if len(value) > 200:
        raise ApiError(400, f"invalid_{name}", f"{name} is too long", name)
    return value
