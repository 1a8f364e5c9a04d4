"""Benchmark of webhook delivery: throughput, commit-to-receiver latency, isolation from a dead endpoint.

Run: .venv/bin/python bench/webhooks.py [--events 5000] [--fanout-events 400]
         [--backend duckdb|postgres|both] [--latency-only]

A real Gateway (DuckDB in a temporary directory, or PostgreSQL: a throwaway cluster this bench
starts, default durability, same cores) runs the dispatcher in this process; the
receivers run in a child process (one aiohttp site per endpoint, so every endpoint is its own
host:port, as merchants' endpoints are), so sender and receiver do not share a CPU. Phases:

1. deliveries/s to 1 endpoint and to 50 endpoints (events committed 100 per transaction, as the
   indexer commits a block);
2. latency from an invoice's commit (its `invoice.created` event) to the receiver getting the
   POST, p50/p99 — once relying on the dispatcher's poll only, once with the writer calling
   `gateway.webhooks.notify()` after its commit;
3. throughput of 10 healthy endpoints with and without an 11th endpoint that never answers
   (every attempt runs into the 10 s timeout), in the same run;
4. on PostgreSQL, the cross-replica case: invoices created through a second Gateway on the same
   database (replica B, whose commits wake only its own process) and delivered by the first
   one's dispatcher (the leader, A) — once with A relying on its poll (50 ms), once with A
   listening for B's commits (LISTEN/NOTIFY, `follow_remote_commits`), in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import ClientSession, web

from tests.support.postgres import PostgresCluster

ROUNDS = 3
HANG = 3600.0  # the dead endpoint's answer never comes within the 10 s timeout


# --- the receiver process ----------------------------------------------------------------------
async def serve_receivers(count: int, hanging: int) -> None:
    """`count` sites on free ports (the first `hanging` never answer) and a control site."""
    arrivals: list[tuple[str, int, float]] = []
    counts: dict[int, int] = {}
    runners = []

    def handler(port: int, hang: bool) -> Any:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            arrivals.append((request.headers.get("Chainpay-Event-Id", ""), port, time.time()))
            counts[port] = counts.get(port, 0) + 1
            if hang:
                await asyncio.sleep(HANG)
            return web.Response(text="ok")

        return handle

    ports = []
    for i in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = web.Application()
        app.router.add_post("/hook", handler(port, i < hanging))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        ports.append(port)
        runners.append(runner)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({str(p): n for p, n in counts.items()})

    async def dump(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        counts.clear()
        return web.json_response({})

    control = web.Application()
    control.router.add_get("/stats", stats)
    control.router.add_get("/arrivals", dump)
    control.router.add_post("/reset", reset)
    control_runner = web.AppRunner(control, access_log=None)
    await control_runner.setup()
    site = web.TCPSite(control_runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"ports": ports, "control": control_runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()


class Receivers:
    """The child process and its control API."""

    def __init__(self, count: int, hanging: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--receivers", str(count), "--hanging", str(hanging)],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        info = json.loads(self.process.stdout.readline())
        self.ports: list[int] = info["ports"]
        self.control = f"http://127.0.0.1:{info['control']}"
        self.session = ClientSession()

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}/hook"

    async def counts(self) -> dict[int, int]:
        async with self.session.get(self.control + "/stats") as response:
            return {int(p): n for p, n in (await response.json()).items()}

    async def arrivals(self) -> list[tuple[str, int, float]]:
        async with self.session.get(self.control + "/arrivals") as response:
            return [(a[0], a[1], a[2]) for a in await response.json()]

    async def reset(self) -> None:
        async with self.session.post(self.control + "/reset"):
            pass

    async def wait_total(self, ports: list[int], total: int, within: float = 120.0) -> float:
        """Wait until these ports got `total` requests together; the time it happened."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            counts = await self.counts()
            if sum(counts.get(p, 0) for p in ports) >= total:
                return time.perf_counter()
            await asyncio.sleep(0.01)
        raise TimeoutError(f"only {sum(counts.get(p, 0) for p in ports)} of {total} arrived")

    async def close(self) -> None:
        await self.session.close()
        self.process.kill()
        self.process.wait()


# --- the gateway side --------------------------------------------------------------------------
async def open_gateway(directory: Path, url: str | None = None, dispatch: bool = True) -> Any:
    from api.bootstrap import Gateway
    from indexer.config import Settings, WebhookSettings
    from indexer.domain.network import Asset, Network
    from indexer.workers.dispatcher import Dispatcher

    usdt = Asset("USDT", 6, "0xdAC17F958D2ee523a2206206994597C13D831ec7")
    network = Network("ethereum", 1, "ws://127.0.0.1:9", 12, Asset("ETH", 18), (usdt,))
    settings = Settings(
        source="bench",
        database=directory / "bench.duckdb",
        postgres_url=url,
        public_url="https://pay.example.com",
        networks={"ethereum": network},
        webhooks=WebhookSettings(allow_private_targets=True, timeout_seconds=10.0),
    )
    gateway = Gateway(settings)
    gateway.open()
    if dispatch:
        dispatcher = Dispatcher(gateway.db, gateway.webhooks, gateway.settings, gateway.clock)
        gateway.start_workers([dispatcher.run])
    return gateway


async def new_store(gateway: Any, seed: int) -> Any:
    from bip_utils import Bip32Secp256k1

    root = Bip32Secp256k1.FromSeed(seed.to_bytes(4, "big") * 8)  # a throwaway public key
    xpub = str(root.DerivePath("m/44'/60'/0'").PublicKey().ToExtended())
    store, _ = await gateway.stores.create_store(f"bench{seed}", xpub)
    return store


async def add_endpoints(gateway: Any, store: Any, urls: list[str]) -> None:
    from indexer.services.webhooks import parse_new_endpoint

    for url in urls:
        await gateway.webhooks.create(store.id, parse_new_endpoint({"url": url}, gateway.settings))


async def commit_events(gateway: Any, store: Any, count: int) -> None:
    from indexer.domain.ids import new_id
    from indexer.store.rows import EventRow

    now = gateway.clock.now()
    for start in range(0, count, 100):
        rows = []
        for i in range(start, min(start + 100, count)):
            event_id = new_id("evt")
            body = {"id": event_id, "object": "event", "type": "invoice.paid", "n": i, "data": {}}
            rows.append(EventRow(event_id, store.id, "invoice.paid", None, json.dumps(body), now))
        await gateway.db.write(lambda uow, rows=rows: uow.events.insert_events(rows), kind="bench")
        gateway.webhooks.notify()


async def throughput(
    gateway: Any, receivers: Receivers, seed: int, endpoints: list[int], events: int
) -> float:
    store = await new_store(gateway, seed)
    await add_endpoints(gateway, store, [receivers.url(i) for i in endpoints])
    ports = [receivers.ports[i] for i in endpoints]
    counts = await receivers.counts()
    before = sum(counts.get(p, 0) for p in ports)
    started = time.perf_counter()
    await commit_events(gateway, store, events)
    ended = await receivers.wait_total(ports, before + events * len(endpoints))
    return events * len(endpoints) / (ended - started)


async def latency(
    gateway: Any,
    receivers: Receivers,
    seed: int,
    endpoint: int,
    count: int,
    notify: bool,
    creator: Any = None,
    gap: float = 0.01,
) -> tuple[float, float]:
    """Invoices created one every `gap` s (through `creator`, another replica, when given); ms
    from each commit to its POST arriving."""
    from indexer.services.invoices import NewInvoice

    store = await new_store(gateway, seed)
    await add_endpoints(gateway, store, [receivers.url(endpoint)])
    if creator is not None:
        await creator.db.read(creator.stores.refresh)
    creator = creator or gateway
    await receivers.reset()
    committed: dict[str, float] = {}
    command = NewInvoice("ethereum", "USDT", 1_000_000, None, None, 900, None)
    for _ in range(count):
        reply = await creator.invoices.create(creator.stores.stores[store.id], command, None, "b")
        committed[reply.body["id"]] = time.time()
        if notify:
            gateway.webhooks.notify()
        await asyncio.sleep(gap)
    await receivers.wait_total([receivers.ports[endpoint]], count)
    rows = await gateway.db.read_sql(
        lambda c: c.execute(
            "SELECT id, invoice_id FROM events WHERE store_id = ?", [store.id]
        ).fetchall()
    )
    invoice_of = dict(rows)
    samples = sorted(
        (at - committed[invoice_of[event_id]]) * 1000
        for event_id, _, at in await receivers.arrivals()
        if event_id in invoice_of
    )
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99


async def main(args: argparse.Namespace) -> None:
    # endpoints: 0 hangs; 1..50 healthy
    receivers = Receivers(51, hanging=1)
    try:
        for backend in ("duckdb", "postgres") if args.backend == "both" else (args.backend,):
            print(f"--- {backend}")
            if backend == "duckdb":
                with tempfile.TemporaryDirectory() as tmp:
                    await run(args, receivers, Path(tmp), None)
                continue
            cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="chainpay-pg-")), fast=False)
            cluster.start()
            try:
                cluster.sql("CREATE DATABASE bench")
                with tempfile.TemporaryDirectory() as tmp:
                    await run(args, receivers, Path(tmp), cluster.url("bench"))
            finally:
                cluster.stop()
                shutil.rmtree(cluster.root, ignore_errors=True)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        await receivers.close()


async def run(args: argparse.Namespace, receivers: Receivers, tmp: Path, url: str | None) -> None:
    gateway = await open_gateway(tmp, url)
    try:
        if not args.latency_only:
            one = await throughput(gateway, receivers, 1, [1], args.events)
            print(f"1 endpoint:   {one:8.0f} deliveries/s ({args.events} events)")
            fifty = await throughput(gateway, receivers, 2, list(range(1, 51)), args.fanout_events)
            total = args.fanout_events * 50
            print(f"50 endpoints: {fifty:8.0f} deliveries/s ({total} deliveries)")
        p50, p99 = await latency(gateway, receivers, 3, 1, args.latency_invoices, False)
        print(f"commit -> POST, same process: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        if url is not None:
            await cross_replica(args, gateway, receivers, tmp, url)
        if not args.latency_only:
            alone, beside = await isolation(gateway, receivers, args.isolation_events)
            print(f"10 healthy endpoints alone:        {alone:8.0f} deliveries/s (median)")
            print(f"10 healthy + 1 timing out (10 s):  {beside:8.0f} deliveries/s to the healthy")
            print(f"cost of the dead endpoint: {100 * (1 - beside / alone):5.1f}% of throughput")
    finally:
        await gateway.close()


async def cross_replica(
    args: argparse.Namespace, leader: Any, receivers: Receivers, tmp: Path, url: str
) -> None:
    """Invoices created through replica B, delivered by the leader's dispatcher: by its poll
    alone, then with the leader listening for B's commits (NOTIFY). One every 100 ms: in a
    denser stream each fan-out's own commit re-wakes the fan-out within 10 ms, which hides the
    poll."""
    (tmp / "b").mkdir()
    replica = await open_gateway(tmp / "b", url, dispatch=False)
    try:
        count, gap = min(args.latency_invoices, 300), 0.1
        p50, p99 = await latency(leader, receivers, 5, 4, count, False, replica, gap)
        print(f"commit on B -> POST by A, poll only:   p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        listening = asyncio.create_task(leader.db.follow_remote_commits())
        try:
            await asyncio.sleep(1.0)  # connected and listening
            p50, p99 = await latency(leader, receivers, 6, 5, count, False, replica, gap)
            print(f"commit on B -> POST by A, with NOTIFY: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
    finally:
        await replica.close()


async def isolation(gateway: Any, receivers: Receivers, events: int) -> tuple[float, float]:
    """Median throughput to 10 healthy endpoints without, then with, a dead 11th endpoint.

    Rounds alternate (alone, beside, alone, …) so drift — a growing database, other load on
    the machine — hits both sides alike. The dead endpoint is deleted after its round; its
    in-flight attempts still run into the timeout meanwhile.
    """
    healthy = list(range(1, 11))
    ports = [receivers.ports[i] for i in healthy]
    results: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(ROUNDS * 2):
        dead = round_ % 2 == 1
        store = await new_store(gateway, 100 + round_)
        urls = [receivers.url(i) for i in healthy]
        await add_endpoints(gateway, store, ([receivers.url(0)] if dead else []) + urls)
        counts = await receivers.counts()
        before = sum(counts.get(p, 0) for p in ports)
        started = time.perf_counter()
        await commit_events(gateway, store, events)
        ended = await receivers.wait_total(ports, before + events * len(healthy))
        results[dead].append(events * len(healthy) / (ended - started))
        for endpoint in list(gateway.webhooks.endpoints.values()):
            if endpoint.store_id == store.id and endpoint.url == receivers.url(0):
                await gateway.webhooks.delete(store.id, endpoint.id)
    return statistics.median(results[False]), statistics.median(results[True])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--fanout-events", type=int, default=400)
    parser.add_argument("--latency-invoices", type=int, default=500)
    parser.add_argument("--isolation-events", type=int, default=2000)
    parser.add_argument("--backend", choices=("duckdb", "postgres", "both"), default="duckdb")
    parser.add_argument("--latency-only", action="store_true", help="only the latency phases")
    parser.add_argument("--receivers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hanging", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.receivers:
        asyncio.run(serve_receivers(options.receivers, options.hanging))
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        asyncio.run(main(options))
