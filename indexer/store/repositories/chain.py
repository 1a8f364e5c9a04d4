"""Queries on what the indexer keeps of each chain: cursors, recent blocks, transfers, payments.

Every function runs inside the caller's transaction (the block job), so a block's transfers,
payments, confirmations and cursor move commit together. Amounts are BIGNUM in, ints out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from indexer.domain.records import Invoice, Payment
from indexer.domain.sweep import Sweep
from indexer.domain.transfer import Transfer
from indexer.store.repositories.base import Repository
from indexer.store.repositories.invariants import InvariantQueries
from indexer.store.repositories.invoices import SqlInvoiceRepository
from indexer.store.repositories.reconciliation import ReconciliationQueries
from indexer.store.repositories.unswept import UnsweptQueries
from indexer.store.rows import BLOCKS_KEPT, Cursor, PendingPayment, StoredBlock
from indexer.store.sql import bulk_insert

# -- cursors and blocks ---------------------------------------------------------------------


# -- transfers --------------------------------------------------------------------------------
_TRANSFER_COLUMNS = (
    "network", "block_number", "block_hash", "block_time", "tx_hash", "log_index", "kind",
    "asset", "token", "from_address", "to_address", "amount",
)  # fmt: skip
_INSERT_CHUNK = 10_000
_SWEEP_COLUMNS = (
    "network", "block_number", "block_hash", "block_time", "tx_hash", "log_index", "address",
    "treasury", "asset", "token", "amount",
)  # fmt: skip
_SWEEP_SELECT = ", ".join(
    "amount::VARCHAR" if c == "amount" else c for c in (*_SWEEP_COLUMNS, "orphaned")
)


# -- payments ---------------------------------------------------------------------------------


# -- reorgs -----------------------------------------------------------------------------------


# -- balance reconciliation (nodes without traces) ---------------------------------------------


class SqlChainRepository(ReconciliationQueries, InvariantQueries, UnsweptQueries, Repository):
    """The chain repository: its SQL on one connection."""

    def get_cursor(self, network: str) -> Cursor | None:
        row = self.conn.execute(
            "SELECT block_number, block_hash FROM chain_cursors WHERE network = ?", [network]
        ).fetchone()
        return Cursor(row[0], row[1]) if row else None

    def cursor_block_time(self, network: str) -> datetime | None:
        """The timestamp of the cursor's block (kept in `blocks`); None before the first start."""
        row = self.conn.execute(
            "SELECT b.timestamp FROM chain_cursors c JOIN blocks b "
            "ON b.network = c.network AND b.number = c.block_number WHERE c.network = ?",
            [network],
        ).fetchone()
        return row[0] if row else None

    def save_cursor(self, network: str, cursor: Cursor, now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO chain_cursors VALUES (?, ?, ?, ?) ON CONFLICT (network) DO UPDATE SET "
            "block_number = excluded.block_number, block_hash = excluded.block_hash, "
            "updated_at = excluded.updated_at",
            [network, cursor.number, cursor.hash, now],
        )

    def insert_blocks(self, network: str, blocks: Sequence[StoredBlock]) -> None:
        if not blocks:
            return
        params: list[Any] = []
        for block in blocks:
            params += [network, block.number, block.hash, block.parent_hash, block.timestamp]
        self.conn.execute(
            "INSERT INTO blocks VALUES "
            + ",".join(["(?, ?, ?, ?, ?)"] * len(blocks))
            + " ON CONFLICT (network, number) DO UPDATE SET hash = excluded.hash, "
            "parent_hash = excluded.parent_hash, timestamp = excluded.timestamp",
            params,
        )

    def prune_blocks(self, network: str, head: int) -> None:
        self.conn.execute(
            "DELETE FROM blocks WHERE network = ? AND number <= ?", [network, head - BLOCKS_KEPT]
        )

    def block_hashes(self, network: str, low: int, high: int) -> dict[int, str]:
        """Stored canonical hashes of blocks `low..high` (those still kept)."""
        rows = self.conn.execute(
            "SELECT number, hash FROM blocks WHERE network = ? AND number BETWEEN ? AND ?",
            [network, low, high],
        ).fetchall()
        return {number: block_hash for number, block_hash in rows}

    def lowest_block(self, network: str) -> int | None:
        row = self.conn.execute(
            "SELECT min(number) FROM blocks WHERE network = ?", [network]
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def replace_transfers(
        self, network: str, blocks: Sequence[tuple[int, str]], transfers: Sequence[Transfer]
    ) -> None:
        """Store the transfers of `blocks` ((number, hash) pairs, ascending).

        Rows of an earlier visit of the same blocks (a branch that came back) are replaced. Rows go
        in as one list per column: DuckDB binds a list far faster than the same values one by one
        (~1.8 ms against ~11 ms for 100 transfers).
        """
        if not blocks:
            return
        self.conn.execute(
            "DELETE FROM transfers WHERE network = ? AND block_number BETWEEN ? AND ? "
            "AND block_hash IN (SELECT unnest(?))",
            [network, blocks[0][0], blocks[-1][0], [block_hash for _, block_hash in blocks]],
        )
        rows = [
            tuple(str(t.amount) if c == "amount" else getattr(t, c) for c in _TRANSFER_COLUMNS)
            for t in transfers
        ]
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            bulk_insert(self.conn, "transfers", _TRANSFER_COLUMNS, chunk, {"amount": "BIGNUM"})

    def replace_sweeps(
        self, network: str, blocks: Sequence[tuple[int, str]], sweeps: Sequence[Sweep]
    ) -> None:
        """Store the sweeps of `blocks` ((number, hash) pairs, ascending), replacing the rows of
        an earlier visit of the same blocks, so a replayed block never records a sweep twice."""
        if not blocks:
            return
        self.conn.execute(
            "DELETE FROM sweeps WHERE network = ? AND block_number BETWEEN ? AND ? "
            "AND block_hash IN (SELECT unnest(?))",
            [network, blocks[0][0], blocks[-1][0], [block_hash for _, block_hash in blocks]],
        )
        rows = [
            tuple(str(s.amount) if c == "amount" else getattr(s, c) for c in _SWEEP_COLUMNS)
            for s in sweeps
        ]
        bulk_insert(self.conn, "sweeps", _SWEEP_COLUMNS, rows, {"amount": "BIGNUM"})

    def list_sweeps(
        self,
        network: str,
        addresses: Sequence[str] | None = None,
        include_orphaned: bool = False,
    ) -> list[Sweep]:
        """Sweeps of `network` in chain order: of `addresses` (lowercase) when given, and of
        the canonical chain only unless `include_orphaned`."""
        query = f"SELECT {_SWEEP_SELECT} FROM sweeps WHERE network = ?" + (
            "" if include_orphaned else " AND NOT orphaned"
        )
        params: list[Any] = [network]
        if addresses is not None:
            if not addresses:
                return []
            query += " AND address IN (SELECT unnest(?))"
            params.append([a.lower() for a in addresses])
        rows = self.conn.execute(query + " ORDER BY block_number, log_index", params).fetchall()
        return [_sweep(row) for row in rows]

    def deposit_treasuries(self, network: str, addresses: Sequence[str]) -> dict[str, str]:
        """Of `addresses` (lowercase), those issued to this network's invoices of a forwarder
        store, each with the store's treasury on the network (both lowercase)."""
        if not addresses:
            return {}
        from eth_utils.address import to_checksum_address  # heavy: imported once hits exist

        forms = [form for a in addresses for form in (a.lower(), str(to_checksum_address(a)))]
        rows = self.conn.execute(
            "SELECT lower(i.address), lower(t.treasury) FROM invoices i JOIN store_treasuries t "
            "ON t.store_id = i.store_id AND t.network = i.network "
            "WHERE i.network = ? AND i.address IN (SELECT unnest(?))",
            [network, forms],
        ).fetchall()
        return {address: treasury for address, treasury in rows}

    def has_forwarder_stores(self, network: str) -> bool:
        """Whether a forwarder store has a treasury on `network` (its sweeps are watched)."""
        row = self.conn.execute(
            "SELECT count(*) FROM store_treasuries WHERE network = ?", [network]
        ).fetchone()
        return bool(row and row[0])

    def upsert_payments(self, payments: Sequence[Payment]) -> None:
        """Insert payments; one already known (re-included after a reorg) moves to its new block.

        The key (network, tx_hash, log_index) makes crediting happen once, whatever replays.
        """
        if not payments:
            return
        params: list[Any] = []
        for p in payments:
            params += [
                p.network, p.tx_hash, p.log_index, p.invoice_id, p.store_id, p.address, p.asset,
                str(p.amount), p.counted, p.block_number, p.block_hash, p.block_time,
                p.confirmations, p.state.value, p.first_seen_at, p.confirmed_at, p.updated_at,
            ]  # fmt: skip
        self.conn.execute(
            "INSERT INTO payments (network, tx_hash, log_index, invoice_id, store_id, address, "
            "asset, amount, counted, block_number, block_hash, block_time, confirmations, state, "
            "first_seen_at, confirmed_at, updated_at) VALUES "
            + ",".join(
                ["(?, ?, ?, ?, ?, ?, ?, ?::BIGNUM, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(payments)
            )
            + " ON CONFLICT (network, tx_hash, log_index) DO UPDATE SET "
            "block_number = excluded.block_number, block_hash = excluded.block_hash, "
            "block_time = excluded.block_time, confirmations = excluded.confirmations, "
            "state = excluded.state, confirmed_at = NULL, updated_at = excluded.updated_at",
            params,
        )

    def pending_payments(self, network: str) -> list[PendingPayment]:
        rows = self.conn.execute(
            "SELECT tx_hash, log_index, invoice_id, block_number, block_time FROM payments "
            "WHERE network = ? AND state = 'pending'",
            [network],
        ).fetchall()
        return [PendingPayment(*row) for row in rows]

    def update_confirmations(self, network: str, head: int, now: datetime) -> None:
        self.conn.execute(
            "UPDATE payments SET confirmations = greatest(? - block_number + 1, 0), updated_at = ? "
            "WHERE network = ? AND state = 'pending' "
            "AND confirmations <> greatest(? - block_number + 1, 0)",
            [head, now, network, head],
        )

    def confirm_payments(
        self, network: str, keys: Sequence[tuple[str, int]], head: int, now: datetime
    ) -> None:
        """Mark payments confirmed, with their depth at `head` frozen from then on."""
        for tx_hash, log_index in keys:
            self.conn.execute(
                "UPDATE payments SET state = 'confirmed', confirmations = ? - block_number + 1, "
                "confirmed_at = ?, updated_at = ? "
                "WHERE network = ? AND tx_hash = ? AND log_index = ?",
                [head, now, now, network, tx_hash, log_index],
            )

    def orphan_above(self, network: str, ancestor: int, now: datetime) -> list[str]:
        """Orphan transfers, sweeps and payments above `ancestor`; the invoices whose payments
        moved."""
        for table in ("transfers", "sweeps"):
            self.conn.execute(
                f"UPDATE {table} SET orphaned = true "
                "WHERE network = ? AND block_number > ? AND NOT orphaned",
                [network, ancestor],
            )
        rows = self.conn.execute(
            "SELECT DISTINCT invoice_id FROM payments "
            "WHERE network = ? AND block_number > ? AND state <> 'orphaned'",
            [network, ancestor],
        ).fetchall()
        self.conn.execute(
            "UPDATE payments SET state = 'orphaned', confirmations = 0, confirmed_at = NULL, "
            "updated_at = ? WHERE network = ? AND block_number > ? AND state <> 'orphaned'",
            [now, network, ancestor],
        )
        self.conn.execute(
            "DELETE FROM blocks WHERE network = ? AND number > ?", [network, ancestor]
        )
        return [row[0] for row in rows]

    def invoices_at(self, addresses: Sequence[str]) -> dict[str, Invoice]:
        """Invoices keyed by lowercase address, found through the address index.

        `invoices.address` is stored EIP-55, so each lowercase address is also asked for in its
        checksummed form: comparing `lower(address)` would scan every invoice (~70 ms at 1M).
        """
        if not addresses:
            return {}
        from eth_utils.address import to_checksum_address  # heavy: imported once hits exist

        forms = [form for a in addresses for form in (a.lower(), str(to_checksum_address(a)))]
        ids = [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM invoices WHERE address IN (SELECT unnest(?))", [forms]
            ).fetchall()
        ]
        found = SqlInvoiceRepository(self.conn).get_invoices(ids).values()
        return {invoice.address.lower(): invoice for invoice in found}

    def open_native_addresses(self, network: str, native_symbol: str, now: datetime) -> list[str]:
        """Lowercase addresses of this network's open invoices for its native coin."""
        rows = self.conn.execute(
            "SELECT lower(address) FROM invoices WHERE network = ? AND asset = ? "
            "AND status <> 'paid' AND monitoring_until > ?",
            [network, native_symbol, now],
        ).fetchall()
        return [row[0] for row in rows]


def _sweep(row: Sequence[Any]) -> Sweep:
    return Sweep(
        network=row[0],
        block_number=row[1],
        block_hash=row[2],
        block_time=row[3],
        tx_hash=row[4],
        log_index=row[5],
        address=row[6],
        treasury=row[7],
        asset=row[8],
        token=row[9],
        amount=int(row[10]),
        orphaned=row[11],
    )
