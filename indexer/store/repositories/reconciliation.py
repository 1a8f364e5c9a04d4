"""Queries the chain fetcher needs to check what a node tells it: credits so far, open addresses.

Read-only; each runs in a snapshot read between two block jobs, so it sees every block up to
the cursor and nothing beyond it. Amounts are BIGNUM in the database, ints here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from indexer.store.sql import Connection


class ReconciliationQueries:
    """Reconciliation reads of the chain repository (SqlChainRepository)."""

    conn: Connection

    def native_credited(
        self, network: str, asset: str, addresses: Sequence[str], through_block: int
    ) -> dict[str, int]:
        """Native coin credited to each address (any invoice, counted or not) up to a block.

        Orphaned payments are left out: a reorg took them back, so the balance no longer holds them.
        """
        if not addresses:
            return {}
        rows = self.conn.execute(
            "SELECT address, amount::VARCHAR FROM payments WHERE network = ? AND asset = ? "
            "AND state <> 'orphaned' AND block_number <= ? AND address IN (SELECT unnest(?))",
            [network, asset, through_block, [a.lower() for a in addresses]],
        ).fetchall()
        credited: dict[str, int] = {}
        for address, amount in rows:
            credited[address] = credited.get(address, 0) + int(amount)
        return credited

    def open_addresses(self, network: str, now: datetime) -> list[str]:
        """Lowercase addresses of this network's invoices still watched (any asset)."""
        rows = self.conn.execute(
            "SELECT lower(address) FROM invoices WHERE network = ? AND status <> 'paid' "
            "AND monitoring_until > ?",
            [network, now],
        ).fetchall()
        return [row[0] for row in rows]
