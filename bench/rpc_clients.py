"""The catch-up workload through the project's JSON-RPC client and through web3.py's AsyncWeb3.

Run: .venv/bin/python bench/rpc_clients.py [rounds]   (default 7)

One anvil, a 6-decimal USDT, BLOCKS blocks of TRANSFERS_PER_BLOCK token transfers each. Then,
per client and transport, the two reads the tail makes while catching up:

- logs: `eth_getLogs` for the token's Transfer topic over the whole stretch in ranges of
  LOG_RANGE blocks, one request per range, RANGES_IN_FLIGHT at a time;
- blocks: `eth_getBlockByNumber(n, true)` for every block, as JSON-RPC batches of BATCH.

Clients: indexer.chain.rpc.JsonRpcClient (aiohttp; HTTP batches, or concurrent requests on one
websocket) and web3.py 8's AsyncWeb3 with AsyncHTTPProvider and with the persistent
WebSocketProvider, both with `batch_requests()`. Rounds alternate the order; the median and the
best round are printed. Each client's results are checked against the others (same logs, same
block hashes), so a faster wrong answer cannot win.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.indexer import random_address, rpc_batch, transfer_calls

BLOCKS = 200
TRANSFERS_PER_BLOCK = 100
LOG_RANGE = 20
RANGES_IN_FLIGHT = 4
BATCH = 50
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

Workload = Callable[[int, int], Awaitable[tuple[int, list[str]]]]  # -> (logs, block hashes)


def ranges(first: int, last: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size - 1, last)) for a in range(first, last + 1, size)]


async def in_flight(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


# -- the project's client ------------------------------------------------------------------------
def own_client(url: str, token: str) -> tuple[Workload, Callable[[], Awaitable[None]]]:
    from indexer.chain.rpc import JsonRpcClient

    client = JsonRpcClient(url, "bench", timeout=60, max_batch=BATCH)

    async def logs(first: int, last: int) -> int:
        def job(a: int, b: int) -> Callable[[], Awaitable[Any]]:
            query = {"address": token, "topics": [TRANSFER_TOPIC], "fromBlock": hex(a),
                     "toBlock": hex(b)}  # fmt: skip
            return lambda: client.call("eth_getLogs", [query])

        found = await in_flight([job(a, b) for a, b in ranges(first, last, LOG_RANGE)],
                                RANGES_IN_FLIGHT)  # fmt: skip
        return sum(len(f) for f in found)

    async def blocks(first: int, last: int) -> list[str]:
        hashes: list[str] = []
        for a, b in ranges(first, last, BATCH):
            got = await client.batch(
                [("eth_getBlockByNumber", [hex(n), True]) for n in range(a, b + 1)]
            )
            hashes += [str(block["hash"]) for block in got]
        return hashes

    async def run(first: int, last: int) -> tuple[int, list[str]]:
        return await logs(first, last), await blocks(first, last)

    return run, client.close


# -- web3.py -------------------------------------------------------------------------------------
async def web3_client(url: str, token: str) -> tuple[Workload, Callable[[], Awaitable[None]]]:
    from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider

    if url.startswith("ws"):
        # websockets' default frame cap is 1 MiB: one batch of 50 full blocks is ~1.3 MB here.
        provider = WebSocketProvider(url, websocket_kwargs={"max_size": 2**26})
        w3: Any = await AsyncWeb3(provider)
    else:
        w3 = AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": 60}))
    address = w3.to_checksum_address(token)

    async def logs(first: int, last: int) -> int:
        def job(a: int, b: int) -> Callable[[], Awaitable[Any]]:
            query = {"address": address, "topics": [TRANSFER_TOPIC], "fromBlock": a, "toBlock": b}
            return lambda: w3.eth.get_logs(query)

        found = await in_flight([job(a, b) for a, b in ranges(first, last, LOG_RANGE)],
                                RANGES_IN_FLIGHT)  # fmt: skip
        return sum(len(f) for f in found)

    async def blocks(first: int, last: int) -> list[str]:
        hashes: list[str] = []
        for a, b in ranges(first, last, BATCH):
            async with w3.batch_requests() as batch:
                for n in range(a, b + 1):
                    batch.add(w3.eth.get_block(n, True))
                got = await batch.async_execute()
            hashes += ["0x" + bytes(block["hash"]).hex() for block in got]
        return hashes

    async def run(first: int, last: int) -> tuple[int, list[str]]:
        return await logs(first, last), await blocks(first, last)

    async def close() -> None:
        await w3.provider.disconnect()

    return run, close


# -- the run -------------------------------------------------------------------------------------
def mine(node: Any, token: str, sender: str) -> tuple[int, int]:
    rng = random.Random(1)
    node.rpc("evm_setAutomine", False)
    first = node.head() + 1
    for _ in range(BLOCKS):
        recipients = [random_address(rng) for _ in range(TRANSFERS_PER_BLOCK)]
        rpc_batch(node.http_url, transfer_calls(token, sender, recipients))
        node.rpc("evm_mine")
    node.rpc("evm_setAutomine", True)
    return first, node.head()


async def measure(http: str, ws: str, token: str, span: tuple[int, int], rounds: int) -> None:
    async def make(name: str) -> tuple[Workload, Callable[[], Awaitable[None]]]:
        if name == "JsonRpcClient http":
            return own_client(http, token)
        if name == "JsonRpcClient ws":
            return own_client(ws, token)
        if name == "AsyncWeb3 http":
            return await web3_client(http, token)
        return await web3_client(ws, token)

    names = ["JsonRpcClient http", "JsonRpcClient ws", "AsyncWeb3 http", "AsyncWeb3 ws"]
    clients = {name: await make(name) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    answers: dict[str, tuple[int, list[str]]] = {}
    try:
        for _, (run, _close) in clients.items():
            await run(*span)  # warm-up: connections, anvil's caches
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                started = time.perf_counter()
                answers[name] = await clients[name][0](*span)
                times[name].append(time.perf_counter() - started)
    finally:
        for _, close in clients.values():
            await close()
    reference = answers[names[0]]
    assert all(a == reference for a in answers.values()), "the clients disagree"
    logs, hashes = reference
    print(f"workload: {span[1] - span[0] + 1} blocks, {logs:,} Transfer logs; eth_getLogs in "
          f"ranges of {LOG_RANGE} ({RANGES_IN_FLIGHT} in flight), then every block with its "
          f"transactions in batches of {BATCH}; {rounds} rounds")  # fmt: skip
    base = statistics.median(times[names[0]])
    for name in names:
        med = statistics.median(times[name])
        print(f"  {name:20} median {med * 1000:7.0f} ms  best {min(times[name]) * 1000:7.0f} ms"
              f"  ({len(hashes) / med:6.0f} blocks/s, {med / base:4.2f}x JsonRpcClient http)")  # fmt: skip


def main() -> None:
    from tests.support.anvil import Anvil

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    node = Anvil(chain_id=31337, workdir=Path(tempfile.mkdtemp(prefix="bench-rpc-"))).start()
    try:
        token = node.deploy_token("USDT", 6)
        sender = node.accounts[1]
        node.token_mint(token, sender, 10**30)
        span = mine(node, token, sender)
        asyncio.run(measure(node.http_url, node.ws_url, token, span, rounds))
    finally:
        node.stop()


if __name__ == "__main__":
    main()
