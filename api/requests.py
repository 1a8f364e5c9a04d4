"""Reading request input: JSON bodies, query parameters and headers, with 4xx errors that name
the field.

Each query parameter and header is declared once (`QueryInt`, `QueryText`, `Header`): the same
object parses the request and writes its OpenAPI parameter, so the document cannot drift from
what the server accepts. Every text that reaches a handler went through one check here: no
lone surrogates (JSON allows `"\\ud800"`, DuckDB and UTF-8 do not), no undecodable header bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.errors import ApiError

MAX_BODY = 64 * 1024
MAX_QUERY_TEXT = 200
_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", f"the request body must be at most {MAX_BODY} bytes")
    body = await request.read()  # aiohttp enforces client_max_size as well
    if len(body) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"the request body must be at most {MAX_BODY} bytes")
    return body


def parse_json(request: web.Request, body: bytes) -> Any:
    """The body as JSON; every string in it (keys too, at any depth) is valid Unicode."""
    ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if not body.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; expected a JSON object")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None
    _check_strings(value)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _check_strings(value: Any) -> None:
    """Refuse a lone surrogate anywhere in a parsed body; the error names the top-level field.

    Iterative: a body nested as deep as json.loads allows must not hit the recursion limit here.
    """
    top = value.items() if isinstance(value, dict) else [(None, value)]
    for field, item in top:
        if field is not None and _SURROGATE.search(field):
            raise _bad_text(None)
        stack = [item]
        while stack:
            current = stack.pop()
            if isinstance(current, str):
                if _SURROGATE.search(current):
                    raise _bad_text(field)
            elif isinstance(current, dict):
                for key, inner in current.items():
                    if _SURROGATE.search(key):
                        raise _bad_text(field)
                    stack.append(inner)
            elif isinstance(current, list):
                stack.extend(current)


def _bad_text(field: str | None) -> ApiError:
    where = field or "the body"
    return ApiError(
        400,
        "invalid_text",
        f"{where} holds a lone UTF-16 surrogate (e.g. \\ud800); send valid Unicode text",
        field,
    )


def parse_ascii_int(text: str) -> int | None:
    """An integer written in ASCII digits only, else None.

    `str.isdigit()` and `int()` accept "²", "①", "١٢" or "１２"; an API that documents ASCII
    must not.
    """
    if len(text) > 40 or not _ASCII_DIGITS.fullmatch(text):
        return None
    return int(text)


@dataclass(frozen=True)
class QueryInt:
    """An integer query parameter in [minimum, maximum], written in ASCII digits."""

    name: str
    minimum: int
    maximum: int
    default: int

    def parse(self, request: web.Request) -> int:
        text = _query_value(request, self.name)
        if text is None:
            return self.default
        number = parse_ascii_int(text)
        if number is None or not self.minimum <= number <= self.maximum:
            raise ApiError(
                400,
                f"invalid_{self.name}",
                f"{self.name} must be an integer from {self.minimum} to {self.maximum}",
                self.name,
            )
        return number

    def openapi(self) -> dict[str, Any]:
        schema = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        return {"name": self.name, "in": "query", "schema": {**schema, "default": self.default}}


@dataclass(frozen=True)
class QueryText:
    """A text query parameter: one of `choices`, or matching `pattern`, at most 200 characters."""

    name: str
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    description: str | None = None
    refusal: str | None = None  # the message when `pattern` does not match

    def parse(self, request: web.Request) -> str | None:
        value = _query_value(request, self.name)
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            raise ApiError(
                400,
                f"invalid_{self.name}",
                f"{self.name} must be one of: {', '.join(self.choices)}",
                self.name,
            )
        if len(value) > MAX_QUERY_TEXT:
            raise ApiError(400, f"invalid_{self.name}", f"{self.name} is too long", self.name)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise self.malformed()
        return value

    def malformed(self) -> ApiError:
        code = "invalid_cursor" if self.name == "starting_after" else f"invalid_{self.name}"
        message = self.refusal or f"{self.name} is not well formed"
        return ApiError(400, code, message, self.name)

    def openapi(self) -> dict[str, Any]:
        schema: dict[str, Any]
        if self.choices is not None:
            schema = {"type": "string", "enum": list(self.choices)}
        else:
            schema = {"type": "string", "minLength": 0, "maxLength": MAX_QUERY_TEXT}
            if self.pattern is not None:
                schema["pattern"] = _anchored(self.pattern)
        param: dict[str, Any] = {"name": self.name, "in": "query", "schema": schema}
        if self.description:
            param["description"] = self.description
        return param


@dataclass(frozen=True)
class Header:
    """An optional request header whose value must match `pattern` (printable ASCII)."""

    name: str
    pattern: str
    message: str
    description: str = ""

    def parse(self, request: web.Request) -> str | None:
        value = header_text(request, self.name)
        if value is None:
            return None
        if not re.fullmatch(self.pattern, value):
            code = "invalid_" + self.name.lower().replace("-", "_")
            raise ApiError(400, code, self.message, self.name)
        return value

    def openapi(self) -> dict[str, Any]:
        schema = {"type": "string", "pattern": _anchored(self.pattern)}
        return {
            "name": self.name,
            "in": "header",
            "schema": schema,
            "description": self.description,
        }


def header_text(request: web.Request, name: str) -> str | None:
    """A header's value, or a 400 naming it when its bytes are not UTF-8.

    aiohttp decodes header bytes with `surrogateescape`, so a raw 0xff arrives as "\\udcff" and
    raises only later, when something encodes it (a hash, a DuckDB parameter): a 500.
    """
    value = request.headers.get(name)
    if value is not None and _SURROGATE.search(value):
        raise ApiError(400, "invalid_header", f"the {name} header is not valid UTF-8", name)
    return value


def _query_value(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is not None and _SURROGATE.search(value):
        raise ApiError(400, f"invalid_{name}", f"{name} is not valid UTF-8", name)
    return value


def _anchored(pattern: str) -> str:
    """A Python fullmatch pattern as an anchored ECMA-262 one (what OpenAPI `pattern` means)."""
    return f"^(?:{pattern})$"


# The parameters every list in /v1 takes.
LIMIT = QueryInt("limit", 1, 100, 20)


def cursor(pattern: str, noun: str) -> QueryText:
    """`starting_after` of one list: an id of this shape, naming `noun` of the caller's store.

    A malformed id is refused in the same words as another store's (own_cursor): nothing leaks.
    """
    return QueryText(
        "starting_after",
        pattern=pattern,
        description=f"The id of {noun} of this store (the last one of the previous page)",
        refusal=f"starting_after is not {noun} of this store",
    )
