"""The analyst export: a consistent Parquet copy of the analyst tables, taken from one snapshot.

One process writes the DuckDB file, so analysts never query it directly. Every table is copied
inside ONE read transaction on its own cursor: DuckDB's MVCC gives that transaction a snapshot,
so the tables agree with each other, and the gateway's writer is never blocked by it.

Tables are discovered from the schema among `ANALYST_TABLES` (a table that does not exist yet is
simply absent from the export); tables holding secrets or internals (API key hashes, webhook
secrets, idempotency replies, xpubs) are never exported. A table with a `network` column and a
time column is written as `<table>/network=<n>/day=<YYYY-MM-DD>/part_0.parquet` (hive layout,
the partition columns are also kept inside the files); others as `<table>/data.parquet`.

Wide integers: Parquet has no arbitrary-precision integer, and DuckDB writes BIGNUM as VARCHAR
and HUGEINT/UHUGEINT as DOUBLE (rounded). So every such column `c` is exported twice: `c` as
DECIMAL(38,0) (exact; NULL when the value needs more than 38 digits) and `c_text` as its exact
decimal string. Never cast a BIGNUM to a fixed-width number inside DuckDB: an out-of-range
BIGNUM → HUGEINT cast is an internal error that invalidates the whole database instance
(DuckDB 2.0); going through VARCHAR with TRY_CAST is safe.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from indexer.store.duckdb.connection import Connection, applied_versions
from indexer.store.errors import StoreError

ANALYST_TABLES = (
    "invoices",
    "payments",
    "transfers",
    "sweeps",
    "store_treasuries",
    "blocks",
    "chain_cursors",
    "events",
    "deliveries",
    "delivery_attempts",
)
# The first of these present (as a timestamp) is the table's partition day.
TIME_COLUMNS = ("block_time", "timestamp", "created_at", "first_seen_at", "attempted_at")
WIDE_INTEGERS = ("BIGNUM", "HUGEINT", "UHUGEINT")
_NEVER_EXPORTED = ("secret", "key_hash", "password")  # column-name fragments, belt and braces
_ONE_AT_A_TIME = threading.Lock()


class ExportError(StoreError):
    """The export cannot be written (target not empty, disk full, …)."""


@dataclass(frozen=True)
class TablePlan:
    name: str
    select: str
    partitioned: bool


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plan_tables(conn: Connection) -> list[TablePlan]:
    """What to export, from the live schema: existing analyst tables and their columns."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_catalog = current_database() "
        "ORDER BY table_name, ordinal_position"
    ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        columns.setdefault(table, []).append((column, data_type.upper()))
    plans = []
    for table in ANALYST_TABLES:
        if table not in columns:
            continue
        plans.append(_plan(table, columns[table]))
    return plans


def _plan(table: str, columns: list[tuple[str, str]]) -> TablePlan:
    parts: list[str] = []
    for column, data_type in columns:
        if any(fragment in column.lower() for fragment in _NEVER_EXPORTED):
            continue
        q = _quote(column)
        if data_type in WIDE_INTEGERS:
            parts.append(f"TRY_CAST({q}::VARCHAR AS DECIMAL(38,0)) AS {q}")
            parts.append(f"{q}::VARCHAR AS {_quote(column + '_text')}")
        else:
            parts.append(q)
    types = dict(columns)
    time_column = next((c for c in TIME_COLUMNS if types.get(c, "").startswith("TIMESTAMP")), None)
    partitioned = "network" in types and time_column is not None
    if partitioned:
        parts.append(f"({_quote(str(time_column))} AT TIME ZONE 'UTC')::DATE AS day")
    return TablePlan(table, f"SELECT {', '.join(parts)} FROM {_quote(table)}", partitioned)


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_snapshot(conn: Connection, out: Path) -> dict[str, Any]:
    """Copy every analyst table into `out` (must not exist) from one read transaction.

    `conn` must be a cursor no other thread uses. The files are written under `out.partial`
    and renamed at the end, so a directory named `out` is always a complete export; its
    `snapshot.json` says when the snapshot was taken and how many rows each table had.
    """
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty directory")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with _ONE_AT_A_TIME:
        try:
            summary = _copy_all(conn, partial)
        except BaseException as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(exc, duckdb.Error):  # disk full, permissions: say so, not a 500
                raise ExportError(f"cannot write the export to {out}: {exc}") from None
            raise
    (partial / "snapshot.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        out.rmdir()
    os.replace(partial, out)
    return summary


def _copy_all(conn: Connection, target: Path) -> dict[str, Any]:
    conn.execute("BEGIN TRANSACTION")
    try:
        # now() is the transaction's start: the instant the snapshot shows.
        taken = conn.execute("SELECT now()").fetchone()
        versions = applied_versions(conn)
        tables: dict[str, Any] = {}
        for table in plan_tables(conn):
            tables[table.name] = _copy_table(conn, table, target)
    finally:
        conn.execute("COMMIT")  # read-only: commit and rollback are the same
    taken_at = taken[0] if taken else datetime.now(UTC)
    return {
        "taken_at": taken_at.astimezone(UTC).isoformat(),
        "schema_version": max(versions, default=0),
        "tables": tables,
    }


def _copy_table(conn: Connection, table: TablePlan, target: Path) -> dict[str, Any]:
    counted = conn.execute(f"SELECT count(*) FROM {_quote(table.name)}").fetchone()
    rows = int(counted[0]) if counted else 0
    directory = target / table.name
    directory.mkdir()
    if table.partitioned and rows:
        conn.execute(
            f"COPY ({table.select}) TO {_sql_path(directory)} (FORMAT parquet, "
            "PARTITION_BY (network, day), WRITE_PARTITION_COLUMNS true, "
            "FILENAME_PATTERN 'part_{i}')"
        )
        layout = "network=<network>/day=<YYYY-MM-DD>/part_<n>.parquet"
    else:
        # An empty partitioned table still gets one file with its columns, so the documented
        # `<table>/**/*.parquet` globs always find a file and the same schema.
        name = "data.parquet" if rows or not table.partitioned else "empty.parquet"
        conn.execute(f"COPY ({table.select}) TO {_sql_path(directory / name)} (FORMAT parquet)")
        layout = name
    return {
        "rows": rows,
        "partitioned_by": ["network", "day"] if table.partitioned else [],
        "files": layout,
    }
