"""psycopg 3 (sync pool on worker threads, as the adapter runs it) against asyncpg, on the
PostgreSQL adapter's write shape: a transaction of three inserts and a commit.

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
from datetime import UTC, datetime
from pathlib import Path

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
        for name in ("psycopg", "asyncpg"):
            cluster.sql(f"CREATE DATABASE {name}")
            cluster.sql(SCHEMA, name)
        print(f"{args.transactions} transactions of 3 inserts, concurrency {args.concurrency}")
        started = time.perf_counter()
        lat = psycopg_run(cluster.url("psycopg"), args.transactions, args.concurrency)
        report("psycopg 3, pool + threads", lat, time.perf_counter() - started)
        started = time.perf_counter()
        lat = asyncio.run(asyncpg_run(cluster.url("asyncpg"), args.transactions, args.concurrency))
        report("asyncpg, pool, one loop", lat, time.perf_counter() - started)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(cluster.root, ignore_errors=True)


if __name__ == "__main__":
    main()
