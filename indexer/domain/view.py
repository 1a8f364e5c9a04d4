"""The public JSON shape of an invoice: the API response and every event's `data.invoice`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from indexer.domain.money import format_amount
from indexer.domain.network import Network
from indexer.domain.records import Invoice, Payment


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, second precision at least: `2026-11-23T12:00:00Z`."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


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
    asset = network.asset(invoice.asset)
    decimals = asset.decimals if asset is not None else 0
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
        "payments": [_payment_view(p, network) for p in payments],
    }


def _payment_view(payment: Payment, network: Network) -> dict[str, Any]:
    asset = network.asset(payment.asset)
    decimals = asset.decimals if asset is not None else 0
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
    }
