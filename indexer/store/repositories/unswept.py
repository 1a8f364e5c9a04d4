"""The unswept balance of forwarder deposit addresses, from the books (one query).

Per deposit address and asset: what confirmed payments credited minus what canonical sweeps
moved to the treasury, never below zero (a sweep may move a payment still pending, or coin the
books never credited), summed per (network, asset). Exact: BIGNUM sums, decimal text out.
"""

from __future__ import annotations

from indexer.store.sql import Connection

_UNSWEPT = (
    "SELECT c.network, c.asset, "
    "sum(greatest(c.amount - coalesce(w.amount, 0::BIGNUM), 0::BIGNUM))::VARCHAR "
    "FROM (SELECT p.network, p.address, p.asset, sum(p.amount) AS amount FROM payments p "
    "  JOIN stores s ON s.id = p.store_id "
    "  WHERE s.address_mode = 'forwarder' AND p.state = 'confirmed' "
    "  GROUP BY p.network, p.address, p.asset) c "
    "LEFT JOIN (SELECT network, address, asset, sum(amount) AS amount FROM sweeps "
    "  WHERE NOT orphaned GROUP BY network, address, asset) w "
    "ON w.network = c.network AND w.address = c.address AND w.asset = c.asset "
    "GROUP BY c.network, c.asset"
)


class UnsweptQueries:
    """The unswept balance query of the chain repository (SqlChainRepository)."""

    conn: Connection

    def unswept_amounts(self) -> dict[tuple[str, str], int]:
        """(network, asset) -> base units credited to forwarder deposit addresses, not swept."""
        rows = self.conn.execute(_UNSWEPT).fetchall()
        return {(network, asset): int(amount) for network, asset, amount in rows}
