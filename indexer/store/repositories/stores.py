"""Queries on stores and their API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from indexer.store.repositories.base import Repository
from indexer.store.rows import ApiKeyRow, DepositRow, StoreRow, TreasuryRow

_STORE_COLUMNS = "id, name, evm_xpub, xpub_chain, created_at, address_mode, salt_secret"


class SqlStoreRepository(Repository):
    """The stores repository: its SQL on one connection."""

    def reserve_indexes(self, store_id: str, count: int) -> int:
        """Reserve `count` consecutive HD indexes for the store; returns the first.

        Past every index issued or reserved before, and past any restore floor. Concurrent
        reservations serialize on the counter row (PostgreSQL retries the loser)."""
        self.conn.execute(
            "INSERT INTO address_counters (store_id, next_index) VALUES (?, 0) "
            "ON CONFLICT (store_id) DO NOTHING",
            [store_id],
        )
        row = self.conn.execute(
            "UPDATE address_counters SET next_index = greatest(next_index, "
            "(SELECT coalesce(max(address_index) + 1, 0) FROM invoices WHERE store_id = ?), "
            "(SELECT coalesce(max(floor), 0) FROM address_index_floors WHERE store_id = ?)) + ? "
            "WHERE store_id = ? RETURNING next_index",
            [store_id, store_id, count, store_id],
        ).fetchone()
        assert row is not None
        return int(row[0]) - count

    def release_indexes(self, store_id: str, first_unused: int, limit: int) -> bool:
        """Give back the unused end of a reserved block [first_unused, limit) if nobody
        reserved after it (a clean shutdown then leaves no gap); True if it was given back."""
        rows = self.conn.execute(
            "UPDATE address_counters SET next_index = ? WHERE store_id = ? AND next_index = ? "
            "RETURNING next_index",
            [first_unused, store_id, limit],
        ).fetchall()
        return bool(rows)

    def insert_store(self, store: StoreRow) -> None:
        self.conn.execute(
            "INSERT INTO stores (id, name, evm_xpub, xpub_chain, created_at, address_mode, "
            "salt_secret) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                store.id,
                store.name,
                store.evm_xpub,
                store.xpub_chain,
                store.created_at,
                store.address_mode,
                store.salt_secret,
            ],
        )

    def store_by_chain(self, xpub_chain: str) -> StoreRow | None:
        row = self.conn.execute(
            f"SELECT {_STORE_COLUMNS} FROM stores WHERE xpub_chain = ?",
            [xpub_chain],
        ).fetchone()
        return StoreRow(*row) if row else None

    def all_stores(self) -> list[StoreRow]:
        rows = self.conn.execute(
            f"SELECT {_STORE_COLUMNS} FROM stores ORDER BY created_at"
        ).fetchall()
        return [StoreRow(*r) for r in rows]

    def insert_api_key(self, key: ApiKeyRow) -> None:
        self.conn.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?)",
            [key.id, key.store_id, key.key_hash, key.prefix, key.created_at, key.revoked_at],
        )

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRow | None:
        row = self.conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
            "RETURNING id, store_id, key_hash, prefix, created_at, revoked_at",
            [now, key_id],
        ).fetchone()
        return ApiKeyRow(*row) if row else None

    def active_api_keys(self) -> list[ApiKeyRow]:
        rows = self.conn.execute(
            "SELECT id, store_id, key_hash, prefix, created_at, revoked_at FROM api_keys "
            "WHERE revoked_at IS NULL"
        ).fetchall()
        return [ApiKeyRow(*r) for r in rows]

    def insert_treasuries(self, rows: Sequence[TreasuryRow]) -> None:
        for row in rows:
            self.conn.execute(
                "INSERT INTO store_treasuries (store_id, network, treasury, factory, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [row.store_id, row.network, row.treasury, row.factory, row.created_at],
            )

    def all_treasuries(self) -> list[TreasuryRow]:
        rows = self.conn.execute(
            "SELECT store_id, network, treasury, factory, created_at FROM store_treasuries "
            "ORDER BY store_id, network"
        ).fetchall()
        return [TreasuryRow(*r) for r in rows]

    def forwarder_deposits(self, network: str) -> list[DepositRow]:
        rows = self.conn.execute(
            "SELECT i.store_id, i.address, i.address_index FROM invoices i "
            "JOIN stores s ON s.id = i.store_id "
            "WHERE s.address_mode = 'forwarder' AND i.network = ? AND EXISTS ("
            "  SELECT 1 FROM payments p WHERE p.invoice_id = i.id AND p.state = 'confirmed'"
            ") ORDER BY i.store_id, i.address_index",
            [network],
        ).fetchall()
        return [DepositRow(*r) for r in rows]
