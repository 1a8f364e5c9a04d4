"""Invoice creation p99 while 30,000 invoices expire at once, against the same run without expiry.

    .venv/bin/python bench/expiry.py [--invoices 30000] [--seconds 10] [--connections 16]

Needs Debian's `wrk` (apt-get install wrk): the load generator runs in C, so it is not the
ceiling. Builds a DuckDB file with one store and N open invoices that all fall due at the same
moment, starts a real `chainpay serve` on it, then drives POST /v1/invoices with wrk twice:
first while nothing expires (the baseline), then across the moment all N fall due. Prints
req/s, p50 and p99 of both, and how long the expirer took to expire all N (from /metrics).
Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import post_script, wrk  # noqa: E402
from indexer.domain.invoice import Status  # noqa: E402
from indexer.domain.records import Invoice  # noqa: E402
from indexer.store.duckdb.connection import bulk_insert  # noqa: E402
from indexer.store.duckdb.database import Database  # noqa: E402
from indexer.store.repositories.invoices import _CASTS, _INSERT_COLUMNS, invoice_row  # noqa: E402
from tests.support.api import TEST_XPUB, write_config  # noqa: E402
from tests.support.process import free_port, wait_http  # noqa: E402

INVOICE = {"network": "ethereum", "asset": "USDT", "amount": "12.5", "order_id": "bench"}


def build(tmp: Path, count: int, due: datetime) -> tuple[Path, str]:
    config = write_config(tmp)
    cli = [sys.executable, "-m", "api.cli", "--config", str(config)]
    made = subprocess.run(
        [*cli, "store", "create", "--name", "bench", "--evm-xpub", TEST_XPUB, "--json"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    store = json.loads(made.stdout)
    db = Database(tmp / "chainpay.duckdb")
    now = datetime.now(UTC)
    invoices = [
        Invoice(
            id=f"inv_{secrets.token_hex(11)}", store_id=store["store_id"], network="ethereum",
            asset="USDT", amount=12_500_000, address="0x" + secrets.token_hex(20),
            address_index=1_000_000 + i, status=Status.NEW, exception=None, amount_received=0,
            amount_confirmed=0, reorg_flagged=False, order_id=None, metadata=None,
            redirect_url=None, expires_at=due, monitoring_until=due + timedelta(days=1),
            created_at=now, updated_at=now, paid_at=None,
        )
        for i in range(count)
    ]  # fmt: skip
    rows = [invoice_row(invoice) for invoice in invoices]
    for start in range(0, count, 10_000):
        chunk = rows[start : start + 10_000]
        db.write_sync(
            lambda c, chunk=chunk: bulk_insert(c.conn, "invoices", _INSERT_COLUMNS, chunk, _CASTS)
        )
    db.read_sync(lambda c: c.conn.execute("CHECKPOINT"))
    import asyncio

    asyncio.run(db.close())
    return config, store["api_key"]


def expired(base: str) -> float:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    found = re.findall(
        r'chainpay_invoice_transitions_total\{[^}]*status="expired"[^}]*\} (\S+)', text
    )
    return sum(float(v) for v in found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=30_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="chainpay-expiry-"))
    lead = 3 * args.seconds + 20  # build, start, baseline, then the moment they fall due
    due = datetime.now(UTC) + timedelta(seconds=lead)
    config, key = build(tmp, args.invoices, due)
    script = post_script(tmp / "post.lua", INVOICE, key)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "--config", str(config), "serve", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"{base}/healthz", serve)
        wrk(f"{base}/v1/invoices", script, 2, args.connections)  # warm-up
        baseline = wrk(f"{base}/v1/invoices", script, args.seconds, args.connections)
        assert expired(base) == 0, "invoices expired before the measured window"
        wait = (due - datetime.now(UTC)).total_seconds() - 1
        if wait < 0:
            raise SystemExit("the build took too long: raise the lead time")
        time.sleep(wait)
        started = time.monotonic()
        during = wrk(f"{base}/v1/invoices", script, args.seconds, args.connections)
        while expired(base) < args.invoices and time.monotonic() - started < 120:
            time.sleep(0.2)
        total = expired(base)
        print(f"{args.invoices:,} invoices due at once; wrk -c{args.connections} -d{args.seconds}s")
        print(
            f"{'window':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}"
        )
        for name, r in (("baseline (no expiry)", baseline), ("while expiring", during)):
            print(
                f"{name:<22} {r['rate']:>8,.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                f"{r['max']:>8.1f} {r['errors']:>7.0f}"
            )
        print(f"expired {total:,.0f} of {args.invoices:,}")
        print(f"p99 while expiring / baseline p99: {during['p99'] / baseline['p99']:.2f}x")
    finally:
        serve.terminate()
        serve.wait(30)


if __name__ == "__main__":
    main()
