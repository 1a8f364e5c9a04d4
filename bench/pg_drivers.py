"""psycopg 3 (sync pool on worker threads, as the adapter ran it) against asyncpg, on the
shape of one invoice creation: a transaction of three inserts and a commit; then the adapter
itself (PostgresStorage, its group commit) writing an invoice, its event and its idempotency key
per write, from one event loop at the same concurrency.

    .venv/bin/pip install asyncpg   # this benchmark only; chainpay does not depend on it
    .venv/bin/python bench/pg_drivers.py [--transactions 4000] [--concurrency 32]

Starts its own PostgreSQL cluster (default durability: fsync and synchronous_commit on), then
runs the same transactions through each driver at the same concurrency, each driver on a fresh
table set, and prints transactions/s and p50/p99. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import PostgresCluster  # noqa: E402

SCHEMA = """
CREATE TABLE invoices (id text PRIMARY KEY, amount numeric(78,0), metadata json,
                       created_at timestamptz);
CREATE TABLE events (seq bigserial PRIMARY KEY, id text UNIQUE, payload json,
                     created_at timestamptz);
CREATE TABLE keys (store text, key text, response json, PRIMARY KEY (store, key));
"""


def rows() -> tuple[str, str, str, datetime]:
    return (
        secrets.token_hex(11),
        str(2**200 + secrets.randbelow(10**6)),
        '{"k": 1}',
        datetime.now(UTC),
    )


def psycopg_run(url: str, count: int, concurrency: int) -> list[float]:
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        url, min_size=concurrency, max_size=concurrency, kwargs={"autocommit": True}
    )
    pool.wait()

    def one(_: int) -> float:
        started = time.perf_counter()
        ident, amount, meta, now = rows()
        with pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO invoices VALUES (%s, %s, %s, %s)", [ident, amount, meta, now])
            conn.execute(
                "INSERT INTO events (id, payload, created_at) VALUES (%s, %s, %s)",
                [ident, meta, now],
            )
            conn.execute("INSERT INTO keys VALUES (%s, %s, %s)", ["s", ident, meta])
        return time.perf_counter() - started

    with ThreadPoolExecutor(concurrency) as threads:
        latencies = list(threads.map(one, range(count)))
    pool.close()
    return latencies


async def asyncpg_run(url: str, count: int, concurrency: int) -> list[float]:
    import asyncpg

    dsn = url.replace("postgresql://chainpay@/", "postgresql://chainpay@localhost/")
    host = url.split("host=")[1]
    pool = await asyncpg.create_pool(
        dsn.split("?")[0], host=host, min_size=concurrency, max_size=concurrency
    )
    latencies: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            ident, amount, meta, now = rows()
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO invoices VALUES ($1, $2::numeric, $3::json, $4)",
                    ident,
                    amount,
                    meta,
                    now,
                )
                await conn.execute(
                    "INSERT INTO events (id, payload, created_at) VALUES ($1, $2::json, $3)",
                    ident,
                    meta,
                    now,
                )
                await conn.execute("INSERT INTO keys VALUES ($1, $2, $3::json)", "s", ident, meta)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await pool.close()
    return latencies


def creation(invoice: Any, event: Any, key: Any, uow: Any) -> None:
    """What one invoice creation writes (indexer/services/invoices.py): adds only."""
    uow.invoices.add(invoice)
    uow.events.add(event)
    uow.idempotency.add(key)


async def adapter_run(url: str, count: int, concurrency: int) -> tuple[list[float], float]:
    """Invoice creations' writes through the adapter: concurrent ones share a transaction.
    Their latencies and the seconds they took (after the migration)."""
    from indexer.domain.invoice import Status
    from indexer.domain.records import Invoice
    from indexer.store.postgres.database import PostgresStorage
    from indexer.store.rows import EventRow, IdempotentResponse, StoreRow

    now = datetime.now(UTC)
    store = StoreRow("st_" + "B" * 22, "bench", "xpub-bench", "chain-bench", now)
    storage = PostgresStorage(url)
    storage.migrate()
    storage.write_sync(lambda uow: uow.stores.insert_store(store))
    latencies: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            ident = secrets.token_hex(11)
            invoice = Invoice(
                id=f"inv_{ident}", store_id=store.id, network="ethereum", asset="USDT",
                amount=2**200, address="0x" + secrets.token_hex(20),
                address_index=secrets.randbelow(2**31), status=Status.NEW, exception=None,
                amount_received=0, amount_confirmed=0, reorg_flagged=False, order_id=None,
                metadata={"k": 1}, redirect_url=None, expires_at=now + timedelta(minutes=15),
                monitoring_until=now + timedelta(days=1), created_at=now, updated_at=now,
                paid_at=None,
            )  # fmt: skip
            event = EventRow(f"evt_{ident}", store.id, "invoice.created", invoice.id, "{}", now)
            key = IdempotentResponse(store.id, ident, "hash", 201, '{"k": 1}', now)

            started = time.perf_counter()
            await storage.write(partial(creation, invoice, event, key))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await storage.close()
    return latencies, elapsed


def report(name: str, latencies: list[float], elapsed: float) -> None:
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<28} {len(latencies) / elapsed:>8,.0f} tx/s  p50 {q[49] * 1000:6.1f} ms  p99 {q[98] * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chainpay-pgdrivers-"))
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="chainpay-pg-")), fast=False)
    cluster.start()
    try:
        for name in ("psycopg", "asyncpg", "adapter"):
            cluster.sql(f"CREATE DATABASE {name}")
            if name != "adapter":  # the adapter migrates its own database
                cluster.sql(SCHEMA, name)
        print(f"{args.transactions} transactions of 3 inserts, concurrency {args.concurrency}")
        started = time.perf_counter()
        lat = psycopg_run(cluster.url("psycopg"), args.transactions, args.concurrency)
        report("psycopg 3, pool + threads", lat, time.perf_counter() - started)
        started = time.perf_counter()
        lat = asyncio.run(asyncpg_run(cluster.url("asyncpg"), args.transactions, args.concurrency))
        report("asyncpg, pool, one loop", lat, time.perf_counter() - started)
        lat, elapsed = asyncio.run(
            adapter_run(cluster.url("adapter"), args.transactions, args.concurrency)
        )
        report("adapter, group commit", lat, elapsed)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(cluster.root, ignore_errors=True)


if __name__ == "__main__":
    main()
