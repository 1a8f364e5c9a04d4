"""Benchmark of the indexer on anvil: catch-up rate, per-block cost, detection latency, RSS.

Run: .venv/bin/python bench/indexer.py [sizes...]   (default 1000 100000 1000000)

The parent starts one anvil, deploys a 6-decimal USDT and mines a dense stretch: DENSE_BLOCKS
blocks of TRANSFERS_PER_BLOCK token transfers each, two of them to issued addresses. Each size
then runs in a fresh subprocess (so RSS is its own) on a fresh DuckDB file: N invoices are
inserted in bulk (SQL) and loaded into the matcher as `chainpay serve` does at start, then

- per-block cost: the dense blocks processed one block per transaction (p50/p99);
- catch-up: the same blocks again from a reset cursor, in ranges as the tail catches up;
- detection latency at 1 s block time: the tail worker follows anvil's interval mining while
  ~100 transfers per block keep flowing; from the moment anvil announces the block holding a
  payment (newHeads over a websocket) to the moment the invoice reads `pending` in DuckDB;
- bloom false-positive rate over 1,000,000 random non-issued addresses; process RSS.

Finally, sparse catch-up: SPARSE_BLOCKS empty blocks, processed from a cursor behind them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DENSE_BLOCKS = 200
TRANSFERS_PER_BLOCK = 100
HITS_PER_BLOCK = 2
LATENCY_PAYMENTS = 12
SPARSE_BLOCKS = 10_000
TARGETS = {"p99_ratio": 1.2, "detect_p99_ms": 500, "rss_mb": 300, "sparse_bps": 1000}


def issued_address(i: int) -> str:
    """The i-th synthetic issued address; the SQL bulk insert computes the same."""
    digest = hashlib.md5(str(i).encode()).hexdigest() + hashlib.md5(str(i + 7).encode()).hexdigest()
    return "0x" + digest[:40]


def progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rpc_batch(url: str, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    body = json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    ).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        replies = json.loads(response.read())
    return [r.get("result") for r in sorted(replies, key=lambda r: r["id"])]


def transfer_calls(token: str, sender: str, recipients: list[str]) -> list[tuple[str, list[Any]]]:
    from tests.support.anvil import calldata

    return [
        (
            "eth_sendTransaction",
            [{"from": sender, "to": token, "gas": "0x19000",
              "data": calldata("transfer(address,uint256)", r, 1_000)}],
        )
        for r in recipients
    ]  # fmt: skip


def random_address(rng: random.Random) -> str:
    return "0x" + rng.randbytes(20).hex()


# -- parent ------------------------------------------------------------------------------------
def parent(sizes: list[int]) -> None:
    from tests.support.anvil import Anvil

    workdir = Path(tempfile.mkdtemp(prefix="bench-indexer-"))
    node = Anvil(chain_id=31337, workdir=workdir).start()
    try:
        token = node.deploy_token("USDT", 6)
        sender = node.accounts[1]
        node.token_mint(token, sender, 10**30)
        node.token_mint(token, node.accounts[2], 10**30)  # background traffic's own nonces
        first = node.head() + 1
        started = time.perf_counter()
        mine_dense(node, token, sender, DENSE_BLOCKS, random.Random(1))
        print(f"dense chain: blocks {first}..{node.head()} ({DENSE_BLOCKS} x "
              f"{TRANSFERS_PER_BLOCK} transfers) mined in {time.perf_counter() - started:.1f}s")  # fmt: skip
        dense = (first, node.head())
        results = []
        for n in sizes:
            results.append(child_run(node, token, sender, n, dense, "dense"))
            report(results[-1])
        node.rpc("evm_setIntervalMining", 0)
        sparse_first = node.head() + 1
        for _ in range(SPARSE_BLOCKS // 500):
            rpc_batch(node.http_url, [("anvil_mine", [hex(500)])])
        sparse = child_run(node, token, sender, sizes[-1], (sparse_first, node.head()), "sparse")
        print(f"sparse catch-up: {SPARSE_BLOCKS} empty blocks at {sparse['blocks_per_s']:,.0f} "
              f"blocks/s (target >= {TARGETS['sparse_bps']:,})")  # fmt: skip
        verdicts(results, sparse)
    finally:
        node.stop()


def mine_dense(node: Any, token: str, sender: str, blocks: int, rng: random.Random) -> None:
    node.rpc("evm_setAutomine", False)
    hit = 0
    for _ in range(blocks):
        recipients = [random_address(rng) for _ in range(TRANSFERS_PER_BLOCK - HITS_PER_BLOCK)]
        for _ in range(HITS_PER_BLOCK):
            recipients.insert(rng.randrange(len(recipients)), issued_address(hit))
            hit += 1
        rpc_batch(node.http_url, transfer_calls(token, sender, recipients))
        node.rpc("evm_mine")
    node.rpc("evm_setAutomine", True)


def child_run(
    node: Any, token: str, sender: str, size: int, blocks: tuple[int, int], mode: str
) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", json.dumps({
        "size": size, "http": node.http_url, "ws": node.ws_url, "token": token,
        "sender": sender, "traffic": node.accounts[2], "first": blocks[0], "last": blocks[1], "mode": mode,
    })]  # fmt: skip
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def report(r: dict[str, Any]) -> None:
    print(
        f"N={r['size']:>9,}: per block p50 {r['block_p50_ms']:.2f} ms p99 {r['block_p99_ms']:.2f} ms"
        f" | catch-up {r['blocks_per_s']:,.0f} blocks/s | detection p50 {r['detect_p50_ms']:.0f}"
        f" ms p99 {r['detect_p99_ms']:.0f} ms | RSS {r['rss_mb']:.0f} MB | bloom FP "
        f"{r['fp_rate']:.2e} | load {r['load_s']:.1f}s",
        flush=True,
    )


def verdicts(results: list[dict[str, Any]], sparse: dict[str, Any]) -> None:
    small, large = results[0], results[-1]
    ratio = large["block_p50_ms"] / small["block_p50_ms"]
    checks = [
        (f"per-block p50 at N={large['size']:,} / N={small['size']:,} = {ratio:.2f}",
         ratio <= TARGETS["p99_ratio"]),
        (f"detection p99 max {max(r['detect_p99_ms'] for r in results):.0f} ms",
         all(r["detect_p99_ms"] < TARGETS["detect_p99_ms"] for r in results)),
        (f"RSS at N={large['size']:,} {large['rss_mb']:.0f} MB", large["rss_mb"] < TARGETS["rss_mb"]),
        (f"sparse catch-up {sparse['blocks_per_s']:,.0f} blocks/s",
         sparse["blocks_per_s"] >= TARGETS["sparse_bps"]),
    ]  # fmt: skip
    for text, ok in checks:
        print(f"{'MET   ' if ok else 'MISSED'} {text}")


# -- child -------------------------------------------------------------------------------------
async def child(spec: dict[str, Any]) -> dict[str, Any]:
    from api.bootstrap import Gateway
    from indexer.chain.fetch import BlockFetcher
    from indexer.chain.reader import ChainReader
    from indexer.chain.rpc import JsonRpcClient
    from indexer.config import Settings
    from indexer.domain.network import Asset, Network
    from indexer.services.blocks import BlockService

    workdir = Path(tempfile.mkdtemp(prefix="bench-indexer-db-"))
    network = Network("ethereum", 31337, spec["ws"], 3, Asset("ETH", 18),
                      (Asset("USDT", 6, to_checksum(spec["token"])),))  # fmt: skip
    settings = Settings(source="bench", database=workdir / "bench.duckdb",
                        public_url="http://127.0.0.1:8080", networks={"ethereum": network})  # fmt: skip
    gateway = Gateway(settings)
    gateway.open()
    store, _ = await gateway.stores.create_store("bench", XPUB)
    started = time.perf_counter()
    await gateway.db.write(lambda c: bulk_invoices(c, store.id, spec["size"]))
    addresses = await gateway.db.read(
        lambda c: [r[0] for r in c.execute("SELECT address FROM invoices").fetchall()]
    )
    gateway.matcher.add_many(addresses)
    del addresses
    load_s = time.perf_counter() - started
    progress(f"N={spec['size']:,}: loaded in {load_s:.1f}s, RSS {rss_mb():.0f} MB")

    client = JsonRpcClient(spec["ws"], "ethereum", timeout=30)
    reader = ChainReader(client)

    async def no_native() -> list[str]:
        return []

    def service() -> BlockService:
        fetcher = BlockFetcher(reader, network, gateway.matcher.screen, no_native)
        return BlockService(gateway.db, settings, network, reader, fetcher, gateway.clock)

    first, last = spec["first"], spec["last"]
    result: dict[str, Any] = {"size": spec["size"], "load_s": load_s}
    if spec["mode"] == "sparse":
        blocks = service()
        await reset(gateway, reader, first)
        await blocks.load_cursor(0)
        started = time.perf_counter()
        while blocks.cursor is not None and blocks.cursor.number < last:
            await blocks.process(blocks.cursor.number + 1, min(last, blocks.cursor.number + 500))
        result["blocks_per_s"] = (last - first + 1) / (time.perf_counter() - started)
        await client.close()
        await gateway.close()
        return result

    # per block: one block per transaction, as when following the head
    blocks = service()
    await reset(gateway, reader, first)
    await blocks.load_cursor(0)
    per_block = []
    for number in range(first, last + 1):
        t0 = time.perf_counter()
        await blocks.process(number, number)
        per_block.append((time.perf_counter() - t0) * 1000)
    matched = await gateway.db.read_sql(
        lambda c: c.execute("SELECT count(*) FROM payments").fetchone()[0]
    )
    assert matched == DENSE_BLOCKS * HITS_PER_BLOCK, matched
    progress("per-block pass done")
    result["block_p50_ms"] = statistics.median(per_block)
    result["block_p99_ms"] = statistics.quantiles(per_block, n=100)[98]

    # catch-up: the same blocks from a reset cursor, in ranges
    await reset(gateway, reader, first)
    blocks = service()
    await blocks.load_cursor(0)
    started = time.perf_counter()
    while blocks.cursor is not None and blocks.cursor.number < last:
        await blocks.process(blocks.cursor.number + 1, min(last, blocks.cursor.number + 500))
    result["blocks_per_s"] = (last - first + 1) / (time.perf_counter() - started)
    await client.close()
    progress("catch-up pass done")

    latencies = await detection(gateway, settings, network, spec)
    result["detect_p50_ms"] = statistics.median(latencies)
    result["detect_p99_ms"] = max(latencies)  # 12 samples: the worst stands in for p99
    progress("detection done")
    rng = random.Random(3)
    before = gateway.matcher.stats().false_positives
    probes = 1_000_000
    gateway.matcher.screen(random_address(rng) for _ in range(probes))
    result["fp_rate"] = (gateway.matcher.stats().false_positives - before) / probes
    result["rss_mb"] = rss_mb()
    await gateway.close()
    return result


async def wait_pending(gateway: Any, invoice_id: str) -> None:
    def status(uow: Any) -> str:
        invoice = uow.invoices.get_invoice(invoice_id)
        assert invoice is not None
        return invoice.status.value

    while await gateway.db.read(status) == "new":  # noqa: ASYNC110 - polling DuckDB, no event
        await asyncio.sleep(0.002)


async def reset(gateway: Any, reader: Any, first: int) -> None:
    """Forget everything the indexer wrote and put the cursor just before `first`."""
    from indexer.store.rows import Cursor

    parent = await reader.get_block(first - 1, full_transactions=False)
    now = datetime.now(UTC)

    def wipe(uow: Any) -> None:
        conn = uow.conn
        for table in ("transfers", "payments", "blocks", "chain_cursors"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("DELETE FROM events WHERE type <> 'invoice.created'")
        conn.execute(
            "UPDATE invoices SET status = 'new', amount_received = 0::BIGNUM, "
            "amount_confirmed = 0::BIGNUM WHERE status <> 'new'"
        )
        uow.chain.save_cursor("ethereum", Cursor(parent.number, parent.hash), now)

    await gateway.db.write(wipe)


async def detection(gateway: Any, settings: Any, network: Any, spec: dict[str, Any]) -> list[float]:
    """Milliseconds from anvil announcing a payment's block to the invoice reading `pending`."""
    import aiohttp

    from indexer.workers.tail import TailWorker

    http = spec["http"]
    head = int(rpc_batch(http, [("eth_blockNumber", [])])[0], 16)
    await reset(gateway, _Reader(http), head + 1)
    tail = TailWorker(gateway.db, settings, network, gateway.matcher, gateway.clock,
                      gateway.network_status["ethereum"], poll_interval=5.0)  # fmt: skip
    gateway.start_workers([tail.run])
    announced: dict[int, float] = {}
    stop = threading.Event()

    async def heads() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(spec["ws"]) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}))  # fmt: skip
            async for message in ws:
                params = json.loads(message.data).get("params")
                if params:
                    announced[int(params["result"]["number"], 16)] = time.perf_counter()

    listener = asyncio.create_task(heads())
    traffic = threading.Thread(target=background, args=(http, spec, stop), daemon=True)
    rpc_batch(http, [("evm_setAutomine", [False]), ("evm_setIntervalMining", [1])])
    traffic.start()
    latencies = []
    targets = [issued_address(DENSE_BLOCKS * HITS_PER_BLOCK + i) for i in range(LATENCY_PAYMENTS)]
    for address in targets:
        invoice = await gateway.db.read(lambda u, a=address: u.chain.invoices_at([a])[a])
        [tx] = rpc_batch(http, transfer_calls(spec["token"], spec["sender"], [address]))
        try:
            await asyncio.wait_for(wait_pending(gateway, invoice.id), 15)
        except TimeoutError:
            progress(f"payment to {address} not detected within 15 s")
            latencies.append(float("inf"))
            continue
        detected = time.perf_counter()
        receipt = rpc_batch(http, [("eth_getTransactionReceipt", [tx])])[0]
        block = int(receipt["blockNumber"], 16)
        await asyncio.sleep(0.05)  # the announcement may still be in the listener's socket
        latencies.append((detected - announced[block]) * 1000)
    stop.set()
    traffic.join()
    rpc_batch(http, [("evm_setIntervalMining", [0]), ("evm_setAutomine", [True])])
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    return latencies


class _Reader:
    """Just enough of ChainReader for `reset`, over plain HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def get_block(self, number: int, full_transactions: bool = False) -> Any:
        from indexer.chain.decode import decode_block

        return decode_block(
            rpc_batch(self.url, [("eth_getBlockByNumber", [hex(number), False])])[0]
        )


def background(http: str, spec: dict[str, Any], stop: threading.Event) -> None:
    """About TRANSFERS_PER_BLOCK token transfers per second to strangers, in the pool."""
    rng = random.Random(5)
    sender = spec["traffic"]  # not the payer: two threads sharing nonces would drop txs
    while not stop.is_set():
        started = time.monotonic()
        recipients = [random_address(rng) for _ in range(TRANSFERS_PER_BLOCK)]
        rpc_batch(http, transfer_calls(spec["token"], sender, recipients))
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def bulk_invoices(conn: Any, store_id: str, size: int) -> None:
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO invoices (id, store_id, network, asset, amount, address, address_index, "
        "status, exception, amount_received, amount_confirmed, reorg_flagged, expires_at, "
        "monitoring_until, created_at, updated_at) "
        "SELECT 'inv_bench' || i, ?, 'ethereum', 'USDT', 1000::BIGNUM, "
        "'0x' || substr(md5(i::VARCHAR) || md5((i + 7)::VARCHAR), 1, 40), i, 'new', NULL, "
        "0::BIGNUM, 0::BIGNUM, false, ?, ?, ?, ? FROM range(?) t(i)",
        [store_id, now + timedelta(days=1), now + timedelta(days=2), now, now, size],
    )


def to_checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    return str(to_checksum_address(address))


XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3"
    "yZdUsT8ddYM3PwnATt"
)

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        print(json.dumps(asyncio.run(child(json.loads(sys.argv[2])))))
    else:
        parent([int(a) for a in sys.argv[1:]] or [1000, 100_000, 1_000_000])
