"""DuckDB connections that one thread owns, the migrations, and the row helpers of the adapter."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

import duckdb

from indexer.store.errors import ConnectionShared, DatabaseLocked, StorageCorrupt, StoreError
from indexer.store.sql import (
    Append as Append,
)
from indexer.store.sql import (
    Migration as Migration,
)
from indexer.store.sql import (
    applied_versions as applied_versions,
)
from indexer.store.sql import (
    bulk_insert as bulk_insert,
)
from indexer.store.sql import (
    migrate as migrate,
)
from indexer.store.sql import (
    migrations as migrations,
)
from indexer.store.sql import (
    pending_migrations as pending_migrations,
)

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
