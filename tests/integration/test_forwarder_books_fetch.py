"""Fetching the sweeps' NativeSwept logs: only where forwarder stores exist, split like the rest."""

from __future__ import annotations

import pytest

from indexer import forwarder
from indexer.chain.fetch import BlockFetcher
from indexer.chain.reader import ChainReader
from indexer.chain.rpc import JsonRpcClient
from tests.integration.test_node_faults import client, proxy  # noqa: F401 (fixtures)
from tests.support.forwarders import checksum, deploy_factory, sweep
from tests.support.gateway import Chain
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

ETHER = 10**18


async def _none() -> list[str]:
    return []


def sweep_logs_asked(node: RpcProxy) -> list[list[object]]:
    return [
        params
        for params in node.methods("eth_getLogs")
        if params[0].get("topics") == [forwarder.NATIVE_SWEPT_TOPIC]
    ]


async def test_native_sweeps_are_fetched_only_where_forwarder_stores_exist(
    chain: Chain,
    proxy: RpcProxy,  # noqa: F811
    client: JsonRpcClient,  # noqa: F811
) -> None:
    # given a deposit address holding 0.3 ETH swept to its treasury, among ten blocks
    factory = deploy_factory(chain.anvil)
    treasury = checksum(chain.anvil.accounts[5])
    salt = forwarder.deposit_salt(bytes(range(32)), 0)
    deposit = forwarder.deposit_address(factory, treasury, salt)
    first = chain.anvil.head() + 1
    chain.anvil.send_eth(chain.payer, deposit.lower(), 3 * ETHER // 10)
    receipt = sweep(chain.anvil, factory, treasury, [salt], [])
    chain.anvil.mine(8)
    last = chain.anvil.head()
    has = [False]

    async def has_forwarders() -> bool:
        return has[0]

    fetcher = BlockFetcher(
        ChainReader(client), chain.network(), lambda a: set(), _none, has_forwarders=has_forwarders
    )

    # when the network has no forwarder store: no extra eth_getLogs
    fetched = await fetcher.fetch(first, last)
    assert [s for item in fetched for s in item.native_sweeps] == []
    assert sweep_logs_asked(proxy) == []

    # when it has one, and the node refuses ranges over 4 blocks: the log arrives, exact
    has[0] = True
    proxy.max_log_range = 4
    fetched = await fetcher.fetch(first, last)
    [found] = [s for item in fetched for s in item.native_sweeps]
    assert (found.address, found.treasury, found.amount, found.asset, found.token) == (
        deposit.lower(), treasury.lower(), 3 * ETHER // 10, "ETH", None,
    )  # fmt: skip
    assert found.tx_hash == receipt["transactionHash"].lower()
    assert found.block_number == int(receipt["blockNumber"], 16)
    assert len(sweep_logs_asked(proxy)) > 1  # split, never skipped
