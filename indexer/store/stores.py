"""Queries on stores and their API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from indexer.store.database import Connection


@dataclass(frozen=True)
class StoreRow:
    id: str
    name: str
    evm_xpub: str
    xpub_chain: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    store_id: str
    key_hash: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def insert_store(conn: Connection, store: StoreRow) -> None:
    conn.execute(
        "INSERT INTO stores VALUES (?, ?, ?, ?, ?)",
        [store.id, store.name, store.evm_xpub, store.xpub_chain, store.created_at],
    )


def store_by_chain(conn: Connection, xpub_chain: str) -> StoreRow | None:
    row = conn.execute(
        "SELECT id, name, evm_xpub, xpub_chain, created_at FROM stores WHERE xpub_chain = ?",
        [xpub_chain],
    ).fetchone()
    return StoreRow(*row) if row else None


def all_stores(conn: Connection) -> list[StoreRow]:
    rows = conn.execute(
        "SELECT id, name, evm_xpub, xpub_chain, created_at FROM stores ORDER BY created_at"
    ).fetchall()
    return [StoreRow(*r) for r in rows]


def insert_api_key(conn: Connection, key: ApiKeyRow) -> None:
    conn.execute(
        "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?)",
        [key.id, key.store_id, key.key_hash, key.prefix, key.created_at, key.revoked_at],
    )


def revoke_api_key(conn: Connection, key_id: str, now: datetime) -> ApiKeyRow | None:
    row = conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
        "RETURNING id, store_id, key_hash, prefix, created_at, revoked_at",
        [now, key_id],
    ).fetchone()
    return ApiKeyRow(*row) if row else None


def active_api_keys(conn: Connection) -> list[ApiKeyRow]:
    rows = conn.execute(
        "SELECT id, store_id, key_hash, prefix, created_at, revoked_at FROM api_keys "
        "WHERE revoked_at IS NULL"
    ).fetchall()
    return [ApiKeyRow(*r) for r in rows]
