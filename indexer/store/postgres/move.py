"""Moving a DuckDB file into an empty PostgreSQL database (`chainpay migrate-to URL`).

Everything is copied in one PostgreSQL transaction: every table the migrations made, row for
row (amounts and JSON as exact text), then the event sequence is set past the last event, so
events keep their order and new ones follow. Leases are not copied: they belong to processes.
The target must be empty (no store, no invoice): a second run, or a run into a database already
in use, is refused before anything is written. The DuckDB file is opened read-only and left as
it was; the gateway must be stopped (DuckDB's lock says so otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import IsolationLevel

from indexer.store.duckdb.connection import open_connection
from indexer.store.errors import StoreError
from indexer.store.postgres.database import PostgresStorage, redacted, translated
from indexer.store.sql import pending_migrations

SKIPPED = {"schema_migrations", "leases"}


class TargetNotEmpty(StoreError):
    """The PostgreSQL database already holds chainpay data: moving into it is refused."""


def move(duckdb_path: Path, url: str) -> dict[str, int]:
    """Copy `duckdb_path` into the PostgreSQL database at `url`; rows copied per table."""
    source = open_connection(duckdb_path, read_only=True)
    try:
        if pending_migrations(source):
            raise StoreError(f"{duckdb_path} needs migrations first: run `chainpay migrate`")
        target = PostgresStorage(url, pool_size=2)
        try:
            target.migrate()
            with _translated(), psycopg.connect(url, autocommit=True) as raw:
                raw.isolation_level = IsolationLevel.SERIALIZABLE
                with raw.transaction():
                    _refuse_unless_empty(raw, url)
                    copied = {
                        table: _copy(source, raw, table)
                        for table in _tables(source)
                        if table not in SKIPPED
                    }
                    raw.execute(
                        b"SELECT setval('event_seq', greatest((SELECT coalesce(max(seq), 0) "
                        b"FROM events), 1), (SELECT count(*) > 0 FROM events))"
                    )
            return copied
        finally:
            target._close_sync()
    finally:
        source.retire()


@contextmanager
def _translated() -> Iterator[None]:
    """PostgreSQL's errors as the store's, so the CLI says one line, never a traceback."""
    try:
        yield
    except psycopg.Error as exc:
        raise translated(exc) from exc


def _refuse_unless_empty(raw: psycopg.Connection[Any], url: str) -> None:
    for table in ("stores", "invoices", "events"):
        row = raw.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
        if row and row[0]:
            raise TargetNotEmpty(
                f"{redacted(url)} already holds chainpay data ({table} has {row[0]} rows): "
                "migrate-to copies into an empty database only"
            )


def _tables(source: Any) -> list[str]:
    return [
        row[0]
        for row in source.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    ]


def _copy(source: Any, raw: psycopg.Connection[Any], table: str) -> int:
    columns = source.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()
    names = [name for name, _ in columns]
    select = ", ".join(
        f'"{name}"::VARCHAR' if kind in ("BIGNUM", "JSON") else f'"{name}"'
        for name, kind in columns
    )
    rows = source.execute(f'SELECT {select} FROM "{table}"').fetchall()
    raw.execute(f'DELETE FROM "{table}"'.encode())  # what the migrations seeded (outbox_cursor)
    if not rows:
        return 0
    # lists (VARCHAR[]) go as binary text[]; a lone string as unknown, cast by its column
    marks = ", ".join("%b" if kind.endswith("[]") else "%s" for _, kind in columns)
    quoted = ", ".join(f'"{name}"' for name in names)
    with raw.cursor() as cursor:
        cursor.executemany(
            f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})'.encode(), [tuple(r) for r in rows]
        )
    return len(rows)
