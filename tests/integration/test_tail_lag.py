"""Lag while the node is down or silent, and the tail's retry backoff after an outage."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from api.bootstrap import NetworkStatus
from indexer.config import load_settings
from indexer.metrics import LAG_BLOCKS, LAG_SECONDS, NETWORK_READY
from indexer.workers.tail import Backoff
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest, eventually
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

FAST = {"tick_interval": 0.05, "poll_interval": 0.2}


def state_is(status: NetworkStatus, state: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return status.state == state

    return check


async def caught_up(gw: GatewayUnderTest, chain: Chain) -> NetworkStatus:
    await gw.wait_processed(chain.name, chain.anvil.head())
    status = gw.gateway.network_status[chain.name]
    await eventually(state_is(status, "ok"))
    return status


async def test_lag_grows_with_wall_time_while_the_node_is_unreachable(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a tail at the node's head
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        gw.start_tails(**FAST)
        status = await caught_up(gw, chain)
        assert status.lag_blocks == 0 and not status.lag_estimated

        # when the node stops answering and ten minutes of wall time pass
        proxy.http_status = 503
        await eventually(state_is(status, "unreachable"))
        gw.clock.advance(600)

        # then lag in seconds and (estimated) in blocks grow, and the network is not ready
        async def lag_grew() -> bool:
            return (status.lag_seconds or 0) >= 600

        await eventually(lag_grew)
        assert status.lag_estimated and status.lag_blocks is not None
        assert status.lag_blocks >= 600 // 12  # 12 s: the default block_time of a test chain
        assert LAG_SECONDS.labels(chain.name)._value.get() >= 600
        assert LAG_BLOCKS.labels(chain.name)._value.get() == status.lag_blocks
        assert NETWORK_READY.labels(chain.name)._value.get() == 0
        assert gw.gateway.networks_ready() == (False, [chain.name])

        # and once the node answers again the lag is measured, not estimated
        proxy.http_status = None
        gw.clock.advance(-600)
        chain.anvil.mine(1)
        await caught_up(gw, chain)

        async def measured() -> bool:  # the status follows the commit that moved the cursor
            return status.lag_blocks == 0 and not status.lag_estimated

        await eventually(measured)
        assert gw.gateway.networks_ready() == (True, [])


async def test_lag_grows_while_the_node_answers_but_announces_no_block(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a tail at the head of a node that then mines nothing for five minutes
    gw = await gateway_factory([chain])
    gw.start_tails(**FAST)
    status = await caught_up(gw, chain)
    gw.clock.advance(300)

    # then the network is behind, its lag in seconds grows and its lag in blocks is estimated
    await eventually(state_is(status, "behind"))
    assert status.connected and status.error is None
    assert (status.lag_seconds or 0) >= 300
    assert status.lag_estimated and (status.lag_blocks or 0) >= 300 // 12


async def test_lag_is_known_from_the_stored_cursor_when_the_node_is_down_at_start(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a gateway that processed up to the head and stopped
        chain.rpc_url = proxy.url
        first = await gateway_factory([chain])
        first.start_tails(**FAST)
        await caught_up(first, chain)
        processed = await first.processed(chain.name)
        database = first.gateway.settings.database
        await first.close()

        # when it starts again on the same file while the node is down, an hour later
        proxy.http_status = 503
        second = await gateway_factory([chain], database=database)
        second.clock.advance(3600)
        second.start_tails(**FAST)
        status = second.gateway.network_status[chain.name]

        # then the processed block and the lag come from the store, not from the node
        await eventually(state_is(status, "unreachable"))

        async def lag_known() -> bool:
            return (status.lag_seconds or 0) >= 3600

        await eventually(lag_known)
        assert status.processed == processed
        assert (status.lag_blocks or 0) >= 3600 // 12


async def test_backoff_starts_over_once_the_node_answers_again(
    chain: Chain, gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="indexer.workers.tail")
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a tail whose node was down long enough to reach the longest retry delay
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        gw.start_tails(max_backoff=2.0, **FAST)
        status = await caught_up(gw, chain)
        proxy.http_status = 503

        async def waited_longest() -> bool:
            return "retrying in 2.00s" in caplog.text

        await eventually(waited_longest, within=30)

        # when the node answers again, then fails once more
        proxy.http_status = None
        chain.anvil.mine(1)
        await caught_up(gw, chain)
        caplog.clear()
        proxy.http_status = 503
        await eventually(state_is(status, "unreachable"))

        # then the first retry comes after the shortest delay, not the longest
        retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
        assert retries and retries[0].endswith("retrying in 0.25s"), retries


@pytest.mark.parametrize(
    ("outcomes", "delays"),
    [
        pytest.param("ffff", [0.25, 0.5, 1.0, 2.0], id="doubles"),
        pytest.param("ffffff", [0.25, 0.5, 1.0, 2.0, 2.0, 2.0], id="capped"),
        pytest.param("ffffsf", [0.25, 0.5, 1.0, 2.0, 0.25], id="success-starts-over"),
    ],
)
def test_backoff_policy(outcomes: str, delays: list[float]) -> None:
    backoff = Backoff(0.25, 2.0)
    seen = [backoff.failed() if o == "f" else backoff.succeeded() for o in outcomes]
    assert [d for d in seen if d is not None] == delays


@pytest.mark.parametrize(
    ("chain_id", "extra", "expected"),
    [
        pytest.param(1, "", (12.0, 48.0, 120.0), id="ethereum-defaults"),
        pytest.param(56, "", (0.45, 30.0, 120.0), id="bsc-defaults"),
        pytest.param(
            56, "block_time = 3\nready_lag_seconds = 10\nmax_lag_seconds = 600\n",
            (3.0, 10.0, 600.0), id="configured",
        ),
    ],
)  # fmt: skip
def test_lag_thresholds_are_per_network_and_in_seconds(
    tmp_path: Path, chain_id: int, extra: str, expected: tuple[float, float, float]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[networks.x]\nchain_id = {chain_id}\nrpc_url = "ws://node:8546"\nconfirmations = 3\n'
        f'native = {{ symbol = "X", decimals = 18 }}\n{extra}'
    )
    network = load_settings(config, env={}).networks["x"]
    assert (network.block_time, network.ready_lag_seconds, network.max_lag_seconds) == expected
