"""Idempotency keys: the first response to (store, key), replayed until the key is pruned.

Keys are pruned once older than the window (indexer.services.invoices.IDEMPOTENCY_WINDOW), a
bounded batch per transaction so a prune never holds the writer long.
"""

from __future__ import annotations

from datetime import datetime

from indexer.store.repositories.base import Repository
from indexer.store.rows import IdempotentResponse
from indexer.store.sql import Append


def response_append(item: IdempotentResponse) -> Append:
    row = (item.store_id, item.key, item.request_hash, item.status, item.response, item.created_at)
    columns = ("store_id", "key", "request_hash", "status", "response", "created_at")
    return Append("idempotency_keys", columns, row)


class SqlIdempotencyRepository(Repository):
    """The idempotency repository: its SQL on one connection."""

    def add(self, item: IdempotentResponse) -> None:
        self._batch().append(response_append(item))

    def all_responses(self) -> list[IdempotentResponse]:
        """Every kept key, old ones too: a key still in the table must replay, never collide."""
        rows = self.conn.execute(
            "SELECT store_id, key, request_hash, status, response::VARCHAR, created_at "
            "FROM idempotency_keys"
        ).fetchall()
        return [IdempotentResponse(*r) for r in rows]

    def get(self, store_id: str, key: str) -> IdempotentResponse | None:
        row = self.conn.execute(
            "SELECT store_id, key, request_hash, status, response::VARCHAR, created_at "
            "FROM idempotency_keys WHERE store_id = ? AND key = ?",
            [store_id, key],
        ).fetchone()
        return IdempotentResponse(*row) if row else None

    def delete_older_than(self, before: datetime, limit: int) -> list[tuple[str, str]]:
        """Delete at most `limit` keys created before `before`; return their (store_id, key)."""
        rows = self.conn.execute(
            "DELETE FROM idempotency_keys WHERE (store_id, key) IN "
            "(SELECT store_id, key FROM idempotency_keys WHERE created_at < ? LIMIT ?) "
            "RETURNING store_id, key",
            [before, limit],
        ).fetchall()
        return [(str(store_id), str(key)) for store_id, key in rows]
