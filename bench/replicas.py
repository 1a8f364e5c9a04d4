"""Invoice creation on DuckDB, on PostgreSQL with one replica, and with two, in one run.

    .venv/bin/python bench/replicas.py [--seconds 15] [--connections 32]

Needs Debian's `wrk` and `postgresql` (the bench starts its own PostgreSQL cluster with the
default durability: fsync and synchronous_commit on, on the same two cores as everything else).
Each target gets the same load: wrk with a Lua POST script, `--connections` in all (split over
the replicas when there are two). Prints req/s, p50 and p99 per target and the PostgreSQL rates
as a share of DuckDB's. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import post_script, wrk  # noqa: E402
from tests.support.api import TEST_XPUB, write_config  # noqa: E402
from tests.support.postgres import PostgresCluster  # noqa: E402
from tests.support.process import CHAINPAY, free_port, wait_http  # noqa: E402

INVOICE = {"network": "ethereum", "asset": "USDT", "amount": "12.5", "order_id": "bench"}


def serve(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [CHAINPAY, "--config", str(config), "serve", "--port", str(port), "--migrate"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/healthz", process, timeout=60)
    return process, f"http://127.0.0.1:{port}/v1/invoices"


def store_key(config: Path) -> str:
    made = subprocess.run(
        [CHAINPAY, "--config", str(config), "store", "create", "--name", "bench",
         "--evm-xpub", TEST_XPUB, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return str(json.loads(made.stdout)["api_key"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--replicas", type=int, nargs="+", default=[1, 2], help="PostgreSQL targets to run"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chainpay-replicas-"))
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="chainpay-pg-")), fast=False)
    cluster.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        cluster.sql("CREATE DATABASE bench")
        (tmp / "duck").mkdir()
        (tmp / "pgc").mkdir()
        duck = write_config(tmp / "duck")
        pg = write_config(tmp / "pgc", database=cluster.url("bench"))
        subprocess.run([CHAINPAY, "--config", str(pg), "migrate"], check=True, capture_output=True)
        duck_key, pg_key = store_key(duck), store_key(pg)
        rows = []
        targets = [("DuckDB, 1 process", [duck], duck_key)] + [
            (f"PostgreSQL, {n} replica{'s' if n > 1 else ''}", [pg] * n, pg_key)
            for n in args.replicas
        ]
        for name, configs, key in targets:
            started = [serve(c) for c in configs]
            processes += [p for p, _ in started]
            script = post_script(tmp / "post.lua", INVOICE, key)
            urls = [u for _, u in started]
            wrk(urls, script, 3, args.connections)  # warm-up
            rows.append((name, wrk(urls, script, args.seconds, args.connections)))
            for process, _ in started:
                process.terminate()
                process.wait(30)
        base = rows[0][1]["rate"]
        print(f"invoice creation, wrk -c{args.connections} -d{args.seconds}s")
        print(
            f"{'target':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'of DuckDB':>10}"
        )
        for name, r in rows:
            print(
                f"{name:<24} {r['rate']:>8,.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                f"{r['errors']:>7.0f} {100 * r['rate'] / base:>9.0f}%"
            )
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(cluster.root, ignore_errors=True)


if __name__ == "__main__":
    main()
