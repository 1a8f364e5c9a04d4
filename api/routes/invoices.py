"""/v1/invoices: create (idempotent, group-committed), retrieve, list."""

from __future__ import annotations

from aiohttp import web

from api.auth import authenticated_store
from api.keys import GATEWAY, LOG_NOTE
from api.requests import LIMIT, Header, QueryText, cursor, parse_json, read_body
from indexer.domain.invoice import Status
from indexer.services.invoices import parse_new_invoice, request_fingerprint

routes = web.RouteTableDef()
# Printable ASCII without leading or trailing spaces (aiohttp strips those from header values).
IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    r"[!-~](?:[ -~]{0,253}[!-~])?",
    "Idempotency-Key must be 1-255 printable ASCII characters",
    "Retrying with the same key and body replays the first answer (kept 24 hours)",
)
STATUS = QueryText("status", tuple(s.value for s in Status))
ORDER_ID = QueryText("order_id", description="Only invoices with this order_id")
INVOICE_CURSOR = cursor("inv_[0-9A-Za-z]{22}", "an invoice")


@routes.post("/v1/invoices")
async def create_invoice(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    gateway = request.app[GATEWAY]
    key = IDEMPOTENCY_KEY.parse(request)
    body = await read_body(request)
    command = parse_new_invoice(parse_json(request, body), gateway.settings)
    fingerprint = request_fingerprint("POST", "/v1/invoices", body) if key is not None else ""
    reply = await gateway.invoices.create(store, command, key, fingerprint)
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    invoice_id = reply.body["id"]
    request[LOG_NOTE] = (
        f"invoice {invoice_id} {'replayed' if reply.replayed else 'created'}",
        {"invoice_id": invoice_id, "store_id": store.id, "network": command.network},
    )
    if reply.text is not None:
        return web.Response(
            text=reply.text, status=reply.status, headers=headers, content_type="application/json"
        )
    return web.json_response(reply.body, status=reply.status, headers=headers)


@routes.get("/v1/invoices/{invoice_id}")
async def get_invoice(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    view = await request.app[GATEWAY].invoices.get(store.id, request.match_info["invoice_id"])
    return web.json_response(view)


@routes.get("/v1/invoices")
async def list_invoices(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    items, has_more = await request.app[GATEWAY].invoices.list(
        store.id,
        limit=LIMIT.parse(request),
        status=STATUS.parse(request),
        order_id=ORDER_ID.parse(request),
        starting_after=INVOICE_CURSOR.parse(request),
    )
    return web.json_response({"object": "list", "data": items, "has_more": has_more})
