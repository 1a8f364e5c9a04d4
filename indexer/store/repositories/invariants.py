"""Queries that check the books against invariants the indexer must never break.

The one here: every stored transfer to an issued address of the same network has its payment
row. Issue 10 lost payments exactly that way (the transfer stored, its payment skipped), with
no crash and no log line; this check would have reported it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from indexer.domain.records import Invoice
from indexer.store.rows import MissingPayment
from indexer.store.sql import Connection


class InvariantQueries:
    """Invariant checks of the chain repository (SqlChainRepository)."""

    conn: Connection

    def invoices_at(self, addresses: Sequence[str]) -> dict[str, Invoice]:
        raise NotImplementedError  # SqlChainRepository's

    def transfers_without_payment(
        self,
        network: str,
        after: int,
        upto: int,
        issued: Callable[[Iterable[str]], set[str]],
    ) -> list[MissingPayment]:
        """Canonical transfers of blocks `after+1..upto` to issued addresses with no payment row.

        `issued` screens addresses against the issued set (the matcher); only a transfer to an
        address whose invoice is on `network` must have a payment (one on another network is
        rightly ignored by the indexer).
        """
        rows = self.conn.execute(
            "SELECT t.tx_hash, t.log_index, t.block_number, t.to_address FROM transfers t "
            "WHERE t.network = ? AND t.block_number > ? AND t.block_number <= ? "
            "AND NOT t.orphaned AND t.amount > 0 AND NOT EXISTS ("
            "  SELECT 1 FROM payments p WHERE p.network = t.network AND p.tx_hash = t.tx_hash "
            "  AND p.log_index = t.log_index)",
            [network, after, upto],
        ).fetchall()
        if not rows:
            return []
        hits = issued(row[3] for row in rows)
        if not hits:
            return []
        invoices = self.invoices_at(sorted(hits))
        missing = []
        for tx_hash, log_index, block_number, to_address in rows:
            invoice = invoices.get(to_address)
            if to_address in hits and (invoice is None or invoice.network == network):
                invoice_id = invoice.id if invoice is not None else "(unreadable)"
                missing.append(
                    MissingPayment(
                        network, tx_hash, log_index, block_number, to_address, invoice_id
                    )
                )
        return missing
