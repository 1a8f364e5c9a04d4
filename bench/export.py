"""Export and backup of a serving gateway: how long they take and what the API feels meanwhile.

    .venv/bin/python bench/export.py [--invoices 100000] [--concurrency 8]

Fills a fresh DuckDB file with N invoices, N events and N transfers (bulk SQL, gateway
stopped), starts a real `chainpay serve`, and keeps creating invoices through HTTP at the given
concurrency. It measures invoice-creation latency for a few seconds alone, then while
`chainpay export` runs, then while `chainpay backup` runs (both through the admin socket),
and prints each command's wall time and the p50/p99/max latency of each window.
Figures go to docs/benchmarks.md, "Export and backup".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.api import TEST_XPUB, write_config  # noqa: E402
from tests.support.process import free_port, run, start_serve, stop  # noqa: E402

BODY = json.dumps({"network": "ethereum", "asset": "USDT", "amount": "12.5"})
BASELINE_SECONDS = 4.0


def fill(database: Path, store_id: str, count: int) -> None:
    """N paid invoices (HD indexes far above the live ones), their events and N transfers.

    Addresses are hash-like: the matcher's table assumes uniformly spread keys, as derived
    addresses are; sequential fake addresses would all collide in it.
    """
    with duckdb.connect(str(database)) as conn:
        conn.execute(
            """
            INSERT INTO invoices
            SELECT 'inv_bench' || i, ?, CASE WHEN i % 3 = 0 THEN 'bsc' ELSE 'ethereum' END,
                   'USDT', (i * 1000)::BIGNUM, '0x' || md5(i::VARCHAR) || left(md5('a' || i), 8),
                   1000000000 + i, 'paid', NULL, (i * 1000)::BIGNUM, (i * 1000)::BIGNUM, false,
                   'order-' || i, NULL, NULL, ts + INTERVAL 15 MINUTE, ts + INTERVAL 1 DAY, ts, ts,
                   ts
            FROM (SELECT i, TIMESTAMPTZ '2024-06-01 00:00:00+00' + i * INTERVAL 30 SECOND AS ts
                  FROM range(?) AS r(i))
            """,
            [store_id, count],
        )
        conn.execute(
            """
            INSERT INTO events (id, store_id, type, invoice_id, payload, created_at)
            SELECT 'evt_' || id, store_id, 'invoice.created', id, '{"bench": true}', created_at
            FROM invoices WHERE id LIKE 'inv_bench%'
            """
        )
        conn.execute(
            """
            INSERT INTO transfers (network, block_number, block_hash, block_time, tx_hash,
                                   log_index, kind, asset, token, from_address, to_address, amount)
            SELECT 'ethereum', 1000 + i // 100, '0x' || md5(i::VARCHAR),
                   TIMESTAMPTZ '2024-06-01 00:00:00+00' + i * INTERVAL 12 SECOND,
                   '0x' || md5('tx' || i), i % 100, 'erc20', 'USDT', '0x' || repeat('d', 40),
                   '0x' || repeat('1', 40), '0x' || lpad(printf('%x', i), 40, '0'),
                   (i * 1000000)::BIGNUM
            FROM range(?) AS r(i)
            """,
            [count],
        )


async def load(
    url: str, key: str, concurrency: int, stop_at: asyncio.Event
) -> list[tuple[float, float]]:
    """(start time, latency) of every invoice creation until `stop_at` is set."""
    samples: list[tuple[float, float]] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not stop_at.is_set():
                started = time.perf_counter()
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"HTTP {response.status}")
                samples.append((started, time.perf_counter() - started))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def window(samples: list[tuple[float, float]], start: float, end: float) -> str:
    ms = sorted(lat * 1000 for t, lat in samples if start <= t < end)
    if len(ms) < 2:
        return "no requests"
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    rate = len(ms) / (end - start)
    return (
        f"{rate:7.0f} invoices/s  p50 {statistics.median(ms):6.1f} ms  p99 {p99:6.1f} ms  "
        f"max {ms[-1]:6.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = write_config(work)
        created = run("--config", str(config), "store", "create", "--name", "Bench",
                      "--evm-xpub", TEST_XPUB, "--json")  # fmt: skip
        store = json.loads(created.stdout)
        started = time.perf_counter()
        fill(work / "chainpay.duckdb", store["store_id"], args.invoices)
        print(f"filled {args.invoices} invoices, events and transfers "
              f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
        port = free_port()
        try:
            server = start_serve(config, port, log=work / "serve.log")
        except Exception:
            print((work / "serve.log").read_text()[-3000:], file=sys.stderr)
            raise
        try:
            stop_at = asyncio.Event()
            url = f"http://127.0.0.1:{port}/v1/invoices"
            driver = asyncio.create_task(load(url, store["api_key"], args.concurrency, stop_at))
            await asyncio.sleep(1.0)  # warm-up
            t0 = time.perf_counter()
            await asyncio.sleep(BASELINE_SECONDS)
            t1 = time.perf_counter()
            exported = await asyncio.to_thread(
                run, "--config", str(config), "export", "--out", str(work / "export"), "--json",
                timeout=600,
            )  # fmt: skip
            t2 = time.perf_counter()
            backed = await asyncio.to_thread(
                run, "--config", str(config), "backup", str(work / "backup.duckdb"), "--json",
                timeout=600,
            )  # fmt: skip
            t3 = time.perf_counter()
            await asyncio.sleep(BASELINE_SECONDS)
            t4 = time.perf_counter()
            stop_at.set()
            samples = await driver
        finally:
            stop(server)
        for name, result in (("export", exported), ("backup", backed)):
            if result.returncode != 0:
                raise SystemExit(f"{name} failed: {result.stderr}")
        summary = json.loads(exported.stdout)
        rows = sum(t["rows"] for t in summary["tables"].values())
        size = sum(p.stat().st_size for p in (work / "export").rglob("*.parquet"))
        backup = json.loads(backed.stdout)
        print(f"export: {t2 - t1:5.2f}s for {rows} rows, {size / 1e6:.1f} MB of Parquet "
              f"(command wall time, includes CLI start-up)")  # fmt: skip
        print(
            f"backup: {t3 - t2:5.2f}s for {sum(backup['tables'].values())} rows, "
            f"{backup['bytes'] / 1e6:.1f} MB (copy inside the gateway: {backup['seconds']}s)"
        )
        print(f"API, concurrency {args.concurrency}:")
        print(f"  alone          {window(samples, t0, t1)}")
        print(f"  during export  {window(samples, t1, t2)}")
        print(f"  during backup  {window(samples, t2, t3)}")
        print(f"  after          {window(samples, t3, t4)}")


if __name__ == "__main__":
    asyncio.run(main())
