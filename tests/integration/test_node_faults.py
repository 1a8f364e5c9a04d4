"""geth's batch caps, tracers a node lacks, and a node answering no logs: reader and fetcher."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from indexer.chain.fetch import TRACER_REPROBE_SECONDS, BlockFetcher
from indexer.chain.reader import ChainReader
from indexer.chain.rpc import JsonRpcClient
from indexer.metrics import EMPTY_LOGS_REFETCHED
from tests.support.anvil import Anvil
from tests.support.gateway import Chain
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil


@pytest.fixture
async def proxy(anvil: Anvil) -> AsyncIterator[RpcProxy]:
    async with RpcProxy(anvil.http_url) as running:
        yield running


@pytest.fixture
async def client(proxy: RpcProxy) -> AsyncIterator[JsonRpcClient]:
    rpc = JsonRpcClient(proxy.url, "faulty", timeout=5.0, max_batch=100)
    yield rpc
    await rpc.close()


def batch_sizes(proxy: RpcProxy, method: str) -> int:
    return len(proxy.methods(method))


async def test_batch_over_the_response_cap_is_split_and_every_block_arrives(
    anvil: Anvil, proxy: RpcProxy, client: JsonRpcClient
) -> None:
    # given 60 blocks and a node capping a batch's results at about ten blocks (geth: 25 MB)
    anvil.mine(60)
    proxy.batch_response_cap = 10 * 600
    # when 60 full blocks are asked in one call
    blocks = await ChainReader(client).get_blocks(list(range(1, 61)))
    # then every block arrives in order, and the client now sends smaller batches
    assert [b.number for b in blocks] == list(range(1, 61))
    assert client.batch_limit < 60
    # and what the node answered before its cap was not asked again more than once per cut
    assert batch_sizes(proxy, "eth_getBlockByNumber") < 2 * 60


async def test_batch_over_the_item_limit_shrinks_until_accepted(
    anvil: Anvil, proxy: RpcProxy, client: JsonRpcClient
) -> None:
    # given a node accepting at most 16 requests per batch ("batch too large")
    anvil.mine(40)
    proxy.batch_item_limit = 16
    # when 40 blocks are asked
    blocks = await ChainReader(client).get_blocks(list(range(1, 41)), full_transactions=False)
    # then they all arrive, batches shrank to what the node takes, and batching stayed on
    assert [b.number for b in blocks] == list(range(1, 41))
    assert client.batch_limit <= 16
    assert not proxy.reject_batches


async def test_batch_limit_does_not_grow_back_into_a_refused_size(
    anvil: Anvil, proxy: RpcProxy, client: JsonRpcClient
) -> None:
    # given a node that refused batches over 8 requests, once shrunk to fit
    anvil.mine(40)
    proxy.batch_item_limit = 8
    await ChainReader(client).get_blocks(list(range(1, 41)), full_transactions=False)
    refusals = len(proxy.methods("eth_getBlockByNumber"))
    # when many more batches pass
    for _ in range(6):
        await ChainReader(client).get_blocks(list(range(1, 41)), full_transactions=False)
    # then none is refused again (each block asked exactly once per read)
    assert client.batch_limit <= 8
    assert len(proxy.methods("eth_getBlockByNumber")) == refusals + 6 * 40


async def test_missing_tracer_is_asked_again_after_the_reprobe_interval(
    chain: Chain, proxy: RpcProxy, client: JsonRpcClient
) -> None:
    # given a node that says trace_block does not exist (geth's -32601 reply)
    now = [1000.0]
    proxy.missing_methods = {"trace_block"}
    fetcher = BlockFetcher(
        ChainReader(client), chain.network(), lambda a: set(), _none, monotonic=lambda: now[0]
    )
    chain.anvil.send_eth(chain.payer, "0x" + "fe" * 20, 1)
    head = chain.anvil.head()
    # when a busy block is fetched: the debug tracer takes over
    await fetcher.fetch(head, head)
    assert fetcher.tracer == "debug_traceBlockByNumber"
    asked = len(proxy.methods("trace_block"))
    await fetcher.fetch(head, head)
    assert len(proxy.methods("trace_block")) == asked  # not asked within the interval
    # then once the interval passed and the node has the method again, it is used again
    proxy.missing_methods = set()
    now[0] += TRACER_REPROBE_SECONDS
    await fetcher.fetch(head, head)
    assert fetcher.tracer == "trace_block"
    assert len(proxy.methods("trace_block")) == asked + 1


async def test_pruned_state_does_not_switch_tracers(
    chain: Chain, proxy: RpcProxy, client: JsonRpcClient
) -> None:
    # given a block whose state the node pruned (geth's "required historical state unavailable")
    chain.anvil.send_eth(chain.payer, "0x" + "fe" * 20, 1)
    old = chain.anvil.head()
    chain.anvil.mine(10)
    proxy.pruned_beyond = 5
    fetcher = BlockFetcher(ChainReader(client), chain.network(), lambda a: set(), _none)
    # when it is fetched, then it is fetched (no stall) and the tracer stays the fastest one
    [fetched] = await fetcher.fetch(old, old)
    assert fetched.block.number == old
    assert fetcher.tracer == "trace_block"


async def test_empty_logs_contradicting_the_bloom_are_fetched_again(
    chain: Chain, proxy: RpcProxy, client: JsonRpcClient
) -> None:
    # given an open invoice's address paid 5 USDT, and a node hiding that block's logs once
    payee = "0x" + "ab" * 20
    receipt = chain.pay_usdt(payee, 5)
    number = int(receipt["blockNumber"], 16)
    proxy.empty_logs = {number: 1}
    before = EMPTY_LOGS_REFETCHED.labels("ethereum", "found")._value.get()

    async def open_addresses() -> list[str]:
        return [payee]

    fetcher = BlockFetcher(
        ChainReader(client), chain.network(), lambda a: set(), _none,
        open_addresses=open_addresses, refetch_pause=0.01,
    )  # fmt: skip
    # when the block is fetched
    [fetched] = await fetcher.fetch(number, number)
    # then the transfer is there, found by asking again
    assert [(t.to_address, t.amount) for t in fetched.transfers] == [(payee, 5)]
    assert len(proxy.methods("eth_getLogs")) == 2
    assert EMPTY_LOGS_REFETCHED.labels("ethereum", "found")._value.get() == before + 1


async def test_block_whose_bloom_lacks_the_invoice_is_not_fetched_again(
    chain: Chain, proxy: RpcProxy, client: JsonRpcClient
) -> None:
    # given a USDT transfer to someone else, and an open invoice at another address
    receipt = chain.pay_usdt("0x" + "cd" * 20, 5)
    number = int(receipt["blockNumber"], 16)
    proxy.empty_logs = {number: 1}

    async def open_addresses() -> list[str]:
        return ["0x" + "ab" * 20]

    fetcher = BlockFetcher(
        ChainReader(client), chain.network(), lambda a: set(), _none,
        open_addresses=open_addresses, refetch_pause=0.01,
    )  # fmt: skip
    # when the node hides that block's logs, then no second query is made (no invoice there)
    await fetcher.fetch(number, number)
    assert len(proxy.methods("eth_getLogs")) == 1


async def _none() -> list[str]:
    return []
