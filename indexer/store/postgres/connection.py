"""A psycopg connection that speaks the repositories' SQL (see dialect.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import psycopg

from indexer.store.postgres.dialect import translate


class PgConnection:
    """The SqlConnection interface over one psycopg connection, inside its transaction."""

    __slots__ = ("_cursor", "raw")

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self._cursor: psycopg.Cursor[Any] | None = None

    def execute(self, query: str, parameters: object = None) -> PgConnection:
        if parameters is None:
            self._cursor = self.raw.execute(translate(query, False).encode())
        else:
            sql, values = _typed(translate(query), parameters)
            self._cursor = self.raw.execute(sql.encode(), values)
        return self

    def insert_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        casts: Mapping[str, str] | None = None,
    ) -> None:
        """`sql.bulk_insert` on PostgreSQL: a multi-row INSERT through psycopg's pipeline
        (lists of columns would need an element type for every all-NULL column)."""
        casts = casts or {}
        marks = ", ".join(
            f"%s::{translate(casts[c], False)}" if c in casts else "%s" for c in columns
        )
        query = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        with self.raw.cursor() as cursor:
            cursor.executemany(query.encode(), [tuple(row) for row in rows])

    def executemany(self, query: str, parameters: object) -> PgConnection:
        cursor = self.raw.cursor()
        cursor.executemany(translate(query).encode(), cast(Any, parameters))
        self._cursor = cursor
        return self

    def tx_horizon(self) -> int:
        """The oldest transaction still running when this transaction's snapshot was taken."""
        row = self.raw.execute(b"SELECT txid_snapshot_xmin(txid_current_snapshot())").fetchone()
        assert row is not None
        return int(row[0])

    def fetchone(self) -> Any:
        assert self._cursor is not None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        assert self._cursor is not None
        return self._cursor.fetchall()


def _typed(sql: str, parameters: object) -> tuple[str, Any]:
    """Lists of strings as binary `text[]` (`%b`); everything else as psycopg chooses."""
    if not isinstance(parameters, list | tuple):
        return sql, parameters
    pieces = sql.split("%s")
    if len(pieces) != len(parameters) + 1:
        return sql, parameters
    out = [pieces[0]]
    for value, piece in zip(parameters, pieces[1:], strict=True):
        textual = isinstance(value, list) and any(isinstance(v, str) for v in value)
        out.append(("%b" if textual else "%s") + piece)
    return "".join(out), list(parameters)
