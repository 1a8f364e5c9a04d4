"""Exports and backups of a live gateway: each runs on its own DuckDB cursor in its own thread.

The gateway's reader pool (API reads) and its writer thread are left alone: a long export or
backup holds one read transaction on a separate cursor, and DuckDB's MVCC lets the writer keep
committing meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from indexer.store.backup import write_backup
from indexer.store.database import Connection, Database
from indexer.store.export import write_snapshot


async def _on_own_cursor(
    db: Database, fn: Callable[[Connection, Path], dict[str, Any]], out: Path
) -> dict[str, Any]:
    def run() -> dict[str, Any]:  # the connection is opened, used and closed on one thread
        conn = db.connect("snapshot")
        try:
            return fn(conn, out)
        finally:
            conn.retire()

    return await asyncio.to_thread(run)


async def export_snapshot(db: Database, out: Path) -> dict[str, Any]:
    """Parquet files of the analyst tables from one snapshot (see indexer.store.export)."""
    return await _on_own_cursor(db, write_snapshot, out)


async def backup_database(db: Database, out: Path) -> dict[str, Any]:
    """A consistent copy of the whole database in a new DuckDB file (see indexer.store.backup)."""
    return await _on_own_cursor(db, write_backup, out)
