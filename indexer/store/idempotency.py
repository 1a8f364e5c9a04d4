"""Idempotency keys: the first response to (store, key), replayed until the key is pruned.

Keys are pruned once older than the window (indexer.services.invoices.IDEMPOTENCY_WINDOW), a
bounded batch per transaction so a prune never holds the writer long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from indexer.store.database import Append, Connection


@dataclass(frozen=True)
class IdempotentResponse:
    store_id: str
    key: str
    request_hash: str
    status: int
    response: str
    created_at: datetime


def response_append(item: IdempotentResponse) -> Append:
    row = (item.store_id, item.key, item.request_hash, item.status, item.response, item.created_at)
    columns = ("store_id", "key", "request_hash", "status", "response", "created_at")
    return Append("idempotency_keys", columns, row)


def insert_response(conn: Connection, item: IdempotentResponse) -> None:
    conn.execute(
        "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?::JSON, ?)",
        [item.store_id, item.key, item.request_hash, item.status, item.response, item.created_at],
    )


def all_responses(conn: Connection) -> list[IdempotentResponse]:
    """Every kept key, old ones too: a key still in the table must replay, never collide."""
    rows = conn.execute(
        "SELECT store_id, key, request_hash, status, response::VARCHAR, created_at "
        "FROM idempotency_keys"
    ).fetchall()
    return [IdempotentResponse(*r) for r in rows]


def delete_older_than(conn: Connection, before: datetime, limit: int) -> list[tuple[str, str]]:
    """Delete at most `limit` keys created before `before`; return their (store_id, key)."""
    rows = conn.execute(
        "DELETE FROM idempotency_keys WHERE rowid IN "
        "(SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?) "
        "RETURNING store_id, key",
        [before, limit],
    ).fetchall()
    return [(str(store_id), str(key)) for store_id, key in rows]
