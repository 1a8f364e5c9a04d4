"""Queries on stores and their API keys."""

from __future__ import annotations

from datetime import datetime

from indexer.store.rows import ApiKeyRow, StoreRow
from indexer.store.sql import Connection


class DuckStoreRepository:
    """The stores repository of the DuckDB adapter: its SQL on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert_store(self, store: StoreRow) -> None:
        self.conn.execute(
            "INSERT INTO stores VALUES (?, ?, ?, ?, ?)",
            [store.id, store.name, store.evm_xpub, store.xpub_chain, store.created_at],
        )

    def store_by_chain(self, xpub_chain: str) -> StoreRow | None:
        row = self.conn.execute(
            "SELECT id, name, evm_xpub, xpub_chain, created_at FROM stores WHERE xpub_chain = ?",
            [xpub_chain],
        ).fetchone()
        return StoreRow(*row) if row else None

    def all_stores(self) -> list[StoreRow]:
        rows = self.conn.execute(
            "SELECT id, name, evm_xpub, xpub_chain, created_at FROM stores ORDER BY created_at"
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
