"""Outages: the node stopped, the websocket cut, RPC faults, a long downtime. No block skipped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import pairwise
from pathlib import Path

import pytest

from indexer.metrics import WS_RECONNECTS
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest, eventually
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

USDT = 10**6


async def contiguous_blocks(gw: GatewayUnderTest, network: str) -> bool:
    """Whether the kept block hashes form one unbroken parent-linked run up to the cursor."""
    rows = await gw.query(
        "SELECT number, hash, parent_hash FROM blocks WHERE network = ? ORDER BY number",
        [network],
    )
    linked = all(b[0] == a[0] + 1 and b[2] == a[1] for a, b in pairwise(rows))
    return linked and rows[-1][0] == await gw.processed(network)


def error_seen(gw: GatewayUnderTest, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        error = gw.gateway.network_status["ethereum"].error or ""
        return text in error

    return check


async def test_node_stopped_and_restarted_then_payment_is_confirmed(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a pending payment
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)
    chain.pay_usdt(invoice.address, 5 * USDT)
    await gw.wait_status(invoice.id, "pending")

    # when the node goes down, the tail notices, and the node comes back
    chain.anvil.stop()
    status = gw.gateway.network_status["ethereum"]
    await eventually(lambda: _false(status.connected), within=10)
    assert status.error
    chain.anvil.start()
    chain.anvil.mine(2)

    # then the tail reconnects by itself and the payment is confirmed
    await gw.wait_status(invoice.id, "paid", within=30)
    assert status.connected and status.error is None
    assert await contiguous_blocks(gw, "ethereum")


async def _false(value: bool) -> bool:
    return not value


async def test_websocket_dropped_blocks_mined_meanwhile_are_caught_up(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a tail on the node's websocket through a proxy
        chain.rpc_url = proxy.ws_url
        gw = await gateway_factory([chain])
        gw.start_tails()
        invoice = await gw.create_invoice("ethereum", "USDT", 5 * USDT)
        await gw.wait_processed("ethereum", chain.anvil.head())
        reconnects = WS_RECONNECTS.labels("ethereum")._value.get()

        # when every websocket is cut and the payment is mined while they are down
        proxy.drop_websockets()
        chain.pay_usdt(invoice.address, 5 * USDT)
        chain.anvil.mine(2)

        # then the tail resubscribes, catches up and credits it
        await gw.wait_status(invoice.id, "paid", within=30)
        assert WS_RECONNECTS.labels("ethereum")._value.get() > reconnects
        assert await contiguous_blocks(gw, "ethereum")


async def test_rpc_faults_are_retried_without_skipping_a_block(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a tail polling the node over HTTP through a fault-injecting proxy
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        gw.start_tails(rpc_timeout=0.5)
        invoices = [await gw.create_invoice("ethereum", "USDT", USDT) for _ in range(5)]
        await gw.wait_processed("ethereum", chain.anvil.head())

        # when each payment is mined while the node misbehaves in another way
        faults: list[tuple[str, Callable[[], None]]] = [
            ("HTTP 503", lambda: setattr(proxy, "http_status", 503)),
            ("HTTP 429", lambda: setattr(proxy, "http_status", 429)),
            ("RpcTimeout", lambda: setattr(proxy, "delay", 1.0)),
            ("unknown block", lambda: proxy.unknown_blocks.add(chain.anvil.head() + 2)),
        ]
        for invoice, (seen, inject) in zip(invoices, faults, strict=False):
            inject()
            chain.pay_usdt(invoice.address, USDT)
            await eventually(error_seen(gw, seen), within=15)
            proxy.clear_faults()
            await gw.wait_status(invoice.id, "pending", within=15)

        # and when ranges wider than 2 blocks are refused while the tail catches up on 40
        proxy.max_log_range = 2
        await gw.close()
        chain.anvil.mine(20)
        chain.pay_usdt(invoices[4].address, USDT)
        chain.anvil.mine(20)
        again = await gateway_factory([chain], database=gw.gateway.settings.database)
        again.start_tails(rpc_timeout=0.5)

        # then every invoice is paid and the kept blocks link up to the head without a gap
        for invoice in invoices:
            await again.wait_status(invoice.id, "paid", within=30)
        assert await contiguous_blocks(again, "ethereum")
        assert len(proxy.methods("eth_getLogs")) > 20


@pytest.mark.slow
async def test_restart_after_thousands_of_blocks_credits_the_payment_in_the_gap(
    chain: Chain, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    # given a gateway that followed the chain, created an invoice, then stopped
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "USDT", 7 * USDT)
    await gw.wait_processed("ethereum", chain.anvil.head())
    stopped_at = await gw.processed("ethereum")
    await gw.close()

    # when 2,400 blocks are mined while it is down, with the payment in the middle
    chain.anvil.mine(1200)
    receipt = chain.pay_usdt(invoice.address, 7 * USDT)
    chain.anvil.mine(1200)
    head = chain.anvil.head()

    # then a restarted gateway processes every block and credits the payment once
    again = await gateway_factory([chain], database=gw.gateway.settings.database)
    again.start_tails()
    await again.wait_processed("ethereum", head, within=60)
    paid = await again.wait_status(invoice.id, "paid")
    assert paid.amount_received == 7 * USDT
    [payment] = await again.payments(invoice.id)
    assert payment.block_number == int(receipt["blockNumber"], 16)
    assert head - stopped_at > 2000
    assert await contiguous_blocks(again, "ethereum")
