"""The analyst export from PostgreSQL: the same Parquet files as from DuckDB.

DuckDB stays the analysts' engine. The analyst tables are read from PostgreSQL in one
REPEATABLE READ transaction (one snapshot: the tables agree with each other), loaded into an
in-memory DuckDB database built by the same numbered migrations, and written by the DuckDB
export itself — so the files, their types and their layout are identical on both backends, and
the queries in docs/analytics.md work unchanged. Amounts travel as decimal text, exact.
The whole snapshot is held in memory while it is written: fine for the tables' sizes a
gateway reaches between exports; a larger history wants an export by date range (not built).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from indexer.store.duckdb.connection import OwnedConnection, migrate
from indexer.store.duckdb.export import ANALYST_TABLES, write_snapshot


def export_snapshot(pool: ConnectionPool[Any], out: Path) -> dict[str, Any]:
    local = OwnedConnection(duckdb.connect(":memory:"), "export")
    try:
        migrate(local)
        with pool.connection() as raw:
            raw.isolation_level = IsolationLevel.REPEATABLE_READ
            raw.read_only = True
            with raw.transaction():
                for table in ANALYST_TABLES:
                    _copy(raw, local, table)
        return write_snapshot(local, out)
    finally:
        local.retire()


def _copy(raw: psycopg.Connection[Any], local: OwnedConnection, table: str) -> None:
    columns = [
        row[0]
        for row in local.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]
    if not columns:
        return
    types = dict(
        local.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
            [table],
        ).fetchall()
    )
    # wide integers and JSON as text: exact, and DuckDB parses them back by the column's type
    select = ", ".join(
        f'"{c}"::text' if types[c] in ("BIGNUM", "JSON") else f'"{c}"' for c in columns
    )
    rows = raw.execute(f'SELECT {select} FROM "{table}"'.encode()).fetchall()
    if rows:
        marks = ", ".join("?" for _ in columns)
        quoted = ", ".join(f'"{c}"' for c in columns)
        local.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', rows)
