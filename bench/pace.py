"""Block pace: the tail on a rollup-speed chain (anvil at 4 blocks/s, token traffic in every block).

Run: .venv/bin/python bench/pace.py [seconds] [--backend duckdb|postgres]   (default 180, duckdb)

The parent starts anvil with Arbitrum One's chain id and `--block-time 0.25`, places the test
token at the preset's official USDT and USDC addresses, and starts a child process: a Gateway
configured only by `preset = "arbitrum-one"` (on a DuckDB file, or with `--backend postgres` on
a throwaway PostgreSQL cluster the parent starts: default durability, same cores), its chain
tail, its webhook dispatcher with one endpoint (a receiver in the child), and probes. The parent
then keeps
TRAFFIC_PER_BLOCK token transfers to strangers in every block and pays one invoice every
PAY_EVERY seconds (USDT, USDC and ETH in turn).

The child measures, over the run:
- detection latency: from the child's own `newHeads` notification of the block holding a
  payment to the first poll (every 20 ms) that finds the payment row in the store;
- mined → webhook: from that notification to the `invoice.pending` POST reaching the endpoint;
- lag: node head minus processed block, sampled every second (first vs last minute: growth?);
- blocks processed per second (the tail takes every block up to the head in one run and one
  transaction, so a slow commit makes the next run longer instead of falling behind);
- CPU: the child's user+system seconds per wall second (gateway, tail, DuckDB writer, probes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PRESET = "arbitrum-one"
BLOCK_TIME = 0.25
TRAFFIC_PER_BLOCK = 20
PAY_EVERY = 0.5
INVOICES = 1200
TARGETS = {"detect_p99_ms": 1000}


def progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def rpc(url: str, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        replies = sorted(json.loads(response.read()), key=lambda r: r["id"])
    for reply in replies:
        if "error" in reply:
            raise RuntimeError(reply["error"])
    return [reply["result"] for reply in replies]


def transfer(token: str, sender: str, to: str, amount: int) -> tuple[str, list[Any]]:
    data = "0xa9059cbb" + to[2:].lower().rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    return ("eth_sendTransaction", [{"from": sender, "to": token, "data": data}])


def parent(seconds: float, backend: str) -> None:
    from indexer import preset
    from tests.support.anvil import Anvil, calldata
    from tests.support.postgres import PostgresCluster

    workdir = Path(tempfile.mkdtemp(prefix="bench-pace-"))
    cluster = None
    database = str(workdir / "pace.duckdb")
    if backend == "postgres":
        cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="chainpay-pg-")), fast=False)
        cluster.start()
        cluster.sql("CREATE DATABASE pace")
        database = cluster.url("pace")
    table = preset.preset(PRESET)
    assert table is not None
    node = Anvil(chain_id=table["chain_id"], block_time=BLOCK_TIME, workdir=workdir).start()
    try:
        accounts = node.accounts
        tokens = []
        for token in table["tokens"][:2]:  # USDT, USDC
            deployed = node.deploy_token(token["symbol"], token["decimals"])
            node.rpc(
                "anvil_setCode", token["contract"], node.rpc("eth_getCode", deployed, "latest")
            )
            tokens.append(token["contract"])
            for sender in accounts[1:3]:
                node.send_tx(accounts[0], token["contract"],
                             calldata("mint(address,uint256)", sender, 10**30))  # fmt: skip
        spec = {"ws": node.ws_url, "http": node.http_url, "dir": str(workdir), "seconds": seconds,
                "database": database}  # fmt: skip
        child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)])
        ready = workdir / "invoices.json"
        while not ready.exists():
            if child.poll() is not None:
                raise SystemExit("child failed before it was ready")
            time.sleep(0.2)
        invoices = json.loads(ready.read_text())
        stop = threading.Event()
        traffic = threading.Thread(
            target=_traffic, args=(node.http_url, tokens, accounts[2], stop), daemon=True
        )
        traffic.start()
        started = time.monotonic()
        for i, invoice in enumerate(invoices):
            if time.monotonic() - started > seconds or child.poll() is not None:
                break
            payer = accounts[1]
            if invoice["asset"] == "ETH":
                call = ("eth_sendTransaction", [{"from": payer, "to": invoice["address"],
                                                 "value": hex(invoice["amount"])}])  # fmt: skip
            else:
                contract = tokens[0] if invoice["asset"] == "USDT" else tokens[1]
                call = transfer(contract, payer, invoice["address"], invoice["amount"])
            rpc(node.http_url, [call])
            time.sleep(max(0.0, started + (i + 1) * PAY_EVERY - time.monotonic()))
        (workdir / "payments-done").write_text(str(i))
        stop.set()
        traffic.join()
        if not traffic_alive_until_the_end(traffic, seconds):
            raise SystemExit("the traffic thread died: the run does not count")
        child.wait(timeout=120)
        report(json.loads((workdir / "result.json").read_text()), backend)
    finally:
        node.stop()
        if cluster is not None:
            cluster.stop()


def _traffic(http: str, tokens: list[str], sender: str, stop: threading.Event) -> None:
    """TRAFFIC_PER_BLOCK token transfers to strangers every BLOCK_TIME, in the pool; nonces are
    set here, since the node's "pending" count races a batch of sends from one account."""
    rng = random.Random(5)
    nonce = int(rpc(http, [("eth_getTransactionCount", [sender, "pending"])])[0], 16)
    while not stop.is_set():
        started = time.monotonic()
        calls = []
        for _ in range(TRAFFIC_PER_BLOCK):
            method, [tx] = transfer(rng.choice(tokens), sender, "0x" + rng.randbytes(20).hex(), 1)
            calls.append((method, [{**tx, "nonce": hex(nonce)}]))
            nonce += 1
        rpc(http, calls)
        TRAFFIC_SENT.append(len(calls))
        stop.wait(max(0.0, BLOCK_TIME - (time.monotonic() - started)))


TRAFFIC_SENT: list[int] = []


def traffic_alive_until_the_end(traffic: threading.Thread, seconds: float) -> bool:
    expected = seconds / BLOCK_TIME * TRAFFIC_PER_BLOCK
    print(f"traffic: {sum(TRAFFIC_SENT)} token transfers sent (~{expected:.0f} expected)")
    return sum(TRAFFIC_SENT) >= 0.8 * expected


def report(r: dict[str, Any], backend: str) -> None:
    lat = r["latencies_ms"]
    print(f"\nanvil {1 / BLOCK_TIME:.0f} blocks/s, {TRAFFIC_PER_BLOCK} token transfers per block, "
          f"{r['seconds']:.0f} s, preset {PRESET}, store {backend}")  # fmt: skip
    print(f"payments detected: {len(lat)} of {r['paid']}, missed {r['missed']}")
    print(
        f"detection ms: p50 {statistics.median(lat):.0f}  p99 {_p99(lat):.0f}  max {max(lat):.0f}"
    )
    hooks = r["webhook_ms"]
    if hooks:
        print(f"mined -> invoice.pending POST ms ({len(hooks)}): p50 {statistics.median(hooks):.0f}"
              f"  p99 {_p99(hooks):.0f}  max {max(hooks):.0f}")  # fmt: skip
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"lag blocks: first minute max {r['lag_first']}, last minute max {r['lag_last']}, "
          f"overall max {r['lag_max']}")  # fmt: skip
    print(f"last processed block: {r['blocks']}")
    print(f"gateway process CPU: {r['cpu_percent']:.0f}% of one core")
    ok = _p99(lat) < TARGETS["detect_p99_ms"] and r["lag_last"] <= max(r["lag_first"], 8)
    print("verdict:", "PASS" if ok and r["missed"] == 0 else "FAIL")


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else max(values)


async def child(spec: dict[str, Any]) -> None:
    import aiohttp

    from api.bootstrap import Gateway
    from indexer.config import load_settings
    from indexer.services.invoices import NewInvoice
    from indexer.services.webhooks import parse_new_endpoint
    from indexer.workers.dispatcher import Dispatcher
    from indexer.workers.tail import TailWorker

    workdir = Path(spec["dir"])
    config = workdir / "chainpay.toml"
    config.write_text(f'database = "{spec["database"]}"\n'
                      "[webhooks]\nallow_private_targets = true\n"
                      f'[networks.arb]\npreset = "{PRESET}"\nrpc_url = "{spec["ws"]}"\n')  # fmt: skip
    settings = load_settings(config, env={})
    gateway = Gateway(settings)
    gateway.open()
    store, _ = await gateway.stores.create_store("bench", XPUB)
    hooks: dict[str, float] = {}  # event id -> arrival of its POST
    receiver = await _receiver(hooks)
    endpoint = f"http://127.0.0.1:{receiver.addresses[0][1]}/hook"
    await gateway.webhooks.create(store.id, parse_new_endpoint({"url": endpoint}, settings))
    network = settings.networks["arb"]
    invoices = []
    for i in range(INVOICES):
        asset = network.assets[(1 + i) % 3]  # USDT, USDC, ETH in turn
        amount = 10**asset.decimals
        command = NewInvoice("arb", asset.symbol, amount, None, None, 86400, None)
        reply = await gateway.invoices.create(store, command, None, "bench")
        invoices.append({"asset": asset.symbol, "address": reply.body["address"], "amount": amount})
    read = getattr(gateway.db, "read_sql", None) or gateway.db.read
    announced: dict[int, float] = {}
    seen: dict[str, float] = {}
    lags: list[tuple[float, int]] = []
    tail = TailWorker(gateway.db, settings, network, gateway.matcher, gateway.clock,
                      gateway.network_status["arb"])  # fmt: skip

    async def heads() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(spec["ws"]) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}))  # fmt: skip
            async for message in ws:
                params = json.loads(message.data).get("params")
                if params:
                    announced[int(params["result"]["number"], 16)] = time.perf_counter()

    async def probe() -> None:
        last_sample = 0.0
        while True:
            rows = await read(lambda c: c.execute("SELECT tx_hash FROM payments").fetchall())
            now = time.perf_counter()
            for (tx_hash,) in rows:
                seen.setdefault(tx_hash, now)
            if now - last_sample >= 1.0:
                cursor = await read(
                    lambda c: c.execute(
                        "SELECT block_number FROM chain_cursors WHERE network = 'arb'"
                    ).fetchone()
                )
                if cursor is not None and announced:
                    lags.append((now, max(announced) - int(cursor[0])))
                last_sample = now
            await asyncio.sleep(0.02)

    listener = asyncio.create_task(heads())
    dispatcher = Dispatcher(gateway.db, gateway.webhooks, settings, gateway.clock)
    gateway.start_workers([tail.run, dispatcher.run])
    prober = asyncio.create_task(probe())
    await asyncio.sleep(2.0)  # the first cursor and the websocket settle
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    (workdir / "invoices.json").write_text(json.dumps(invoices))
    while not (workdir / "payments-done").exists():  # noqa: ASYNC110 (another process)
        await asyncio.sleep(0.2)
    await asyncio.sleep(3.0)  # the last payments' blocks
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - wall0
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    prober.cancel()
    listener.cancel()
    await asyncio.gather(prober, listener, return_exceptions=True)
    paid = await read(lambda c: c.execute(
        "SELECT tx_hash, block_number FROM payments").fetchall())  # fmt: skip
    latencies = [(seen[tx] - announced[block]) * 1000 for tx, block in paid
                 if tx in seen and block in announced]  # fmt: skip
    sent = int((workdir / "payments-done").read_text())
    first = [lag for t, lag in lags if t - wall0 <= 60]
    last = [lag for t, lag in lags if t >= lags[-1][0] - 60]
    blocks = await read(lambda c: c.execute(
        "SELECT block_number FROM chain_cursors WHERE network = 'arb'").fetchone())  # fmt: skip
    pending = await read(lambda c: c.execute(
        "SELECT e.id, min(p.block_number) FROM events e JOIN payments p "
        "ON p.invoice_id = e.invoice_id WHERE e.type = 'invoice.pending' GROUP BY e.id").fetchall())  # fmt: skip
    webhook_ms = [(hooks[event] - announced[block]) * 1000 for event, block in pending
                  if event in hooks and block in announced]  # fmt: skip
    await gateway.close()
    await receiver.cleanup()
    result = {
        "seconds": wall, "paid": sent, "missed": sent - len(latencies),
        "latencies_ms": latencies, "lag_first": max(first or [0]), "lag_last": max(last or [0]),
        "lag_max": max(lag for _, lag in lags), "blocks": int(blocks[0]) if blocks else 0,
        "cpu_percent": 100 * cpu / wall, "webhook_ms": webhook_ms,
    }  # fmt: skip
    (workdir / "result.json").write_text(json.dumps(result))


async def _receiver(arrivals: dict[str, float]) -> Any:
    """The merchant's endpoint: notes when each event's POST arrives."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        arrivals.setdefault(request.headers.get("Chainpay-Event-Id", ""), time.perf_counter())
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3"
    "yZdUsT8ddYM3PwnATt"
)

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        asyncio.run(child(json.loads(sys.argv[2])))
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        parser.add_argument("seconds", type=float, nargs="?", default=180.0)
        parser.add_argument("--backend", choices=("duckdb", "postgres"), default="duckdb")
        options = parser.parse_args()
        parent(options.seconds, options.backend)
