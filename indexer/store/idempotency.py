"""Idempotency keys: the first response to (store, key) is kept and replayed for 24 h at least."""

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


def recent_responses(conn: Connection, since: datetime) -> list[IdempotentResponse]:
    rows = conn.execute(
        "SELECT store_id, key, request_hash, status, response::VARCHAR, created_at "
        "FROM idempotency_keys WHERE created_at >= ?",
        [since],
    ).fetchall()
    return [IdempotentResponse(*r) for r in rows]


def delete_older_than(conn: Connection, before: datetime) -> int:
    row = conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < ? RETURNING 1", [before]
    ).fetchall()
    return len(row)
