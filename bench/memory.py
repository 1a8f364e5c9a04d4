"""Resident memory of a real `chainpay serve` that starts with N issued addresses and tails a chain.

    .venv/bin/python bench/memory.py [--sizes 1000 1000000] [--seconds 20]

For each size: a fresh DuckDB file with N invoices (random addresses, bulk-inserted by this
script), an anvil chain with a block a second and token transfers in every block, then a fresh
`chainpay serve` process — the way an operator's gateway runs after a restart. VmRSS of that
process is sampled every 0.5 s while it follows the chain; the peak and the final value are
printed. The smallest size is the baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.store.duckdb.connection import bulk_insert  # noqa: E402
from indexer.store.duckdb.database import Database  # noqa: E402
from indexer.store.repositories.invoices import _CASTS, _INSERT_COLUMNS  # noqa: E402
from tests.support.anvil import Anvil  # noqa: E402
from tests.support.api import TEST_XPUB  # noqa: E402
from tests.support.process import CHAINPAY, free_port, http_json, wait_http  # noqa: E402

CHUNK = 50_000


def build_database(path: Path, count: int) -> None:
    db = Database(path)
    db.migrate()
    now = datetime.now(UTC)
    db.write_sync(
        lambda c: c.conn.execute(
            "INSERT INTO stores VALUES ('st_bench', 'bench', ?, 'bench-chain', ?)", [TEST_XPUB, now]
        )
    )
    for start in range(0, count, CHUNK):
        rows = [
            (
                f"inv_{secrets.token_hex(11)}",
                "st_bench",
                "ethereum",
                "USDT",
                "1000000",
                "0x" + secrets.token_hex(20),
                i,
                "expired",
                None,
                "0",
                "0",
                False,
                None,
                None,
                None,
                now,
                now,
                now,
                now,
                None,
            )
            for i in range(start, min(start + CHUNK, count))
        ]
        db.write_sync(
            lambda c, rows=rows: bulk_insert(c, "invoices", _INSERT_COLUMNS, rows, _CASTS)
        )
    db.read_sync(lambda c: c.conn.execute("CHECKPOINT"))
    asyncio.run(db.close())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def traffic(anvil: Anvil, token: str, stop: threading.Event) -> None:
    sender, receivers = anvil.accounts[0], anvil.accounts[1:6]
    anvil.token_mint(token, sender, 10**30)
    while not stop.is_set():
        for to in receivers:
            anvil.rpc(
                "eth_sendTransaction",
                {
                    "from": sender,
                    "to": token,
                    "data": "0xa9059cbb"
                    + to[2:].lower().rjust(64, "0")
                    + hex(1000)[2:].rjust(64, "0"),
                },
            )
        time.sleep(0.2)


def measure(count: int, seconds: float) -> tuple[float, float, float]:
    work = Path(tempfile.mkdtemp(prefix="chainpay-mem-"))
    started = time.perf_counter()
    build_database(work / "chainpay.duckdb", count)
    built = time.perf_counter() - started
    anvil = Anvil(chain_id=31337, block_time=1, workdir=work).start()
    try:
        token = anvil.deploy_token("USDT", 6)
        from eth_utils.address import to_checksum_address

        config = work / "chainpay.toml"
        config.write_text(
            f'database = "{work / "chainpay.duckdb"}"\n'
            f'[networks.ethereum]\nchain_id = 31337\nrpc_url = "{anvil.ws_url}"\n'
            'confirmations = 3\nnative = { symbol = "ETH", decimals = 18 }\n'
            f'[[networks.ethereum.tokens]]\nsymbol = "USDT"\n'
            f'contract = "{to_checksum_address(token)}"\ndecimals = 6\n',
            encoding="utf-8",
        )
        port = free_port()
        server = subprocess.Popen(
            [CHAINPAY, "--config", str(config), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stop = threading.Event()
        sender = threading.Thread(target=traffic, args=(anvil, token, stop), daemon=True)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", server, timeout=120)
            sender.start()
            peak = 0.0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                peak = max(peak, rss_mb(server.pid))
                time.sleep(0.5)
            final = rss_mb(server.pid)
            status, ready = http_json("GET", f"http://127.0.0.1:{port}/readyz")
            processed = ready["networks"]["ethereum"]["processed"]
            print(f"    followed the chain to block {processed} (readyz {status})")
        finally:
            stop.set()
            server.terminate()
            server.wait(30)
    finally:
        anvil.stop()
    return built, peak, final


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    print(f"{'addresses':>10} {'build s':>8} {'peak RSS MB':>12} {'final RSS MB':>13}")
    for count in args.sizes:
        built, peak, final = measure(count, args.seconds)
        print(f"{count:>10,} {built:>8.1f} {peak:>12.0f} {final:>13.0f}")


if __name__ == "__main__":
    main()
