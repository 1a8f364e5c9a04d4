"""The OpenAPI 3.1 document served at /openapi.json, assembled from small schema builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.requests import LIMIT
from api.routes.invoices import IDEMPOTENCY_KEY, INVOICE_CURSOR, ORDER_ID, STATUS
from indexer import __version__
from indexer.config import EXPIRES_IN_RANGE, Settings
from indexer.domain.invoice import INVOICE_EVENT_TYPES, InvoiceException, PaymentState, Status
from indexer.domain.pricing import CURRENCY_DIGITS

Part = tuple[dict[str, Any], dict[str, Any]]
PartBuilder = Callable[[Settings], Part]
# The route modules outside the core (webhooks, events) that `build_app` passes: each builds its
# paths and schemas from the running gateway's settings, as the core paths do.
OPENAPI_PARTS: web.AppKey[tuple[PartBuilder, ...]] = web.AppKey("openapi_parts")


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error_responses(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Invalid input (the error names the field)",
        401: "Missing, unknown or revoked API key",
        404: "No such object for this store",
        409: "Conflict (e.g. Idempotency-Key reused with another body)",
        413: "Body too large",
        415: "Body is not application/json",
        503: "No trustworthy price now (code price_unavailable, with a reason); nothing stored",
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": ref("Error")}}}
        for s in statuses
    }


def json_body(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_DECIMAL = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "12.5"}
_TIME = {"type": "string", "format": "date-time"}
# parse_amount refuses longer strings; the pattern keeps base units below 10**77 < 2**256.
MAX_AMOUNT_LENGTH = 200
UINT256_DIGITS = 77


def amount_pattern(decimals: int) -> str:
    """The amounts parse_amount accepts for an asset: ASCII digits, greater than zero, at most
    `decimals` places, below 10**77 base units. No lookahead: generators must handle it."""
    whole = f"0*[1-9][0-9]{{0,{UINT256_DIGITS - 1 - decimals}}}"
    if decimals == 0:
        return f"^{whole}$"
    # a zero whole part needs a non-zero digit somewhere in its <= decimals places
    fractions = "|".join(f"[0-9]{{{k}}}[1-9][0-9]{{0,{decimals - 1 - k}}}" for k in range(decimals))
    return f"^(?:{whole}(?:\\.[0-9]{{1,{decimals}}})?|0+\\.(?:{fractions}))$"


def invoice_create_schema(settings: Settings) -> dict[str, Any]:
    """One variant per configured (network, asset): enums of what this gateway serves, and
    each asset's own amount rule."""
    low, high = EXPIRES_IN_RANGE
    common = {
        "order_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
        "metadata": {"type": ["object", "null"], "description": "At most 8 KB of JSON"},
        "expires_in": {
            "type": "integer",
            "minimum": low,
            "maximum": high,
            "default": settings.default_expires_in,
        },
        "redirect_url": {
            "type": ["string", "null"],
            "pattern": "^https?://",
            "minLength": 8,
            "maxLength": 2048,
        },
    }
    variants = [
        {
            "type": "object",
            "title": f"{name} {asset.symbol}",
            "required": ["network", "asset", "amount"],
            "additionalProperties": False,
            "properties": {
                "network": {"const": name},
                "asset": {"const": asset.symbol},
                "amount": {
                    "type": "string",
                    "pattern": amount_pattern(asset.decimals),
                    "maxLength": MAX_AMOUNT_LENGTH,
                    "description": f"{asset.symbol} ({asset.decimals} decimals), decimal string",
                },
                **common,
            },
        }
        for name, network in sorted(settings.networks.items())
        for asset in network.assets
    ] + _priced_variants(settings, common)
    if not variants:  # no network configured: nothing can be created
        return {"not": {}}
    return {"oneOf": variants}


def _priced_variants(settings: Settings, common: dict[str, Any]) -> list[dict[str, Any]]:
    """One variant per (network, asset, currency) a configured feed or peg can price."""
    variants = []
    for name, book in sorted(settings.price_books.items()):
        for asset in settings.networks[name].assets:
            for currency in sorted(book.currencies()):
                if book.route(asset.symbol, currency) is None:
                    continue
                digits = CURRENCY_DIGITS[currency]
                places = f"(\\.[0-9]{{1,{digits}}})?" if digits else ""
                price = {
                    "type": "object",
                    "required": ["amount", "currency"],
                    "additionalProperties": False,
                    "properties": {
                        "amount": {"type": "string", "pattern": f"^[0-9]{{1,16}}{places}$"},
                        "currency": {"const": currency},
                    },
                    "description": "Converted at the feed's rate, rounded up to the asset's unit",
                }
                variants.append(
                    {
                        "type": "object",
                        "title": f"{name} {asset.symbol} priced in {currency}",
                        "required": ["network", "asset", "price"],
                        "additionalProperties": False,
                        "properties": {
                            "network": {"const": name},
                            "asset": {"const": asset.symbol},
                            "price": price,
                            **common,
                        },
                    }
                )
    return variants


_PRICE = {
    "type": ["object", "null"],
    "description": "The fiat price the amount was converted from (null: priced in the asset)",
    "properties": {
        "amount": _DECIMAL,
        "currency": {"type": "string", "example": "USD"},
        "rate": {**_DECIMAL, "description": "currency per whole asset unit, locked"},
        "source": {"enum": ["feed", "cross", "peg"]},
        "quoted_at": _TIME,
        "legs": {
            "type": "array",
            "description": "Feeds read (address, round_id, answer, updated_at, block) or the peg",
            "items": {"type": "object"},
        },
    },
}


_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                },
            }
        },
    },
    "Payment": {
        "type": "object",
        "properties": {
            "tx_hash": {"type": "string"},
            "log_index": {"type": "integer"},
            "asset": {"type": "string"},
            "amount": _DECIMAL,
            "counted": {"type": "boolean", "description": "False for a payment in another asset"},
            "block_number": {"type": "integer"},
            "confirmations": {"type": "integer"},
            "state": {"enum": [s.value for s in PaymentState]},
            "detected_at": _TIME,
            "swept_by": {
                "type": ["string", "null"],
                "description": "Forwarder stores: the transaction that swept this payment to the "
                "treasury (the first sweep of its address and asset after it; a native payment in "
                "the sweep's own block counts as not swept); null until then and always for xpub "
                "stores. Computed when read, so a reorg that drops the sweep sets it back to null.",
            },
        },
    },
    "Invoice": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "example": "inv_4ZbQ…"},
            "object": {"const": "invoice"},
            "status": {"enum": [s.value for s in Status]},
            "exception": {"enum": [e.value for e in InvoiceException] + [None]},
            "network": {"type": "string"},
            "asset": {"type": "string"},
            "amount": _DECIMAL,
            "amount_received": _DECIMAL,
            "amount_confirmed": _DECIMAL,
            "amount_pending": _DECIMAL,
            "amount_due": _DECIMAL,
            "address": {"type": "string", "description": "EIP-55 deposit address"},
            "payment_uri": {"type": "string", "description": "EIP-681"},
            "checkout_url": {"type": "string"},
            "confirmations_required": {"type": "integer"},
            "expires_at": _TIME,
            "monitoring_until": _TIME,
            "created_at": _TIME,
            "updated_at": _TIME,
            "paid_at": {"type": ["string", "null"], "format": "date-time"},
            "reorg_flagged": {"type": "boolean"},
            "order_id": {"type": ["string", "null"]},
            "metadata": {"type": ["object", "null"]},
            "redirect_url": {"type": ["string", "null"]},
            "price": _PRICE,
            "paid_tolerance": {"type": "string", "example": "0.5%"},
            "payments": {"type": "array", "items": ref("Payment")},
        },
    },
    "InvoiceList": {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": ref("Invoice")},
            "has_more": {"type": "boolean"},
        },
    },
    "Store": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "address_mode": {"enum": ["xpub", "forwarder"]},
            "evm_xpub": {"type": ["string", "null"]},
            "treasuries": {"type": "object", "additionalProperties": {"type": "string"}},
            "networks": {"type": "object"},
        },
    },
    "EventType": {"enum": list(INVOICE_EVENT_TYPES)},
}


_invoice_id = {"name": "invoice_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _core_paths() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"apiKey": []}]
    return {
        "/v1/invoices": {
            "post": {
                "summary": "Create an invoice with a fresh deposit address",
                "security": secured,
                "parameters": [IDEMPOTENCY_KEY.openapi()],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("InvoiceCreate")}},
                },
                "responses": {
                    "201": json_body(ref("Invoice"), "Created (or the replayed first response)"),
                    **error_responses(400, 401, 409, 413, 415, 503),
                },
            },
            "get": {
                "summary": "List invoices, newest first",
                "security": secured,
                "parameters": [
                    LIMIT.openapi(),
                    STATUS.openapi(),
                    ORDER_ID.openapi(),
                    INVOICE_CURSOR.openapi(),
                ],
                "responses": {"200": json_body(ref("InvoiceList")), **error_responses(400, 401)},
            },
        },
        "/v1/invoices/{invoice_id}": {
            "get": {
                "summary": "Retrieve an invoice with its payments",
                "security": secured,
                "parameters": [
                    {
                        "name": "invoice_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": json_body(ref("Invoice")), **error_responses(401, 404)},
            }
        },
        "/v1/store": {
            "get": {
                "summary": "The calling key's store",
                "security": secured,
                "responses": {"200": json_body(ref("Store")), **error_responses(401)},
            }
        },
        "/healthz": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: store open, migrations current, per-network lag",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}
        },
        "/pay/{invoice_id}": {
            "get": {
                "summary": "The customer's checkout page (HTML; the invoice id is the secret)",
                "parameters": [_invoice_id],
                "responses": {"200": {"description": "HTML"}, "404": {"description": "HTML"}},
            }
        },
        "/pay/{invoice_id}/status": {
            "get": {
                "summary": "Public, read-only status for the checkout page (no metadata)",
                "parameters": [_invoice_id],
                "responses": {"200": {"description": "JSON"}, **error_responses(404)},
            }
        },
        "/pay/{invoice_id}/qr.svg": {
            "get": {
                "summary": "QR code (SVG) of the EIP-681 URI for the amount still due",
                "parameters": [_invoice_id],
                "responses": {"200": {"description": "image/svg+xml"}, "404": {"description": ""}},
            }
        },
    }


def openapi_document(settings: Settings, parts: tuple[PartBuilder, ...] = ()) -> dict[str, Any]:
    """The document of this gateway: its networks, assets and webhook URL rules."""
    paths, schemas = _core_paths(), {**_SCHEMAS, "InvoiceCreate": invoice_create_schema(settings)}
    for build in parts:
        more_paths, more_schemas = build(settings)
        paths.update(more_paths)
        schemas.update(more_schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chainpay",
            "version": __version__,
            "description": (
                "Self-hosted, non-custodial crypto payments. Amounts are decimal strings in the "
                'asset\'s units; errors are {"error": {"code", "message", "field"}}.'
            ),
        },
        "servers": [{"url": settings.public_url}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "paths": paths,
    }
