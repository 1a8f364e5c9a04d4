"""The hosted checkout page: `/pay/{id}` (HTML), `/pay/{id}/status` (public JSON) and `/static/`.

The invoice id is the only secret a customer holds, so these routes take no API key and show
nothing beyond what the page itself shows: never the metadata, never another invoice. Pages
carry a strict CSP (no inline script, nothing from another host) and refuse to be framed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import segno
from aiohttp import web

from api.keys import GATEWAY
from indexer.domain.ids import looks_like
from indexer.domain.invoice import InvoiceException, PaymentState, Status
from indexer.domain.network import Network
from indexer.domain.records import Invoice, Payment
from indexer.domain.view import payment_uri
from indexer.store.port import UnitOfWork

routes = web.RouteTableDef()
STATIC_DIR = Path(__file__).parent / "static"
POLL_SECONDS = 2
REDIRECT_SECONDS = 5

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The invoice id in the URL is the customer's secret: never hand it to another site.
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


@dataclass(frozen=True)
class Checkout:
    """One invoice as the customer sees it."""

    invoice: Invoice
    payments: list[Payment]
    network: Network
    store_name: str

    @property
    def due_units(self) -> int:
        return max(self.invoice.amount - self.invoice.amount_received, 0)

    def status(self, view: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The public status document: only what the page shows."""
        state = page_state(self.invoice)
        n, required = self.confirmations()
        paid = self.invoice.status is Status.PAID
        return {
            "id": self.invoice.id,
            "state": state,
            "status": view["status"],
            "exception": view["exception"],
            "amount": view["amount"],
            "amount_due": view["amount_due"],
            "amount_received": view["amount_received"],
            "amount_confirmed": view["amount_confirmed"],
            "amount_pending": view["amount_pending"],
            "asset": view["asset"],
            "network": {"name": self.network.name, "title": self.network.display_name},
            "address": view["address"],
            "payment_uri": self.due_uri(),
            "confirmations": {"current": n, "required": required},
            "expires_at": view["expires_at"],
            "expires_in": max(int((self.invoice.expires_at - now).total_seconds()), 0),
            "order_id": view["order_id"],
            "redirect_url": view["redirect_url"] if paid else None,
            # The fiat price the amount was converted from, and the locked rate: what the
            # customer is told they pay, and why this many units of the asset.
            "price": _public_price(view["price"], view["asset"]),
        }

    def confirmations(self) -> tuple[int, int]:
        """n/N of the payment still waiting longest (all confirmed: N/N; none yet: 0/N)."""
        required = self.network.confirmations
        live = [p for p in self.payments if p.counted and p.state is not PaymentState.ORPHANED]
        if not live:
            return 0, required
        waiting = [p.confirmations for p in live if p.state is PaymentState.PENDING]
        return (min(min(waiting), required) if waiting else required), required

    def due_uri(self) -> str:
        """EIP-681 URI for what is still to pay (the full amount until something arrives)."""
        units = self.due_units or self.invoice.amount
        return payment_uri(self.network, self.invoice.asset, self.invoice.address, units)


def _public_price(price: dict[str, Any] | None, asset: str) -> dict[str, Any] | None:
    if price is None:
        return None
    rate = "1 (pegged)" if price["source"] == "peg" else price["rate"]
    return {
        "amount": price["amount"],
        "currency": price["currency"],
        "rate_text": f"1 {asset} = {rate} {price['currency']}",
        "quoted_at": price["quoted_at"],
    }


def page_state(invoice: Invoice) -> str:
    """What the page says: waiting, partial, detected, paid, paid_late, expired, confirming
    (expired while money is still confirming: no shortfall can be told yet), underpaid."""
    if invoice.status is Status.PAID:
        return "paid_late" if invoice.exception is InvoiceException.PAID_LATE else "paid"
    if invoice.status is Status.EXPIRED:
        if invoice.amount_received > invoice.amount_confirmed:
            return "confirming"
        return "underpaid" if invoice.exception is InvoiceException.UNDERPAID else "expired"
    if invoice.status is Status.PENDING:
        return "partial" if invoice.amount_received < invoice.amount else "detected"
    return "waiting"


_QR_OPTIONS: dict[str, Any] = {
    "scale": 4, "border": 4, "svgclass": "qr-code", "lineclass": None, "omitsize": True,
    "title": "QR code with the payment details for your wallet",
}  # fmt: skip


def qr_svg(data: str) -> str:
    """The QR code as inline SVG (server-side: no script, no image request)."""
    return str(segno.make(data, error="m").svg_inline(**_QR_OPTIONS))


def qr_svg_document(data: str) -> bytes:
    """The same QR as a standalone SVG file (with its XML namespace, for an <img>)."""
    out = io.BytesIO()
    segno.make(data, error="m").save(out, kind="svg", **_QR_OPTIONS)
    return out.getvalue()


async def load_checkout(request: web.Request, invoice_id: str) -> Checkout | None:
    if not looks_like("inv", invoice_id):
        return None
    gateway = request.app[GATEWAY]

    def read(uow: UnitOfWork) -> tuple[Invoice | None, list[Payment]]:
        invoice = uow.invoices.get_invoice(invoice_id)
        if invoice is None:
            return None, []
        return invoice, uow.invoices.payments_for([invoice_id])[invoice_id]

    invoice, payments = await gateway.db.read(read)
    network = gateway.settings.networks.get(invoice.network) if invoice else None
    if invoice is None or network is None:
        return None
    store = gateway.stores.stores.get(invoice.store_id)
    return Checkout(invoice, payments, network, store.name if store else "")


@routes.get("/pay/{invoice_id}")
async def checkout_page(request: web.Request) -> web.StreamResponse:
    checkout = await load_checkout(request, request.match_info["invoice_id"])
    if checkout is None:
        return not_found(request)
    gateway = request.app[GATEWAY]
    view = gateway.invoices.view(checkout.invoice, checkout.payments)
    status = checkout.status(view, gateway.clock.now())
    asset = checkout.network.asset(checkout.invoice.asset)
    context = {
        "s": status,
        "store_name": checkout.store_name,
        "contract": asset.contract if asset is not None else None,
        "qr": qr_svg(status["payment_uri"]),
        "countdown": countdown_text(status["expires_in"]),
        "poll_seconds": POLL_SECONDS,
        "redirect_seconds": REDIRECT_SECONDS,
    }
    response = aiohttp_jinja2.render_template("checkout.html", request, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/pay/{invoice_id}/status")
async def checkout_status(request: web.Request) -> web.Response:
    checkout = await load_checkout(request, request.match_info["invoice_id"])
    if checkout is None:
        return web.json_response(
            {"error": {"code": "not_found", "message": "no such invoice", "field": None}},
            status=404,
            headers={"Cache-Control": "no-store"},
        )
    gateway = request.app[GATEWAY]
    view = gateway.invoices.view(checkout.invoice, checkout.payments)
    return web.json_response(
        checkout.status(view, gateway.clock.now()), headers={"Cache-Control": "no-store"}
    )


@routes.get("/pay/{invoice_id}/qr.svg")
async def checkout_qr(request: web.Request) -> web.Response:
    """The QR for what is due now: the page swaps it in after a partial payment."""
    checkout = await load_checkout(request, request.match_info["invoice_id"])
    if checkout is None:
        return not_found(request)
    return web.Response(
        body=qr_svg_document(checkout.due_uri()),
        content_type="image/svg+xml",
        headers={"Cache-Control": "no-store"},
    )


def not_found(request: web.Request) -> web.Response:
    response = aiohttp_jinja2.render_template("not_found.html", request, {}, status=404)
    response.headers["Cache-Control"] = "no-store"
    return response


def countdown_text(seconds: int) -> str:
    """`14:59`, `1:02:03`: the static countdown shown before (or without) JavaScript."""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


routes.static("/static", STATIC_DIR)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(("/pay/", "/static/")):
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)


def setup_checkout(app: web.Application) -> None:
    """Templates (autoescaped) and the security headers for the checkout routes."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("api", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    app.on_response_prepare.append(_security_headers)
