"""A syncing node: no first cursor near genesis, not ready, said once in the logs and metrics."""

from __future__ import annotations

import logging

import pytest

from indexer.metrics import NODE_SYNC_HIGHEST, NODE_SYNCING
from tests.support.gateway import Chain, GatewayFactory, eventually
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

FAST = {"tick_interval": 0.05, "poll_interval": 0.1}
SNAP_SYNCING = {"startingBlock": "0x0", "currentBlock": "0x0", "highestBlock": "0x1406f40"}


async def test_first_cursor_waits_while_the_node_reports_eth_syncing(
    chain: Chain, gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="indexer.workers.tail")
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a node in snap sync: eth_syncing is an object and its head is block 0
        proxy.results = {"eth_syncing": SNAP_SYNCING, "eth_blockNumber": "0x0"}
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        status = gw.gateway.network_status[chain.name]

        # when the tail starts and polls the node many times
        gw.start_tails(**FAST)

        async def polled_often() -> bool:
            return len(proxy.methods("eth_syncing")) >= 5

        await eventually(polled_often)

        # then it places no cursor, reports the node's progress and is not ready
        assert await gw.processed(chain.name) == -1
        assert status.state == "syncing" and not status.ready
        assert status.syncing == {
            "current_block": 0,
            "highest_block": 21000000,
            "head_age_seconds": None,
        }
        assert gw.gateway.networks_ready() == (False, [chain.name])
        assert NODE_SYNCING.labels(chain.name)._value.get() == 1
        assert NODE_SYNC_HIGHEST.labels(chain.name)._value.get() == 21000000
        said = [r for r in caplog.records if "the node is syncing" in r.getMessage()]
        assert len(said) == 1  # once, not at every poll

        # and once the node has synced it starts below the real head
        proxy.results = {}
        await gw.wait_processed(chain.name, chain.anvil.head())
        first = await gw.query("SELECT min(number) FROM blocks WHERE network = ?", [chain.name])
        assert first[0][0] == chain.anvil.head() - chain.confirmations
        assert NODE_SYNCING.labels(chain.name)._value.get() == 0
        assert any("finished syncing" in r.getMessage() for r in caplog.records)


async def test_a_node_whose_head_is_hours_old_counts_as_syncing(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a node that says it is not syncing, but whose head block is two hours old
    gw = await gateway_factory([chain])
    gw.clock.advance(2 * 3600)
    status = gw.gateway.network_status[chain.name]

    # when the tail starts
    gw.start_tails(**FAST)

    async def reported() -> bool:
        return status.state == "syncing"

    await eventually(reported)

    # then it waits with no cursor, and says how old the head is
    assert await gw.processed(chain.name) == -1
    assert status.syncing is not None
    assert status.syncing["current_block"] == chain.anvil.head()
    assert (status.syncing["head_age_seconds"] or 0) >= 2 * 3600 - 60

    # and follows the chain once the head is recent
    gw.clock.advance(-2 * 3600)
    await gw.wait_processed(chain.name, chain.anvil.head())


async def test_a_node_syncing_again_after_the_first_cursor_is_reported_not_ready(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a tail following the chain
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        gw.start_tails(sync_check_interval=0.1, **FAST)
        await gw.wait_processed(chain.name, chain.anvil.head())
        status = gw.gateway.network_status[chain.name]

        # when the node starts syncing again (it fell behind its peers)
        proxy.results = {"eth_syncing": {**SNAP_SYNCING, "currentBlock": hex(chain.anvil.head())}}

        async def syncing() -> bool:
            return status.state == "syncing"

        # then the network is not ready until the node is done, and blocks still flow
        await eventually(syncing)
        assert not gw.gateway.networks_ready()[0]
        chain.anvil.mine(1)
        await gw.wait_processed(chain.name, chain.anvil.head())
        proxy.results = {}

        async def ok() -> bool:
            return status.state == "ok"

        await eventually(ok)
