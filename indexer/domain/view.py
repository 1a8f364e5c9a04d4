"""The public JSON shape of an invoice: the API response and every event's `data.invoice`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from indexer.domain.money import format_amount
from indexer.domain.network import Network
from indexer.domain.pricing import PriceQuote, legs_json, tolerance_text
from indexer.domain.records import Invoice, Payment


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, second precision at least: `2026-11-23T12:00:00Z`."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def amount_text(network: Network, symbol: str, units: int) -> str:
    """`12.5 USDT`: base units as the asset's decimal string, for logs and messages."""
    asset = network.asset(symbol)
    if asset is None:  # not configured (any more): say plainly that these are base units
        return f"{units} base units of {symbol}"
    return f"{format_amount(units, asset.decimals)} {symbol}"


def state_text(invoice: Invoice, network: Network) -> str:
    """`expired: 0 of 10 USDT confirmed, 10 USDT pending` (the exception in brackets if any)."""
    exception = f" ({invoice.exception.value})" if invoice.exception else ""
    confirmed = format_amount(invoice.amount_confirmed, _decimals(network, invoice.asset))
    pending = amount_text(
        network, invoice.asset, invoice.amount_received - invoice.amount_confirmed
    )
    total = amount_text(network, invoice.asset, invoice.amount)
    return f"{invoice.status.value}{exception}: {confirmed} of {total} confirmed, {pending} pending"


def _decimals(network: Network, symbol: str) -> int:
    asset = network.asset(symbol)
    return asset.decimals if asset is not None else 0


def payment_uri(network: Network, asset_symbol: str, address: str, amount: int) -> str:
    """EIP-681 URI: native `ethereum:<addr>@<chain>?value=<wei>`, token `…/transfer?…`."""
    asset = network.asset(asset_symbol)
    if asset is None or asset.contract is None:
        return f"ethereum:{address}@{network.chain_id}?value={amount}"
    return (
        f"ethereum:{asset.contract}@{network.chain_id}/transfer?address={address}&uint256={amount}"
    )


def invoice_view(
    invoice: Invoice, payments: Sequence[Payment], network: Network, public_url: str
) -> dict[str, Any]:
    decimals = _decimals(network, invoice.asset)
    # Still to send: money already in blocks is not asked for twice, even while it confirms.
    # Whether a shortfall is settled is the exception's job (underpaid only once nothing is
    # pending), never a reading of this number alone.
    due = max(invoice.amount - invoice.amount_received, 0)
    return {
        "id": invoice.id,
        "object": "invoice",
        "status": invoice.status.value,
        "exception": invoice.exception.value if invoice.exception else None,
        "network": invoice.network,
        "asset": invoice.asset,
        "amount": format_amount(invoice.amount, decimals),
        "amount_received": format_amount(invoice.amount_received, decimals),
        "amount_confirmed": format_amount(invoice.amount_confirmed, decimals),
        "amount_pending": format_amount(
            invoice.amount_received - invoice.amount_confirmed, decimals
        ),
        "amount_due": format_amount(due, decimals),
        "address": invoice.address,
        "payment_uri": payment_uri(network, invoice.asset, invoice.address, invoice.amount),
        "checkout_url": f"{public_url}/pay/{invoice.id}",
        "confirmations_required": network.confirmations,
        "expires_at": iso(invoice.expires_at),
        "monitoring_until": iso(invoice.monitoring_until),
        "created_at": iso(invoice.created_at),
        "updated_at": iso(invoice.updated_at),
        "paid_at": iso(invoice.paid_at),
        "reorg_flagged": invoice.reorg_flagged,
        "order_id": invoice.order_id,
        "metadata": invoice.metadata,
        "redirect_url": invoice.redirect_url,
        "price": price_view(invoice.price),
        "paid_tolerance": tolerance_text(invoice.paid_tolerance_ppm),
        "payments": [_payment_view(p, network) for p in payments],
    }


def price_view(quote: PriceQuote | None) -> dict[str, Any] | None:
    """The fiat price an invoice was created from and the locked rate; None for an invoice
    created in the asset's own units. `source`: feed, cross (two feeds) or peg."""
    if quote is None:
        return None
    return {
        "amount": quote.amount_text,
        "currency": quote.currency,
        "rate": quote.rate.text,
        "source": quote.source,
        "quoted_at": iso(quote.quoted_at),
        "legs": legs_json(quote.legs),
    }


def _payment_view(payment: Payment, network: Network) -> dict[str, Any]:
    decimals = _decimals(network, payment.asset)
    return {
        "tx_hash": payment.tx_hash,
        "log_index": payment.log_index,
        "asset": payment.asset,
        "amount": format_amount(payment.amount, decimals),
        "counted": payment.counted,
        "block_number": payment.block_number,
        "confirmations": payment.confirmations,
        "state": payment.state.value,
        "detected_at": iso(payment.first_seen_at),
        "swept_by": payment.swept_by,
    }
