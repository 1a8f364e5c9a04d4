"""What every repository of a unit of work shares: its connection and the transaction's batch."""

from __future__ import annotations

from indexer.store.errors import StoreError
from indexer.store.sql import Append, Connection


class Repository:
    """A repository on one connection; `add()`s go to the transaction's batch of rows (flushed
    by the adapter before COMMIT: DuckDB's appender, PostgreSQL's multi-row INSERT)."""

    def __init__(self, conn: Connection, appends: list[Append] | None = None) -> None:
        self.conn = conn
        self._appends = appends  # None in a read: it cannot write

    def _batch(self) -> list[Append]:
        if self._appends is None:
            raise StoreError("a read-only unit of work cannot write")
        return self._appends
