"""Queries on invoices and their payments. Amounts cross the boundary as Python ints."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from indexer.domain.invoice import InvoiceException, PaymentState, Status
from indexer.domain.pricing import PriceQuote, Rate, legs_from_json, legs_json
from indexer.domain.records import Invoice, Payment
from indexer.store.repositories.base import Repository
from indexer.store.sql import Append

_INVOICE_COLUMNS = (
    "id, store_id, network, asset, amount::VARCHAR, address, address_index, status, exception, "
    "amount_received::VARCHAR, amount_confirmed::VARCHAR, reorg_flagged, order_id, "
    "metadata::VARCHAR, redirect_url, expires_at, monitoring_until, created_at, updated_at, "
    "paid_at, paid_tolerance_ppm, price_amount, price_currency, price_rate, price_source, "
    "price_legs::VARCHAR, priced_at"
)
_PAYMENT_COLUMNS = (
    "network, tx_hash, log_index, invoice_id, store_id, address, asset, amount::VARCHAR, counted, "
    "block_number, block_hash, block_time, confirmations, state, first_seen_at, confirmed_at, "
    "updated_at"
)
# The first canonical sweep of a payment's (network, address, asset) after it: a later block,
# or the same block and a later log for a token (a Transfer's log index orders it within the
# block). A native payment in the sweep's own block counts as not swept: a transaction's own
# value and internal transfers carry no log index that orders them against the sweep's event.
# Computed when read, so a reorg that orphans a sweep or a payment needs no flag put right.
_SWEPT_BY = (
    "CASE WHEN payments.state = 'orphaned' THEN NULL ELSE (SELECT s.tx_hash FROM sweeps s "
    "WHERE s.network = payments.network AND s.address = payments.address "
    "AND s.asset = payments.asset AND NOT s.orphaned AND (s.block_number > payments.block_number "
    "OR (s.block_number = payments.block_number AND s.token IS NOT NULL "
    "AND s.log_index > payments.log_index)) ORDER BY s.block_number, s.log_index LIMIT 1) "
    "END AS swept_by"
)


def _invoice(row: Sequence[Any]) -> Invoice:
    return Invoice(
        id=row[0],
        store_id=row[1],
        network=row[2],
        asset=row[3],
        amount=int(row[4]),
        address=row[5],
        address_index=row[6],
        status=Status(row[7]),
        exception=InvoiceException(row[8]) if row[8] else None,
        amount_received=int(row[9]),
        amount_confirmed=int(row[10]),
        reorg_flagged=row[11],
        order_id=row[12],
        metadata=json.loads(row[13]) if row[13] is not None else None,
        redirect_url=row[14],
        expires_at=row[15],
        monitoring_until=row[16],
        created_at=row[17],
        updated_at=row[18],
        paid_at=row[19],
        paid_tolerance_ppm=row[20],
        price=_quote(row[21:27]),
    )


def _quote(cols: Sequence[Any]) -> PriceQuote | None:
    amount, currency, rate, source, legs, priced_at = cols
    if amount is None:
        return None
    return PriceQuote(
        currency=currency,
        amount_minor=int(amount),
        rate=Rate.parse(rate),
        source=source,
        legs=legs_from_json(json.loads(legs)),
        quoted_at=priced_at,
    )


def _payment(row: Sequence[Any]) -> Payment:
    return Payment(
        network=row[0],
        tx_hash=row[1],
        log_index=row[2],
        invoice_id=row[3],
        store_id=row[4],
        address=row[5],
        asset=row[6],
        amount=int(row[7]),
        counted=row[8],
        block_number=row[9],
        block_hash=row[10],
        block_time=row[11],
        confirmations=row[12],
        state=PaymentState(row[13]),
        first_seen_at=row[14],
        confirmed_at=row[15],
        updated_at=row[16],
        swept_by=row[17] if len(row) > 17 else None,
    )


_INSERT_COLUMNS = (
    "id",
    "store_id",
    "network",
    "asset",
    "amount",
    "address",
    "address_index",
    "status",
    "exception",
    "amount_received",
    "amount_confirmed",
    "reorg_flagged",
    "order_id",
    "metadata",
    "redirect_url",
    "expires_at",
    "monitoring_until",
    "created_at",
    "updated_at",
    "paid_at",
    "paid_tolerance_ppm",
    "price_amount",
    "price_currency",
    "price_rate",
    "price_source",
    "price_legs",
    "priced_at",
)
_CASTS = {
    "amount": "BIGNUM",
    "amount_received": "BIGNUM",
    "amount_confirmed": "BIGNUM",
    "metadata": "JSON",
    "price_legs": "JSON",
    "address_index": "BIGINT",
}


def invoice_row(inv: Invoice) -> tuple[Any, ...]:
    return (
        inv.id,
        inv.store_id,
        inv.network,
        inv.asset,
        str(inv.amount),
        inv.address,
        inv.address_index,
        inv.status.value,
        inv.exception.value if inv.exception else None,
        str(inv.amount_received),
        str(inv.amount_confirmed),
        inv.reorg_flagged,
        inv.order_id,
        json.dumps(inv.metadata) if inv.metadata is not None else None,
        inv.redirect_url,
        inv.expires_at,
        inv.monitoring_until,
        inv.created_at,
        inv.updated_at,
        inv.paid_at,
        inv.paid_tolerance_ppm,
        *_quote_row(inv.price),
    )


def _quote_row(quote: PriceQuote | None) -> tuple[Any, ...]:
    if quote is None:
        return (None,) * 6
    return (
        quote.amount_minor,
        quote.currency,
        quote.rate.text,
        quote.source,
        json.dumps(legs_json(quote.legs)),
        quote.quoted_at,
    )


def invoice_append(inv: Invoice) -> Append:
    return Append("invoices", _INSERT_COLUMNS, invoice_row(inv))


class SqlInvoiceRepository(Repository):
    """The invoices repository: its SQL on one connection."""

    def add(self, invoice: Invoice) -> None:
        self._batch().append(invoice_append(invoice))

    def with_payments(self, invoice_id: str) -> tuple[Invoice | None, list[Payment]]:
        invoice = self.get_invoice(invoice_id)
        if invoice is None:
            return None, []
        return invoice, self.payments_for([invoice_id])[invoice_id]

    def update_invoice_states(self, invoices: Iterable[Invoice]) -> None:
        """Write back the evaluated columns of changed invoices."""
        for inv in invoices:
            self.conn.execute(
                "UPDATE invoices SET status = ?, exception = ?, amount_received = ?::BIGNUM, "
                "amount_confirmed = ?::BIGNUM, reorg_flagged = ?, updated_at = ?, paid_at = ? "
                "WHERE id = ?",
                [
                    inv.status.value,
                    inv.exception.value if inv.exception else None,
                    str(inv.amount_received),
                    str(inv.amount_confirmed),
                    inv.reorg_flagged,
                    inv.updated_at,
                    inv.paid_at,
                    inv.id,
                ],
            )

    def get_invoice(self, invoice_id: str) -> Invoice | None:
        row = self.conn.execute(
            f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE id = ?", [invoice_id]
        ).fetchone()
        return _invoice(row) if row else None

    def get_invoices(self, invoice_ids: Sequence[str]) -> dict[str, Invoice]:
        if not invoice_ids:
            return {}
        rows = self.conn.execute(
            f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE id IN (SELECT unnest(?))",
            [list(invoice_ids)],
        ).fetchall()
        return {row[0]: _invoice(row) for row in rows}

    def list_invoices(
        self,
        store_id: str,
        limit: int,
        status: str | None = None,
        order_id: str | None = None,
        starting_after: Invoice | None = None,
    ) -> tuple[list[Invoice], bool]:
        """Newest first; cursor pagination by (created_at, id) of the last item seen."""
        where = ["store_id = ?"]
        params: list[Any] = [store_id]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if order_id is not None:
            where.append("order_id = ?")
            params.append(order_id)
        if starting_after is not None:
            where.append("(created_at, id) < (?, ?)")
            params += [starting_after.created_at, starting_after.id]
        rows = self.conn.execute(
            f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        return [_invoice(r) for r in rows[:limit]], len(rows) > limit

    def payments_for(self, invoice_ids: Sequence[str]) -> dict[str, list[Payment]]:
        result: dict[str, list[Payment]] = {i: [] for i in invoice_ids}
        if not invoice_ids:
            return result
        rows = self.conn.execute(
            f"SELECT {_PAYMENT_COLUMNS}, {_SWEPT_BY} FROM payments "
            "WHERE invoice_id IN (SELECT unnest(?)) "
            "ORDER BY block_number, tx_hash, log_index",
            [list(invoice_ids)],
        ).fetchall()
        for row in rows:
            result[row[3]].append(_payment(row))
        return result

    def due_for_expiry_ids(self, now: datetime, limit: int) -> list[str]:
        """Ids of open invoices past `expires_at`, soonest first, at most `limit`."""
        rows = self.conn.execute(
            "SELECT id FROM invoices WHERE status IN ('new', 'pending') AND expires_at <= ? "
            "ORDER BY expires_at LIMIT ?",
            [now, limit],
        ).fetchall()
        return [row[0] for row in rows]

    def next_address_indexes(self) -> dict[str, int]:
        """Per store, the next unused HD index: past the highest issued and past any floor."""
        rows = self.conn.execute(
            "SELECT s.id, greatest(coalesce(max(i.address_index) + 1, 0), "
            "coalesce(max(f.floor), 0)) FROM stores s "
            "LEFT JOIN invoices i ON i.store_id = s.id "
            "LEFT JOIN address_index_floors f ON f.store_id = s.id GROUP BY s.id"
        ).fetchall()
        return {store_id: int(n) for store_id, n in rows}

    def addresses_since(self, created_after: datetime) -> list[str]:
        """Addresses of invoices created after `created_after` (by any process)."""
        rows = self.conn.execute(
            "SELECT address FROM invoices WHERE created_at > ?", [created_after]
        ).fetchall()
        return [row[0] for row in rows]

    def all_addresses(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT address FROM invoices").fetchall()]
