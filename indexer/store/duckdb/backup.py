"""Backups and restores of the DuckDB store.

A backup is a new DuckDB file filled by `COPY FROM DATABASE` inside one read transaction on its
own cursor: the copy sees one snapshot (MVCC), so it is consistent, and the gateway's writer
keeps committing meanwhile. It copies tables, indexes, constraints and sequences (a sequence
comes over at its current value, never below the snapshot's rows, so restored ids never repeat).
The file is checkpointed and renamed into place only when complete.

A restore refuses while a process holds the database, verifies that the backup opens and that
its schema version is one this chainpay knows, keeps the old file as `<database>.bak` and swaps
the backup in with a rename.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from indexer.store.duckdb.connection import (
    Connection,
    applied_versions,
    open_connection,
    pending_migrations,
)
from indexer.store.errors import DatabaseLocked, StoreError


class BackupError(StoreError):
    """The backup cannot be written, or a file is not a usable chainpay backup."""


@dataclass(frozen=True)
class BackupInfo:
    schema_version: int
    pending: list[str]
    tables: dict[str, int]


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_backup(conn: Connection, out: Path) -> dict[str, Any]:
    """Copy the database `conn` is using into the new file `out` from one snapshot.

    `conn` must be a cursor that no other thread uses.
    """
    out = out.resolve()
    if out.exists():
        raise BackupError(f"{out} already exists")
    partial = out.with_name(out.name + ".partial")
    for leftover in (partial, _wal(partial)):
        leftover.unlink(missing_ok=True)
    alias = "chainpay_backup_" + secrets.token_hex(4)
    started = time.perf_counter()
    row = conn.execute("SELECT current_database()").fetchone()
    source = str(row[0]) if row else "main"
    try:
        conn.execute(f"ATTACH {_sql_text(str(partial))} AS {alias} (READ_WRITE)")
    except duckdb.Error as exc:
        raise BackupError(f"cannot create the backup file {out}: {exc}") from None
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(f'COPY FROM DATABASE "{source}" TO {alias}')
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # Fold the WAL into the file: the backup must be one self-contained file.
        conn.execute(f"CHECKPOINT {alias}")
    except BaseException as exc:
        conn.execute(f"DETACH {alias}")
        for leftover in (partial, _wal(partial)):
            leftover.unlink(missing_ok=True)
        if isinstance(exc, duckdb.Error):  # disk full, permissions: say so, not a 500
            raise BackupError(f"cannot write the backup to {out}: {exc}") from None
        raise
    conn.execute(f"DETACH {alias}")
    copy_seconds = time.perf_counter() - started
    info = inspect_backup(partial)
    os.replace(partial, out)
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "seconds": round(copy_seconds, 3),
        "schema_version": info.schema_version,
        "tables": info.tables,
    }


def backup_file(database: Path, out: Path) -> dict[str, Any]:
    """Back up a database no gateway is running on. Raises DatabaseLocked if one is."""
    if not database.exists():
        raise BackupError(f"no database at {database}")
    conn = open_connection(database, read_only=True)
    try:
        return write_backup(conn, out)
    finally:
        conn.close()


def inspect_backup(path: Path) -> BackupInfo:
    """Open a backup read-only and check it is a chainpay database this release can run."""
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    try:
        conn = open_connection(path, read_only=True)
    except StoreError as exc:
        raise BackupError(f"{path} is not a DuckDB database: {exc}") from None
    try:
        versions = applied_versions(conn)
        if not versions:
            raise BackupError(f"{path} is not a chainpay database (no schema_migrations)")
        pending = [m.name for m in pending_migrations(conn)]  # raises on unknown versions
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY 1"
            ).fetchall()
        ]
        tables = {}
        for name in names:  # reading every table proves the file is readable end to end
            counted = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            tables[name] = int(counted[0]) if counted else 0
    except duckdb.Error as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    finally:
        conn.close()
    return BackupInfo(max(versions), pending, tables)


RESTORE_ADDRESS_GAP = 1000


def restore_file(
    backup: Path, database: Path, force: bool = False, address_gap: int = RESTORE_ADDRESS_GAP
) -> dict[str, Any]:
    """Replace `database` by a copy of `backup`; the old file is kept as `<database>.bak`.

    Invoices created after the backup are lost, but their addresses may be in customers' hands:
    every store's next HD index is pushed `address_gap` past the backup's highest one.
    """
    info = inspect_backup(backup)
    previous = database.with_name(database.name + ".bak")
    incoming = database.with_name(database.name + ".restoring")
    replacing = database.exists()
    if replacing:
        if not force:
            raise BackupError(f"{database} exists: pass --force to replace it (kept as {previous})")
        try:
            holder = open_connection(database)
        except DatabaseLocked:
            raise DatabaseLocked(
                f"{database} is in use: stop `chainpay serve` before restoring"
            ) from None
        try:
            holder.execute("CHECKPOINT")  # fold any WAL into the old file before it moves
        finally:
            holder.close()
    try:
        shutil.copyfile(backup, incoming)
        _set_address_floors(incoming, address_gap)
        for old, kept in ((database, previous), (_wal(database), _wal(previous))):
            if old.exists():
                os.replace(old, kept)
            elif replacing:
                kept.unlink(missing_ok=True)
        os.replace(incoming, database)
    finally:
        incoming.unlink(missing_ok=True)
    return {
        "database": str(database),
        "previous": str(previous) if replacing else None,
        "schema_version": info.schema_version,
        "pending_migrations": info.pending,
        "tables": info.tables,
    }


def _set_address_floors(path: Path, gap: int) -> None:
    conn = open_connection(path)
    try:
        conn.execute(resources_sql("004_address_floors.sql"))
        conn.execute(
            "INSERT OR REPLACE INTO address_index_floors "
            "SELECT s.id, coalesce(max(i.address_index) + 1, 0) + ?, 'restore', now() "
            "FROM stores s LEFT JOIN invoices i ON i.store_id = s.id GROUP BY s.id",
            [gap],
        )
        conn.execute("CHECKPOINT")
    finally:
        conn.close()


def resources_sql(name: str) -> str:
    from importlib import resources

    return resources.files("indexer.store.migrations").joinpath(name).read_text(encoding="utf-8")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")
