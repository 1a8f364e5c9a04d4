"""The OpenAPI 3.1 document served at /openapi.json, assembled from small schema builders."""

from __future__ import annotations

from typing import Any

from indexer import __version__
from indexer.domain.invoice import INVOICE_EVENT_TYPES, InvoiceException, PaymentState, Status

# Route modules outside the core (webhooks, checkout) register their paths and schemas here.
EXTRA_PATHS: dict[str, dict[str, Any]] = {}
EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {}


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
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": ref("Error")}}}
        for s in statuses
    }


def json_body(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_DECIMAL = {"type": "string", "pattern": r"^\d+(\.\d+)?$", "example": "12.5"}
_TIME = {"type": "string", "format": "date-time"}

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
    "InvoiceCreate": {
        "type": "object",
        "required": ["network", "asset", "amount"],
        "additionalProperties": False,
        "properties": {
            "network": {"type": "string", "example": "ethereum"},
            "asset": {"type": "string", "example": "USDT"},
            "amount": {**_DECIMAL, "description": "In the asset's units, as a decimal string"},
            "order_id": {"type": "string", "maxLength": 200},
            "metadata": {"type": "object", "description": "At most 8 KB of JSON"},
            "expires_in": {"type": "integer", "minimum": 60, "maximum": 2592000, "default": 900},
            "redirect_url": {"type": "string", "format": "uri", "maxLength": 2048},
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
            "evm_xpub": {"type": "string"},
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
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("InvoiceCreate")}},
                },
                "responses": {
                    "201": json_body(ref("Invoice"), "Created (or the replayed first response)"),
                    **error_responses(400, 401, 409, 413, 415),
                },
            },
            "get": {
                "summary": "List invoices, newest first",
                "security": secured,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": [s.value for s in Status]},
                    },
                    {"name": "order_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "starting_after", "in": "query", "schema": {"type": "string"}},
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


def openapi_document(public_url: str) -> dict[str, Any]:
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
        "servers": [{"url": public_url}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {**_SCHEMAS, **EXTRA_SCHEMAS},
        },
        "paths": {**_core_paths(), **EXTRA_PATHS},
    }
