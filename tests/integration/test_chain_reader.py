"""The node client and chain reader against a real anvil, directly and through a faulty proxy."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable

import pytest

from indexer.chain.decode import TRANSFER_TOPIC, decode_transfer_log
from indexer.chain.errors import (
    RangeTooLarge,
    RpcConnectionError,
    RpcHttpError,
    RpcTimeout,
    UnknownBlock,
)
from indexer.chain.reader import ChainReader
from indexer.chain.rpc import JsonRpcClient, reconnecting_heads
from indexer.metrics import RPC_ERRORS, WS_CONNECTED
from tests.support.anvil import Anvil, calldata
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

UINT256_MAX = 2**256 - 1
ETHER = 10**18


@pytest.fixture
async def reader(anvil: Anvil) -> AsyncIterator[ChainReader]:
    client = JsonRpcClient(anvil.http_url, "anvil", timeout=5.0)
    yield ChainReader(client)
    await client.close()


@pytest.fixture
async def proxy(anvil: Anvil) -> AsyncIterator[RpcProxy]:
    async with RpcProxy(anvil.http_url) as running:
        yield running


@pytest.fixture
async def proxied(proxy: RpcProxy) -> AsyncIterator[ChainReader]:
    client = JsonRpcClient(proxy.url, "proxied", timeout=0.5)
    yield ChainReader(client)
    await client.close()


def fresh_address(n: int) -> str:
    return "0xfe" + f"{n:038x}"  # clear of the precompiles at 0x01..0x11


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_reader_reports_each_chain_id_and_head(anvil_factory: Callable[..., Anvil]) -> None:
    # given two chains side by side
    local, bsc = anvil_factory(chain_id=31337), anvil_factory(chain_id=56)
    bsc.mine(3)
    async with JsonRpcClient(local.http_url, "a") as a, JsonRpcClient(bsc.http_url, "b") as b:
        # when each is asked for its id and head
        # then each answers for itself
        assert await ChainReader(a).chain_id() == 31337
        assert await ChainReader(b).chain_id() == 56
        assert await ChainReader(a).head_number() == 0
        assert await ChainReader(b).head_number() == 3


async def test_blocks_in_one_batch_carry_transactions_and_link_by_parent_hash(
    anvil: Anvil, reader: ChainReader
) -> None:
    # given a payment in block 1 and empty blocks after it
    payer, payee = anvil.accounts[0], fresh_address(1)
    receipt = anvil.send_eth(payer, payee, 3 * ETHER)
    anvil.mine(3)
    # when blocks 0..4 are fetched together
    blocks = await reader.get_blocks([0, 1, 2, 3, 4])
    # then they chain up and block 1 holds the payment
    assert [b.number for b in blocks] == [0, 1, 2, 3, 4]
    assert all(child.parent_hash == parent.hash for parent, child in itertools.pairwise(blocks))
    assert blocks[1].transactions is not None
    (tx,) = blocks[1].transactions
    assert (tx.hash, tx.from_address, tx.to_address, tx.value) == (
        receipt["transactionHash"],
        payer,
        payee,
        3 * ETHER,
    )


async def test_missing_block_is_none_alone_and_an_error_in_a_batch(
    anvil: Anvil, reader: ChainReader
) -> None:
    assert await reader.get_block(99) is None
    with pytest.raises(UnknownBlock):
        await reader.get_blocks([0, 99])


async def test_token_transfer_logs_decode_exactly_including_uint256_max(
    anvil: Anvil, reader: ChainReader
) -> None:
    # given a token, the largest possible mint, and transfers of everything and of nothing
    holder, payee = anvil.accounts[1], fresh_address(2)
    token = anvil.deploy_token("USDT", 6)
    anvil.token_mint(token, holder, UINT256_MAX)
    everything = anvil.token_transfer(token, holder, payee, UINT256_MAX)
    nothing = anvil.token_transfer(token, holder, payee, 0)
    # when the Transfer logs are read and decoded
    logs = await reader.get_logs(0, await reader.head_number(), [token], [TRANSFER_TOPIC])
    transfers = [decode_transfer_log(log) for log in logs]
    # then every amount is exact and attributed to its transaction
    assert [(t.from_address, t.to_address, t.amount) for t in transfers if t] == [
        ("0x" + "00" * 20, holder, UINT256_MAX),
        (holder, payee, UINT256_MAX),
        (holder, payee, 0),
    ]
    assert transfers[1] is not None and transfers[2] is not None
    assert transfers[1].tx_hash == everything["transactionHash"]
    assert transfers[2].tx_hash == nothing["transactionHash"]
    assert {t.contract for t in transfers if t} == {token}


async def test_refused_log_ranges_are_split_until_they_pass_and_no_block_is_skipped(
    anvil: Anvil, reader: ChainReader, proxy: RpcProxy, proxied: ChainReader
) -> None:
    # given transfers spread over blocks and a node refusing ranges over 3 blocks
    token = anvil.deploy_token()
    for n in range(7):
        anvil.token_mint(token, fresh_address(100 + n), n + 1)
        anvil.mine(n % 3)
    head = await reader.head_number()
    proxy.max_log_range = 3
    # when all logs are read through the proxy
    split = await proxied.get_logs(0, head, [token], [TRANSFER_TOPIC])
    # then they equal an unsplit read, in order, and every accepted range was at most 3 blocks
    assert split == await reader.get_logs(0, head, [token], [TRANSFER_TOPIC])
    assert len(split) == 7
    spans = [
        (int(q["fromBlock"], 16), int(q["toBlock"], 16)) for (q,) in proxy.methods("eth_getLogs")
    ]
    accepted = sorted(span for span in spans if span[1] - span[0] < 3)
    assert accepted[0][0] == 0 and accepted[-1][1] == head
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(accepted))


async def test_single_block_still_refused_raises_range_too_large(
    proxy: RpcProxy, proxied: ChainReader
) -> None:
    proxy.max_log_range = 0
    with pytest.raises(RangeTooLarge):
        await proxied.get_logs(0, 3, None, None)


@pytest.mark.parametrize("status", [429, 503])
async def test_overloaded_node_status_is_a_transient_http_error(
    proxy: RpcProxy, proxied: ChainReader, status: int
) -> None:
    proxy.http_status = status
    with pytest.raises(RpcHttpError) as raised:
        await proxied.head_number()
    assert raised.value.status == status
    assert raised.value.transient


async def test_slow_node_raises_timeout_and_counts_it(
    proxy: RpcProxy, proxied: ChainReader
) -> None:
    # given a node slower than the client's 0.5 s timeout
    proxy.delay = 1.0
    timeouts = RPC_ERRORS.labels("proxied", "eth_blockNumber", "timeout")
    before = timeouts._value.get()
    # when asked, then it times out and the metric says so
    with pytest.raises(RpcTimeout):
        await proxied.head_number()
    assert timeouts._value.get() == before + 1


async def test_unknown_block_reply_is_classified(proxy: RpcProxy, proxied: ChainReader) -> None:
    proxy.unknown_blocks = {0}
    with pytest.raises(UnknownBlock):
        await proxied.get_block(0)


async def test_batch_falls_back_to_single_calls_when_the_node_refuses_batches(
    anvil: Anvil, proxy: RpcProxy, proxied: ChainReader
) -> None:
    anvil.mine(2)
    proxy.reject_batches = True
    blocks = await proxied.get_blocks([0, 1, 2])
    assert [b.number for b in blocks] == [0, 1, 2]
    assert len(proxy.methods("eth_getBlockByNumber")) == 3


async def test_receipt_statuses_and_balances_are_read_in_batches(
    anvil: Anvil, reader: ChainReader
) -> None:
    # given one good payment and one token transfer that reverts (no balance)
    payer, payee = anvil.accounts[2], fresh_address(3)
    ok = anvil.send_eth(payer, payee, 5)
    token = anvil.deploy_token()
    failed = anvil.send_tx(
        payer,
        token,
        data=calldata("transfer(address,uint256)", payee, 1),
        gas=100_000,
        expect_success=False,
    )
    # when statuses and balances are read
    statuses = await reader.get_receipts_status([ok["transactionHash"], failed["transactionHash"]])
    balances = await reader.get_balances([payee, fresh_address(4)], int(ok["blockNumber"], 16))
    # then
    assert statuses == {ok["transactionHash"]: True, failed["transactionHash"]: False}
    assert balances == {payee: 5, fresh_address(4): 0}


async def test_finalized_tag_trails_the_head_on_anvil(anvil: Anvil, reader: ChainReader) -> None:
    anvil.mine(70)
    assert await reader.finalized_number() == 70 - 64


async def test_internal_transfer_through_forwarder_is_found_in_traces(
    anvil: Anvil, reader: ChainReader
) -> None:
    # given native coin forwarded by a contract, which no transaction list shows
    payer, payee, a, b = anvil.accounts[3], fresh_address(5), fresh_address(6), fresh_address(7)
    forwarder = anvil.deploy("Forwarder")
    forwarded = anvil.forward(forwarder, payer, payee, 2 * ETHER)
    block_number = int(forwarded["blockNumber"], 16)
    block = await reader.get_block(block_number)
    assert block is not None and block.transactions is not None
    assert [tx.to_address for tx in block.transactions] == [forwarder]
    # when the block is traced
    transfers = await reader.internal_transfers(block_number)
    # then the internal transfer to the payee is there, with its transaction
    assert transfers is not None
    assert [(t.tx_hash, t.from_address, t.to_address, t.value) for t in transfers] == [
        (forwarded["transactionHash"], forwarder, payee, 2 * ETHER)
    ]
    # and a split into two lands as two transfers with distinct positions
    split = anvil.split(forwarder, payer, [a, b], [1, 2])
    transfers = await reader.internal_transfers(int(split["blockNumber"], 16))
    assert transfers is not None
    assert [(t.to_address, t.value) for t in transfers] == [(a, 1), (b, 2)]
    assert len({t.position for t in transfers}) == 2


async def test_tracing_a_block_the_node_lacks_is_unknown_not_unsupported(
    reader: ChainReader,
) -> None:
    with pytest.raises(UnknownBlock):
        await reader.internal_transfers(99)


async def test_calls_and_batches_work_over_a_websocket(anvil: Anvil) -> None:
    anvil.mine(2)
    async with JsonRpcClient(anvil.ws_url, "ws-calls") as client:
        reader = ChainReader(client)
        assert await reader.chain_id() == 31337
        assert [b.number for b in await reader.get_blocks([0, 1, 2])] == [0, 1, 2]


async def test_websocket_new_heads_arrive_when_mining(anvil: Anvil) -> None:
    # given a subscription to new heads
    async with JsonRpcClient(anvil.ws_url, "ws-heads") as client:
        heads = client.subscribe_new_heads()
        first = asyncio.ensure_future(anext(heads))
        await eventually(lambda: WS_CONNECTED.labels("ws-heads")._value.get() == 1)
        # when blocks are mined
        anvil.mine(3)
        # then each arrives as a head
        numbers = [int((await first)["number"], 16)]
        numbers += [int((await anext(heads))["number"], 16) for _ in range(2)]
        assert numbers == [1, 2, 3]
        await heads.aclose()
    assert WS_CONNECTED.labels("ws-heads")._value.get() == 0


async def test_head_stream_resumes_after_the_websocket_is_dropped(
    anvil: Anvil, proxy: RpcProxy
) -> None:
    # given heads flowing through a proxy
    async with JsonRpcClient(proxy.ws_url, "ws-drop", timeout=2.0) as client:
        heads = reconnecting_heads(client, initial_delay=0.05, max_delay=0.2)
        connected = WS_CONNECTED.labels("ws-drop")
        first = asyncio.ensure_future(anext(heads))
        await eventually(lambda: connected._value.get() == 1)
        anvil.mine()
        assert int((await first)["number"], 16) == 1
        # when the proxy cuts the socket
        nxt = asyncio.ensure_future(anext(heads))
        proxy.drop_websockets()
        await eventually(lambda: connected._value.get() == 0)
        await eventually(lambda: connected._value.get() == 1)
        # then the stream resubscribes and the next block still arrives
        anvil.mine()
        assert int((await nxt)["number"], 16) == 2
        await heads.aclose()


async def test_http_node_yields_polled_synthetic_heads(anvil: Anvil) -> None:
    async with JsonRpcClient(anvil.http_url, "poll", poll_interval=0.05) as client:
        heads = client.subscribe_new_heads()
        assert await anext(heads) == {"number": "0x0", "synthetic": True}
        anvil.mine()
        assert await anext(heads) == {"number": "0x1", "synthetic": True}
        await heads.aclose()


async def test_node_restart_keeps_the_chain_and_the_client_recovers(
    anvil: Anvil, reader: ChainReader
) -> None:
    # given a payment on chain
    payee = fresh_address(8)
    receipt = anvil.send_eth(anvil.accounts[4], payee, 7)
    before = await reader.get_block(1)
    # when the node goes down, the client reports a connection error
    anvil.stop()
    with pytest.raises(RpcConnectionError):
        await reader.head_number()
    # and when it comes back, the same client reads the same chain
    anvil.start()
    assert await reader.head_number() == 1
    assert await reader.get_block(1) == before
    assert (await reader.get_balances([payee], 1))[payee] == 7
    assert (await reader.get_receipts_status([receipt["transactionHash"]])) == {
        receipt["transactionHash"]: True
    }
