"""DuckDB connections that one thread owns, the migrations, and the row helpers of the adapter."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from indexer.store.errors import ConnectionShared, DatabaseLocked, StorageCorrupt, StoreError

log = logging.getLogger(__name__)


class OwnedConnection:
    """A DuckDB connection that only the thread which opened it may use.

    DuckDB 2.0 does not serialise two threads on one connection: they can be refused ("connection
    is busy"), take each other's result sets, or get an empty one. That lost payments (issue 10:
    /readyz's query on the writer's connection emptied the block job's invoice lookup). So every
    thread opens its own connection (`Database.connect()`), and this wrapper refuses any use from
    another thread or after the connection is retired, instead of answering wrongly.
    """

    __slots__ = ("_label", "_owner", "_raw", "_retired")

    def __init__(self, raw: duckdb.DuckDBPyConnection, label: str) -> None:
        self._raw = raw
        self._label = label
        self._owner = threading.get_ident()
        self._retired = False

    def _checked(self) -> duckdb.DuckDBPyConnection:
        if self._retired:
            raise ConnectionShared(f"the {self._label} connection is retired")
        if threading.get_ident() != self._owner:
            raise ConnectionShared(
                f"the {self._label} connection belongs to another thread; open one per thread"
            )
        return self._raw

    def execute(self, query: str, parameters: object = None) -> OwnedConnection:
        raw = self._checked()
        if parameters is None:
            raw.execute(query)
        else:
            raw.execute(query, parameters)
        return self

    def executemany(self, query: str, parameters: object) -> OwnedConnection:
        self._checked().executemany(query, parameters)
        return self

    def fetchone(self) -> Any:
        return self._checked().fetchone()

    def fetchall(self) -> list[Any]:
        return self._checked().fetchall()

    def __getattr__(self, name: str) -> Any:  # the rest of DuckDB's API, checked alike
        return getattr(self._checked(), name)

    def retire(self) -> None:
        """Close it; any later use raises. Only while its owner is not using it."""
        self._retired = True
        with contextlib.suppress(duckdb.Error):
            self._raw.close()


Connection = OwnedConnection


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The numbered migrations shipped with the package, in order."""
    found = []
    for entry in resources.files("indexer.store.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append(Migration(int(name[:3]), name[:-4], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 001, 002, … without gaps: {versions}")
    return found


def open_raw(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """DuckDB's connection to a database file, created (with its directory) private to us.

    The file holds webhook secrets and xpubs: it is made 0600 and a directory we create 0700,
    whatever the umask (`chainpay` also sets umask 077, for the WAL, backups and exports).
    """
    path = Path(path)
    if not read_only and str(path) != ":memory:":
        with contextlib.suppress(OSError):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        raw = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseLocked(
                f"{path} is in use by another process (is `chainpay serve` running?)"
            ) from None
        if "not a valid" in str(exc).lower():
            raise StorageCorrupt(f"cannot open {path}: {exc}") from None
        raise StoreError(f"cannot open {path}: {exc}") from None
    except duckdb.Error as exc:  # a corrupt file, a newer storage version
        raise StorageCorrupt(f"cannot open {path}: {exc}") from None
    if not read_only and str(path) != ":memory:":
        for own in (path, Path(f"{path}.wal")):
            with contextlib.suppress(OSError):
                own.chmod(0o600)
    return raw


def open_connection(path: Path | str, read_only: bool = False) -> Connection:
    """A connection for the calling thread alone (CLI commands, backups, migrations)."""
    return OwnedConnection(open_raw(path, read_only), str(path))


def bulk_insert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    casts: Mapping[str, str] | None = None,
) -> None:
    """Insert many rows with one list parameter per column, unnested side by side.

    DuckDB binds parameters slowly (~15 us each), so a multi-row VALUES of 20 columns runs at
    ~4,000 rows/s; one list per column keeps the parameter count fixed: ~11,000 rows/s in
    batches of 32 and ~40,000 in batches of 256 (measured here). `casts` maps a column to a
    SQL type for values sent as text (BIGNUM amounts, JSON).
    """
    if not rows:
        return
    casts = casts or {}
    selects = ", ".join(f"unnest(?)::{casts[c]}" if c in casts else "unnest(?)" for c in columns)
    values = [list(column) for column in zip(*rows, strict=True)]
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selects}", values)


def applied_versions(conn: Connection) -> list[int]:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return []
    return [
        row[0]
        for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    ]


def pending_migrations(conn: Connection) -> list[Migration]:
    done = set(applied_versions(conn))
    known = migrations()
    newer = done - {m.version for m in known}
    if newer:
        raise StoreError(
            f"the database has schema versions {sorted(newer)} that this chainpay does not know: "
            "it was written by a newer release"
        )
    return [m for m in known if m.version not in done]


def migrate(conn: Connection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns what was applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    applied = []
    for migration in pending_migrations(conn):
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.name, datetime.now(UTC)],
            )
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        log.info("applied migration %s", migration.name)
        applied.append(migration)
    return applied


@dataclass(frozen=True)
class Append:
    """One row to insert, collected across a group commit into one appender flush per table.

    Values are converted by the column's type: amounts as decimal text (BIGNUM), JSON as text.
    """

    table: str
    columns: tuple[str, ...]
    row: tuple[Any, ...]
