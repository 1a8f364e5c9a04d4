"""The books of sweeps across a crash: `chainpay serve` SIGKILLed between planning a sweep and
seeing it mined, then restarted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_forwarder_books import paid_usdt_and_eth
from tests.integration.test_indexer_process import Server
from tests.support.gateway import Chain, GatewayFactory, config_file
from tests.support.process import free_port, run

pytestmark = pytest.mark.anvil

ETHER = 10**18


def sweep_while_down(chain: Chain, server: Server, config: Path) -> tuple[list[str], str]:
    """Plan the sweep through the running gateway, SIGKILL it, send the planned transaction from
    another account and mine, restart and catch up; the planned addresses and the tx hash."""
    server.wait_processed("ethereum", chain.anvil.head())
    done = run("--config", str(config), "sweep", "--network", "ethereum", "--json")
    assert done.returncode == 0, done.stderr
    [planned] = json.loads(done.stdout)["transactions"]
    server.kill()
    sender = chain.anvil.accounts[8]
    receipt = chain.anvil.send_tx(sender, planned["to"], data=planned["data"], gas=planned["gas"])
    chain.anvil.mine(3)
    server.start()
    server.wait_processed("ethereum", chain.anvil.head())
    assert server.stop() == 0
    return planned["addresses"], receipt["transactionHash"].lower()


@pytest.mark.slow
async def test_a_sweep_mined_while_the_gateway_is_down_is_recorded_once_after_restart(
    chain: Chain, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    # given a paid USDT and ETH deposit address, and `chainpay serve` following the chain
    database = tmp_path / "chainpay.duckdb"
    gw = await gateway_factory([chain], database=database)
    usdt, eth = await paid_usdt_and_eth(gw, chain)
    await gw.close()
    port = free_port()
    store = gw.gateway.settings.postgres_url or database  # the same store, on either backend
    config = config_file(tmp_path / "c.toml", store, [chain], port)
    server = Server(config, port, tmp_path / "serve.log")
    server.start()

    # when the gateway is killed between planning the sweep and seeing it mined
    try:
        addresses, tx = sweep_while_down(chain, server, config)
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
    assert set(addresses) == {usdt.address, eth.address}

    # then the sweep is in the books once per address, each payment shows it, nothing is
    # credited twice and each invoice was paid once
    books = await gateway_factory([chain], database=database)
    recorded = await books.gateway.db.read(
        lambda c: c.chain.list_sweeps("ethereum", include_orphaned=True)
    )
    assert sorted((s.asset, s.address, s.amount, s.tx_hash, s.orphaned) for s in recorded) == [
        ("ETH", eth.address.lower(), ETHER // 4, tx, False),
        ("USDT", usdt.address.lower(), 7_500_000, tx, False),
    ]
    for invoice, amount in ((usdt, 7_500_000), (eth, ETHER // 4)):
        view = await books.gateway.invoices.get(None, invoice.id)
        assert [p["swept_by"] for p in view["payments"]] == [tx]
        paid = await books.invoice(invoice.id)
        assert (paid.status.value, paid.amount_received) == ("paid", amount)
    events = await books.query(
        "SELECT invoice_id, count(*) FROM events WHERE type = 'invoice.paid' GROUP BY invoice_id"
    )
    assert sorted(n for _, n in events) == [1, 1]
