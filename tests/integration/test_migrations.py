"""Migrations on upgrade: from every earlier schema version to the current one, data intact.

An old database is built with the real `migrate()` limited to the first migrations (as an
earlier release shipped them), given rows, then upgraded by the real `chainpay migrate`. Its
schema must then equal a freshly migrated database's, column for column, index for index.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from indexer.store import sql as database
from indexer.store.duckdb.export import ANALYST_TABLES
from indexer.store.sql import Migration, migrate, migrations
from tests.support.api import TEST_XPUB, write_config
from tests.support.process import run

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 6, 1, tzinfo=UTC)
UINT256_MAX = 2**256 - 1


def schema(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {
            "columns": conn.execute(
                "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, "
                "column_default FROM information_schema.columns WHERE table_schema = 'main' "
                "ORDER BY ALL"
            ).fetchall(),
            "indexes": conn.execute(
                "SELECT table_name, index_name, is_unique, expressions FROM duckdb_indexes() "
                "ORDER BY ALL"
            ).fetchall(),
            "constraints": conn.execute(
                "SELECT table_name, constraint_type, constraint_column_names "
                "FROM duckdb_constraints() WHERE schema_name = 'main' ORDER BY ALL"
            ).fetchall(),
            "sequences": conn.execute(
                "SELECT sequence_name FROM duckdb_sequences() ORDER BY ALL"
            ).fetchall(),
        }


def migrate_up_to(path: Path, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real migrate(), as a release that shipped only migrations 1..version would run it."""
    shipped: list[Migration] = [m for m in migrations() if m.version <= version]
    with monkeypatch.context() as patch:
        patch.setattr(database, "migrations", lambda: shipped)
        with duckdb.connect(str(path)) as conn:
            migrate(conn)


def fill(path: Path) -> None:
    """Rows in the tables every schema version has (001), including a uint256 amount."""
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "INSERT INTO stores (id, name, evm_xpub, xpub_chain, created_at) "
            "VALUES ('st_1', 'Shop', ?, ?, ?)",
            [TEST_XPUB, TEST_XPUB + "/0", NOW],
        )
        conn.execute(
            "INSERT INTO api_keys VALUES ('key_1', 'st_1', 'ab12', 'cpk_ab', ?, NULL)", [NOW]
        )
        conn.execute(
            "INSERT INTO invoices (id, store_id, network, asset, amount, address, address_index, "
            "status, exception, amount_received, amount_confirmed, reorg_flagged, order_id, "
            "metadata, redirect_url, expires_at, monitoring_until, created_at, updated_at, paid_at) "
            "VALUES ('inv_1', 'st_1', 'ethereum', 'USDT', ?, "
            "'0xAbC0000000000000000000000000000000000001', 0, 'paid', 'overpaid', ?, ?, false, "
            "'order-1', '{\"k\": 1}', NULL, ?, ?, ?, ?, ?)",
            [str(UINT256_MAX - 1), str(UINT256_MAX), str(UINT256_MAX), NOW, NOW, NOW, NOW, NOW],
        )
        conn.execute(
            "INSERT INTO payments VALUES ('ethereum', '0x01', 0, 'inv_1', 'st_1', "
            "'0xabc0000000000000000000000000000000000001', 'USDT', ?, true, 7, '0xbb', ?, 12, "
            "'confirmed', ?, ?, ?)",
            [str(UINT256_MAX), NOW, NOW, NOW, NOW],
        )
        conn.execute(
            "INSERT INTO events (id, store_id, type, invoice_id, payload, created_at) "
            "VALUES ('evt_1', 'st_1', 'invoice.paid', 'inv_1', '{}', ?)",
            [NOW],
        )
        conn.execute("INSERT INTO idempotency_keys VALUES ('st_1', 'k', 'h', 201, '{}', ?)", [NOW])


def contents(
    path: Path, tables: list[str], columns: dict[str, list[str]] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `tables`; only the given columns when a later migration added more."""
    with duckdb.connect(str(path), read_only=True) as conn:
        result = {}
        for t in tables:
            names = ", ".join(f'"{c}"' for c in columns[t]) if columns else "*"
            result[t] = conn.execute(f'SELECT {names} FROM "{t}" ORDER BY ALL').fetchall()
        return result


def column_names(path: Path, tables: list[str]) -> dict[str, list[str]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {
            t: [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                    "ORDER BY ordinal_position",
                    [t],
                ).fetchall()
            ]
            for t in tables
        }


def user_tables(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                "AND table_name <> 'schema_migrations' ORDER BY 1"
            ).fetchall()
        ]


def test_there_is_a_previous_schema_version_to_upgrade_from() -> None:
    assert len(migrations()) >= 2


@pytest.mark.parametrize("previous", range(1, len(migrations())), ids=lambda v: f"from-{v:03d}")
def test_chainpay_migrate_upgrades_a_previous_version_keeping_every_row(
    tmp_path: Path, previous: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    old = tmp_path / "chainpay.duckdb"
    migrate_up_to(old, previous, monkeypatch)
    fill(old)
    tables = user_tables(old)
    before = contents(old, tables)
    columns = column_names(old, tables)  # a migration may add columns: the old ones must keep

    result = run("--config", str(config), "migrate")

    assert result.returncode == 0, result.stderr
    expected = [m.name for m in migrations() if m.version > previous]
    assert all(name in result.stdout for name in expected)
    assert contents(old, tables, columns) == before
    fresh = tmp_path / "fresh.duckdb"
    with duckdb.connect(str(fresh)) as conn:
        migrate(conn)
    assert schema(old) == schema(fresh)


# --- the declared schema: docs/analytics.md's tables are the analysts' stable interface ---------


def documented_tables() -> dict[str, list[tuple[str, str]]]:
    """### table -> [(column, type)] from the markdown tables under "## Tables"."""
    text = (ROOT / "docs" / "analytics.md").read_text(encoding="utf-8")
    start = text.index("\n## Tables\n")
    section = text[start : text.index("\n## ", start + 1)]
    declared = {}
    for name, body in re.findall(r"\n### (\w+)\n(.*?)(?=\n### |\Z)", section, flags=re.S):
        rows = re.findall(r"^\| `(\w+)` \| ([A-Z][A-Z0-9(), \[\]]*?) \|", body, flags=re.M)
        declared[name] = rows
    return declared


ALIASES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}  # information_schema spells it out


def test_migrating_an_empty_database_yields_the_declared_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    with duckdb.connect(str(path)) as conn:
        migrate(conn)
        actual = {
            table: conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            for table in ANALYST_TABLES
        }
    actual = {t: [(c, ALIASES.get(d, d)) for c, d in cols] for t, cols in actual.items()}
    exported = {table for table, columns in actual.items() if columns}
    declared = documented_tables()

    assert exported <= set(declared), "every exported table is documented in docs/analytics.md"
    for table in sorted(exported):
        assert actual[table] == declared[table], table
