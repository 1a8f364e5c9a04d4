"""Invoice creation through HTTP, against a trivial aiohttp JSON endpoint as the ceiling.

    .venv/bin/python bench/invoices.py [--count 2000] [--concurrency 1 8 32] [--rounds 3]

Starts a real `chainpay serve` (fresh DuckDB file) and a trivial aiohttp app as separate
processes, then drives each with an aiohttp client at each concurrency, printing invoices/s and
p50/p99 latency, plus HD derivations/s. Each round runs the trivial endpoint and then chainpay
back to back, so each ratio compares two runs under the same machine conditions; the median
ratio of the rounds is printed last. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.api import TEST_XPUB, write_config  # noqa: E402
from tests.support.process import free_port, wait_http  # noqa: E402

TRIVIAL = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.json_response({"ok": True})
app = web.Application()
app.router.add_post("/v1/invoices", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

BODY = {"network": "ethereum", "asset": "USDT", "amount": "12.5", "order_id": "bench"}


async def drive(url: str, key: str, count: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    payload = json.dumps(BODY)
    remaining = count
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    if response.status not in (200, 201):
                        raise RuntimeError(f"HTTP {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return count / elapsed, latencies


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] * 1000
        if len(values) > 1
        else values[0] * 1000
    )


def derivations_per_second(n: int = 5000) -> float:
    from indexer.wallet import parse_xpub

    key = parse_xpub(TEST_XPUB)
    started = time.perf_counter()
    for i in range(n):
        key.address(i)
    return n / (time.perf_counter() - started)


def start_gateway(tree: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`chainpay serve` of the code in `tree` on a fresh DuckDB file with one store.

    Runs `python -m api.cli` from `tree`, so that tree's code runs (bench/invoices_versus.py
    starts an earlier commit's this way). Returns the process, the create URL and the API key.
    """
    tmp = Path(tempfile.mkdtemp(prefix="chainpay-bench-"))
    config = write_config(tmp)
    cli = [sys.executable, "-m", "api.cli", "--config", str(config)]
    created = subprocess.run(
        [*cli, "store", "create", "--name", "bench", "--evm-xpub", TEST_XPUB, "--json"],
        cwd=tree, capture_output=True, text=True, check=True,
    )  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return process, f"http://127.0.0.1:{port}/v1/invoices", json.loads(created.stdout)["api_key"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    gateway, gateway_url, key = start_gateway(ROOT)
    trivial_port = free_port()
    trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL, str(trivial_port)])
    try:
        time.sleep(0.5)
        print(f"derivations/s (bip-utils + coincurve, one core): {derivations_per_second():,.0f}")
        print(f"{'target':<10} {'conc':>4} {'count':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        ratios: dict[int, list[float]] = {}
        for conc in args.concurrency:
            for _ in range(args.rounds):
                t_rate, t_lat = asyncio.run(
                    drive(f"http://127.0.0.1:{trivial_port}/v1/invoices", key, args.count, conc)
                )
                g_rate, g_lat = asyncio.run(drive(gateway_url, key, args.count, conc))
                ratios.setdefault(conc, []).append(g_rate / t_rate)
                for name, rate, lat in (("trivial", t_rate, t_lat), ("chainpay", g_rate, g_lat)):
                    print(
                        f"{name:<10} {conc:>4} {args.count:>6} {rate:>9,.0f} {pct(lat, 50):>8.1f} {pct(lat, 99):>8.1f}"
                    )
        for conc, values in ratios.items():
            shown = ", ".join(f"{100 * v:.1f}%" for v in values)
            print(
                f"concurrency {conc}: chainpay at {100 * statistics.median(values):.1f}% of the "
                f"trivial endpoint (median of {len(values)} rounds: {shown})"
            )
    finally:
        gateway.terminate()
        trivial.terminate()
        gateway.wait(20)
        trivial.wait(20)


if __name__ == "__main__":
    main()
