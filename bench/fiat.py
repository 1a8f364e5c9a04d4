"""Fiat-priced invoice creation against asset-priced creation, side by side in one run.

    .venv/bin/python bench/fiat.py [--seconds 10] [--connections 32] [--rounds 2]

Needs Debian's `wrk`. Starts anvil (a block every second) with test price feeds
(tests/support/fiat.py: ETH/USD, USDT/USD, DAI/USD, EUR/USD and a USDC peg), a real
`chainpay serve` on them with `[prices] cache_seconds = 5`, then drives POST /v1/invoices with wrk
at the same concurrency, alternating an asset-priced body (`"amount": "0.01"` ETH) and a
fiat-priced one (`"price": {"amount": "49.99", "currency": "USD"}` in ETH) for `--rounds`
rounds. Prints req/s, p50 and p99 of each, the fiat/asset ratio (the target is >= 0.80), and how
many eth_call the node answered during the fiat windows (from /metrics): reads follow heads
and the cache window, never the request count. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import post_script, wrk  # noqa: E402
from tests.support.anvil import Anvil  # noqa: E402
from tests.support.fiat import deploy_fiat_chain  # noqa: E402
from tests.support.gateway import TEST_XPUB  # noqa: E402
from tests.support.process import free_port, wait_http  # noqa: E402

BODIES = {
    "asset": {"network": "ethereum", "asset": "ETH", "amount": "0.01", "order_id": "bench"},
    "fiat": {
        "network": "ethereum",
        "asset": "ETH",
        "price": {"amount": "49.99", "currency": "USD"},
        "order_id": "bench",
    },
}


def eth_calls(base: str) -> float:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    found = re.findall(r'chainpay_rpc_requests_total\{[^}]*method="eth_call"[^}]*\} (\S+)', text)
    return sum(float(v) for v in found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="chainpay-fiat-"))
    anvil = Anvil(block_time=1, workdir=tmp).start()
    serve = None
    try:
        chain = deploy_fiat_chain(anvil)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = tmp / "chainpay.toml"
        config.write_text(
            f'public_url = "{base}"\n'
            + chain.toml(tmp / "chainpay.duckdb", cache_seconds=5)
            + f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        )
        cli = [sys.executable, "-m", "api.cli", "--config", str(config)]
        made = subprocess.run(
            [*cli, "store", "create", "--name", "bench", "--evm-xpub", TEST_XPUB, "--json"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        key = json.loads(made.stdout)["api_key"]
        scripts = {}
        for name, body in BODIES.items():
            scripts[name] = post_script(tmp / f"{name}.lua", body, key)
        serve = subprocess.Popen(
            [*cli, "serve"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_http(f"{base}/healthz", serve)
        wait_ready(base)
        url = f"{base}/v1/invoices"
        for name in BODIES:  # warm-up, and proof that both paths answer 201
            warm = wrk(url, scripts[name], 2, args.connections)
            if warm["errors"]:
                raise SystemExit(f"{name} warm-up had {warm['errors']:.0f} non-2xx answers")
        results: dict[str, list[dict[str, float]]] = {"asset": [], "fiat": []}
        calls = 0.0
        for _ in range(args.rounds):
            results["asset"].append(wrk(url, scripts["asset"], args.seconds, args.connections))
            before = eth_calls(base)
            results["fiat"].append(wrk(url, scripts["fiat"], args.seconds, args.connections))
            calls += eth_calls(base) - before
        report(results, calls, args)
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(30)
        anvil.stop()


def wait_ready(base: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/readyz", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the gateway did not become ready")


def report(
    results: dict[str, list[dict[str, float]]], calls: float, args: argparse.Namespace
) -> None:
    print(f"wrk -c{args.connections} -d{args.seconds}s, {args.rounds} alternating rounds")
    print(f"{'body':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    mean = {}
    for name, runs in results.items():
        mean[name] = sum(r["rate"] for r in runs) / len(runs)
        p50 = max(r["p50"] for r in runs)
        p99 = max(r["p99"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        print(f"{name:<8} {mean[name]:>8,.0f} {p50:>8.1f} {p99:>8.1f} {errors:>7.0f}")
    requests = sum(r["rate"] for r in results["fiat"]) * args.seconds
    print(f"fiat / asset: {mean['fiat'] / mean['asset']:.2f} (target >= 0.80)")
    print(f"eth_call during the fiat windows: {calls:.0f} for ~{requests:,.0f} fiat invoices")


if __name__ == "__main__":
    main()
