"""Two networks at once: each its own node, chain id and USDT (6 decimals here, 18 there)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.gateway import Chain, GatewayFactory

pytestmark = pytest.mark.anvil


async def test_two_networks_are_followed_and_credited_independently(
    chain_factory: Callable[..., Chain], gateway_factory: GatewayFactory
) -> None:
    # given an "ethereum" chain (31337, USDT with 6 decimals) and a "bsc" chain (31338, 18)
    eth, bsc = chain_factory(31337, usdt_decimals=6), chain_factory(31338, usdt_decimals=18)
    gw = await gateway_factory([eth, bsc])
    gw.start_tails()
    on_eth = await gw.create_invoice("ethereum", "USDT", 25 * 10**6)
    on_bsc = await gw.create_invoice("bsc", "USDT", 25 * 10**18)
    bnb = await gw.create_invoice("bsc", "BNB", 10**17)

    # when each is paid on its own chain, and the ethereum invoice's address is also sent
    # USDT on bsc (the same address exists on every EVM chain)
    eth.pay_usdt(on_eth.address, 25 * 10**6)
    bsc.pay_usdt(on_bsc.address, 25 * 10**18)
    bsc.anvil.send_eth(bsc.payer, bnb.address.lower(), 10**17)
    bsc.pay_usdt(on_eth.address, 5 * 10**18)
    eth.anvil.mine(2)
    bsc.anvil.mine(2)

    # then each invoice is paid in its own units, and the other chain's money is not mixed in
    assert (await gw.wait_status(on_eth.id, "paid")).amount_received == 25 * 10**6
    assert (await gw.wait_status(on_bsc.id, "paid")).amount_received == 25 * 10**18
    assert (await gw.wait_status(bnb.id, "paid")).amount_received == 10**17
    assert [p.network for p in await gw.payments(on_eth.id)] == ["ethereum"]
    assert [p.network for p in await gw.payments(on_bsc.id)] == ["bsc"]
    cursors = dict(await gw.query("SELECT network, block_number FROM chain_cursors"))
    assert cursors == {"ethereum": eth.anvil.head(), "bsc": bsc.anvil.head()}
    statuses = gw.gateway.network_status
    assert statuses["ethereum"].connected and statuses["bsc"].connected
    analysts = await gw.query(
        "SELECT network, amount::VARCHAR FROM transfers WHERE to_address = ? ORDER BY network",
        [on_eth.address.lower()],
    )
    assert analysts == [("bsc", str(5 * 10**18)), ("ethereum", str(25 * 10**6))]
