"""The analyst export: one consistent Parquet snapshot, exact amounts, and the documented queries.

Every SQL block under "## Example queries" in docs/analytics.md is run, exactly as written, on
an export of a real gateway database, and its numbers are checked, so the doc cannot drift.

Invoices and their events are created through the HTTP API of a real Gateway. Payments,
transfers, deliveries and delivery attempts are inserted with `db.write` in the exact columns of
migrations 001-003: the indexer's block service and the webhook dispatcher were not yet wired
into the gateway when this test was written; the test checks the export and the documented
queries, not how those rows arrive.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiohttp.test_utils import TestClient

from api.bootstrap import Gateway
from indexer.store.duckdb.connection import Connection
from indexer.store.duckdb.export import ExportError, write_snapshot
from tests.support.api import OTHER_XPUB, Merchant, make_merchant

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "analytics.md"
UINT256_MAX = 2**256 - 1
DAY1 = datetime(2024, 6, 1, 23, 59, 50, tzinfo=UTC)  # 10 s before midnight UTC
DAY2 = datetime(2024, 6, 2, 10, 0, tzinfo=UTC)


# --- the doc -----------------------------------------------------------------------------------


def doc_section(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def example_queries() -> dict[str, str]:
    """### title -> its ```sql block, from the "## Example queries" section."""
    section = doc_section("Example queries")
    found = dict(re.findall(r"\n### (.+?)\n.*?```sql\n(.*?)```", section, flags=re.S))
    assert found, "no example queries found in docs/analytics.md"
    return found


def documented_connection(snapshot: Path) -> duckdb.DuckDBPyConnection:
    """Run the doc's own ```python set-up block with `snapshot` pointing at our export."""
    block = re.search(r"```python\n(.*?)```", doc_section("Example queries"), flags=re.S)
    assert block, "no python set-up block in docs/analytics.md"
    code, replaced = re.subn(
        r"^snapshot = .*$", f"snapshot = {str(snapshot)!r}", block.group(1), flags=re.M
    )
    assert replaced == 1
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the documented code, verbatim otherwise
    return namespace["con"]


# --- data ----------------------------------------------------------------------------------


async def create_invoice(
    client: TestClient[Any, Any], merchant: Merchant, body: dict[str, Any]
) -> str:
    response = await client.post("/v1/invoices", json=body, headers=merchant.headers)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


def insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))


def payment(
    invoice: dict[str, Any], tx: str, amount: int, seen: datetime, **extra: Any
) -> dict[str, Any]:
    row = {
        "network": invoice["network"],
        "tx_hash": tx,
        "log_index": 0,
        "invoice_id": invoice["id"],
        "store_id": invoice["store_id"],
        "address": invoice["address"].lower(),
        "asset": invoice["asset"],
        "amount": str(amount),
        "counted": True,
        "block_number": 100,
        "block_hash": "0x" + "b" * 64,
        "block_time": seen,
        "confirmations": 20,
        "state": "confirmed",
        "first_seen_at": seen,
        "confirmed_at": None,
        "updated_at": seen,
    }
    row.update(extra)
    return row


@pytest.fixture
async def books(
    gateway: Gateway, client: TestClient[Any, Any], merchant: Merchant
) -> dict[str, Any]:
    """Two stores, four invoices (API), payments on two days and two networks, webhooks."""
    other = await make_merchant(gateway, "other", OTHER_XPUB)
    ids = [
        await create_invoice(
            client, merchant, {"network": "ethereum", "asset": "USDT", "amount": "10"}
        ),
        await create_invoice(
            client, merchant, {"network": "ethereum", "asset": "USDT", "amount": "5"}
        ),
        await create_invoice(client, merchant, {"network": "bsc", "asset": "BNB", "amount": "0.5"}),
        await create_invoice(client, other, {"network": "ethereum", "asset": "ETH", "amount": "1"}),
    ]
    invoices = await gateway.db.read(
        lambda c: {
            row[0]: dict(zip(("id", "store_id", "network", "asset", "address"), row, strict=True))
            for row in c.execute(
                "SELECT id, store_id, network, asset, address FROM invoices"
            ).fetchall()
        }
    )
    usdt_a, usdt_b, bnb, eth = (invoices[i] for i in ids)
    payments = [
        # Confirmed after 30 s, on day 1 (ethereum USDT).
        payment(usdt_a, "0x01", 10_000_000, DAY1, confirmed_at=DAY1 + timedelta(seconds=30)),
        # Day 2: a counted confirmed USDT payment and a wrong-asset one (kept, not counted).
        payment(usdt_b, "0x02", 5_000_000, DAY2, confirmed_at=DAY2 + timedelta(seconds=90)),
        payment(usdt_b, "0x03", 7, DAY2, counted=False, asset="ETH"),
        # BSC, confirmed after 45 s, an 18-decimal amount beyond 64 bits.
        payment(
            bnb, "0x04", 500_000_000_000_000_000, DAY2, confirmed_at=DAY2 + timedelta(seconds=45)
        ),
        # Orphaned by a reorg: neither volume nor payments-per-store count it.
        payment(eth, "0x05", 10**18, DAY2, state="orphaned"),
    ]
    transfers = [
        {
            "network": "ethereum",
            "block_number": 100,
            "block_hash": "0x" + "b" * 64,
            "block_time": DAY1,
            "tx_hash": "0x01",
            "log_index": 0,
            "kind": "erc20",
            "asset": "USDT",
            "token": "0x" + "d" * 40,
            "from_address": "0x" + "1" * 40,
            "to_address": usdt_a["address"].lower(),
            "amount": str(10_000_000),
        },
        {  # a uint256 that no fixed-width type holds: must survive the export exactly
            "network": "ethereum",
            "block_number": 101,
            "block_hash": "0x" + "c" * 64,
            "block_time": DAY2,
            "tx_hash": "0x06",
            "log_index": 3,
            "kind": "erc20",
            "asset": "USDT",
            "token": "0x" + "d" * 40,
            "from_address": "0x" + "1" * 40,
            "to_address": "0x" + "2" * 40,
            "amount": str(UINT256_MAX),
        },
    ]
    # The shop is a forwarder store on ethereum (its treasury row): usdt_a swept whole, usdt_b
    # in part (plus a sweep a reorg dropped), its wrong-asset ETH not at all.
    treasury = "0x" + "7" * 40
    treasuries = [
        {
            "store_id": merchant.store_id,
            "network": "ethereum",
            "treasury": treasury,
            "factory": "0x" + "f" * 40,
            "created_at": DAY1,
        }
    ]
    sweeps = [
        {
            "network": "ethereum",
            "block_number": 120 + n,
            "block_hash": "0x" + "e" * 63 + str(n),
            "block_time": DAY2,
            "tx_hash": f"0x1{n}",
            "log_index": n,
            "address": invoice["address"].lower(),
            "treasury": treasury,
            "asset": "USDT",
            "token": "0x" + "d" * 40,
            "amount": str(amount),
            "orphaned": orphaned,
        }
        for n, (invoice, amount, orphaned) in enumerate(
            [(usdt_a, 10_000_000, False), (usdt_b, 2_000_000, False), (usdt_b, 5_000_000, True)]
        )
    ]
    event_ids = await gateway.db.read(
        lambda c: [r[0] for r in c.execute("SELECT id FROM events ORDER BY seq").fetchall()]
    )
    deliveries = [
        {
            "id": f"dlv_{n}",
            "event_id": event_ids[n],
            "endpoint_id": endpoint,
            "store_id": merchant.store_id,
            "status": status,
            "attempts": attempts,
            "created_at": DAY2,
        }
        for n, (endpoint, status, attempts) in enumerate(
            [("we_a", "delivered", 2), ("we_a", "delivered", 1), ("we_b", "pending", 1)]
        )
    ]
    attempts = [
        {
            "id": f"att_{n}",
            "delivery_id": dlv,
            "event_id": "evt_x",
            "endpoint_id": endpoint,
            "attempted_at": DAY2,
            "status_code": code,
            "latency_ms": 12,
        }
        for n, (dlv, endpoint, code) in enumerate(
            [
                ("dlv_0", "we_a", 500),
                ("dlv_0", "we_a", 200),
                ("dlv_1", "we_a", 204),
                ("dlv_2", "we_b", None),
            ]
        )
    ]

    def write(conn: Connection) -> None:
        insert(conn, "payments", payments)
        insert(conn, "transfers", transfers)
        insert(conn, "store_treasuries", treasuries)
        insert(conn, "sweeps", sweeps)
        insert(conn, "deliveries", deliveries)
        insert(conn, "delivery_attempts", attempts)
        conn.execute(
            "UPDATE invoices SET status = 'paid' WHERE id IN (?, ?)", [usdt_a["id"], bnb["id"]]
        )

    await gateway.db.write(write)
    return {
        "stores": (merchant.store_id, other.store_id),
        "invoices": ids,
        "addresses": {"usdt_b": usdt_b["address"].lower()},
    }


# --- the export ----------------------------------------------------------------------------------


async def test_export_writes_every_analyst_table_with_row_counts(
    gateway: Gateway, books: dict[str, Any], tmp_path: Path
) -> None:
    summary = await gateway.db.export_snapshot(tmp_path / "export")

    written = json.loads((tmp_path / "export" / "snapshot.json").read_text())
    assert written == summary
    assert {name: t["rows"] for name, t in summary["tables"].items()} == {
        "invoices": 4,
        "payments": 5,
        "transfers": 2,
        "sweeps": 3,
        "store_treasuries": 1,
        "blocks": 0,
        "chain_cursors": 0,
        "events": 4,
        "deliveries": 3,
        "delivery_attempts": 4,
    }
    assert summary["schema_version"] >= 3
    assert not (tmp_path / "export.partial").exists()
    exported = {p.parent.name for p in (tmp_path / "export").glob("*/*.parquet")}
    assert {"api_keys", "stores", "webhook_endpoints", "idempotency_keys"}.isdisjoint(exported)


async def test_export_partitions_by_network_and_utc_day(
    gateway: Gateway, books: dict[str, Any], tmp_path: Path
) -> None:
    await gateway.db.export_snapshot(tmp_path / "export")

    partitions = sorted(
        str(p.parent.relative_to(tmp_path / "export" / "payments"))
        for p in (tmp_path / "export" / "payments").rglob("*.parquet")
    )
    assert partitions == [
        "network=bsc/day=2024-06-02",
        "network=ethereum/day=2024-06-01",  # 23:59:50 UTC stays on its UTC day
        "network=ethereum/day=2024-06-02",
    ]
    assert (tmp_path / "export" / "blocks" / "empty.parquet").is_file()
    assert (tmp_path / "export" / "events" / "data.parquet").is_file()


async def test_uint256_amounts_are_exact_as_decimal_or_text(
    gateway: Gateway, books: dict[str, Any], tmp_path: Path
) -> None:
    await gateway.db.export_snapshot(tmp_path / "export")
    con = duckdb.connect()

    rows = con.execute(
        f"SELECT tx_hash, amount, typeof(amount), amount_text FROM "
        f"read_parquet('{tmp_path}/export/transfers/**/*.parquet') ORDER BY tx_hash"
    ).fetchall()

    assert rows == [
        ("0x01", Decimal(10_000_000), "DECIMAL(38,0)", "10000000"),
        ("0x06", None, "DECIMAL(38,0)", str(UINT256_MAX)),  # too wide for DECIMAL: text only
    ]
    assert con.execute(
        f"SELECT sum(amount_text::BIGNUM)::VARCHAR FROM "
        f"read_parquet('{tmp_path}/export/transfers/**/*.parquet')"
    ).fetchone() == (str(UINT256_MAX + 10_000_000),)


async def test_export_carries_sweeps_with_exact_amounts_and_the_orphaned_flag(
    gateway: Gateway, books: dict[str, Any], tmp_path: Path
) -> None:
    await gateway.db.export_snapshot(tmp_path / "export")
    con = duckdb.connect()

    rows = con.execute(
        f"SELECT tx_hash, address, asset, amount, typeof(amount), amount_text, orphaned, day "
        f"FROM read_parquet('{tmp_path}/export/sweeps/**/*.parquet') ORDER BY tx_hash"
    ).fetchall()

    usdt_b = books["addresses"]["usdt_b"]
    assert [r[0] for r in rows] == ["0x10", "0x11", "0x12"]
    assert rows[1:] == [
        (
            "0x11",
            usdt_b,
            "USDT",
            Decimal(2_000_000),
            "DECIMAL(38,0)",
            "2000000",
            False,
            DAY2.date(),
        ),
        ("0x12", usdt_b, "USDT", Decimal(5_000_000), "DECIMAL(38,0)", "5000000", True, DAY2.date()),
    ]
    assert sorted(p.name for p in (tmp_path / "export" / "sweeps").iterdir()) == [
        "network=ethereum"
    ]


async def test_export_is_one_snapshot_while_writes_continue(
    gateway: Gateway, books: dict[str, Any], tmp_path: Path
) -> None:
    """Writes committed while the export runs land in the live file but not in the export."""

    def event(n: int) -> Callable[[Connection], Any]:
        return lambda c: c.execute(
            "INSERT INTO events (id, store_id, type, payload, created_at) "
            "VALUES (?, 'st_x', 'test.written', '{}', now())",
            [f"evt_w{n}"],
        )

    async def keep_writing() -> None:
        n = 0
        while True:
            n += 1
            await gateway.db.write(event(n))

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.05)
    try:
        summary = await gateway.db.export_snapshot(tmp_path / "export")
    finally:
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
    con = duckdb.connect()
    exported = con.execute(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/export/events/**/*.parquet')"
    ).fetchone()
    live = await gateway.db.read_sql(lambda c: c.execute("SELECT count(*) FROM events").fetchone())
    assert exported == (summary["tables"]["events"]["rows"],)
    assert live is not None and live[0] > summary["tables"]["events"]["rows"] > 4


def test_export_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    conn = duckdb.connect(str(tmp_path / "db.duckdb"))
    with pytest.raises(ExportError, match="not an empty directory"):
        write_snapshot(conn, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# --- the documented queries ----------------------------------------------------------------------

Check = Callable[[list[tuple[Any, ...]], dict[str, Any]], None]


def check_daily_volume(rows: list[tuple[Any, ...]], books: dict[str, Any]) -> None:
    assert [tuple(r) for r in rows] == [
        (datetime(2024, 6, 1).date(), "ethereum", "USDT", 1, Decimal(10_000_000)),
        (datetime(2024, 6, 2).date(), "bsc", "BNB", 1, Decimal(500_000_000_000_000_000)),
        (datetime(2024, 6, 2).date(), "ethereum", "USDT", 1, Decimal(5_000_000)),
    ]


def check_payments_per_store(rows: list[tuple[Any, ...]], books: dict[str, Any]) -> None:
    shop, other = books["stores"]
    assert sorted(rows) == sorted([(shop, 3, 2, 4), (other, 1, 0, 0)])


def check_time_to_confirmation(rows: list[tuple[Any, ...]], books: dict[str, Any]) -> None:
    assert rows == [("bsc", 1, 45.0, 45), ("ethereum", 2, 60.0, 90)]


def check_webhook_success(rows: list[tuple[Any, ...]], books: dict[str, Any]) -> None:
    assert [tuple(r) for r in rows] == [
        ("we_a", 3, 2, pytest.approx(0.667), 2),
        ("we_b", 1, 0, 0.0, 0),
    ]


def check_unswept_per_address(rows: list[tuple[Any, ...]], books: dict[str, Any]) -> None:
    address = books["addresses"]["usdt_b"]
    assert [tuple(r) for r in rows] == [
        ("ethereum", address, "ETH", Decimal(7), Decimal(0), Decimal(7)),
        ("ethereum", address, "USDT", Decimal(5_000_000), Decimal(2_000_000), Decimal(3_000_000)),
    ]


CHECKS: dict[str, Check] = {
    "Daily volume per token and network": check_daily_volume,
    "Payments per store": check_payments_per_store,
    "Time from first sight to confirmation": check_time_to_confirmation,
    "Webhook success rate": check_webhook_success,
    "Unswept value per deposit address": check_unswept_per_address,
}


def test_every_documented_query_has_a_check() -> None:
    assert set(example_queries()) == set(CHECKS)


@pytest.mark.parametrize("title", sorted(CHECKS))
async def test_documented_query_gives_the_expected_numbers(
    title: str, gateway: Gateway, books: dict[str, Any], tmp_path: Path
) -> None:
    await gateway.db.export_snapshot(tmp_path / "export")
    con = documented_connection(tmp_path / "export")

    rows = con.execute(example_queries()[title]).fetchall()

    CHECKS[title](rows, books)
