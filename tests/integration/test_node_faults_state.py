"""A node that keeps only recent state (geth and BSC: 128 blocks): the tail never stalls on it."""

from __future__ import annotations

import pytest

from indexer.metrics import RECONCILED_CREDITS, STATE_MISSING_BLOCKS
from tests.support.gateway import Chain, GatewayFactory
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

ETHER = 10**18
USDT = 10**6


def counter(metric: object, *labels: str) -> float:
    return metric.labels(*labels)._value.get()  # type: ignore[attr-defined]


async def test_gap_beyond_pruned_state_credits_everything_and_reconciles_internal_coin(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    async with RpcProxy(chain.anvil.http_url) as proxy:
        # given a geth-like node keeping 128 states, a gateway that followed it and stopped
        proxy.pruned_beyond = 128
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        gw.start_tails()
        native = await gw.create_invoice("ethereum", "ETH", ETHER)
        token = await gw.create_invoice("ethereum", "USDT", 5 * USDT)
        await gw.wait_processed("ethereum", chain.anvil.head())
        await gw.close()
        missing_before = counter(STATE_MISSING_BLOCKS, "ethereum")
        reconciled_before = counter(RECONCILED_CREDITS, "ethereum")

        # when, while it is down, 0.4 ETH arrives through a contract, 0.6 ETH directly and
        # 5 USDT, and then 300 more blocks bury all of it beyond the node's state
        chain.anvil.forward(chain.forwarder, chain.payer, native.address.lower(), 4 * ETHER // 10)
        direct = chain.anvil.send_eth(chain.payer, native.address.lower(), 6 * ETHER // 10)
        chain.pay_usdt(token.address, 5 * USDT)
        chain.anvil.mine(300)
        again = await gateway_factory([chain], database=gw.gateway.settings.database)
        again.start_tails()
        await again.wait_processed("ethereum", chain.anvil.head(), within=60)
        chain.anvil.mine(4)  # the chain goes on: the next block has state again

        # then the token and the direct payment keep their transactions, the internal coin
        # is credited once from the balance under a synthetic key, and both invoices are paid
        assert (await again.wait_status(token.id, "paid")).amount_received == 5 * USDT
        paid = await again.wait_status(native.id, "paid")
        assert paid.amount_received == ETHER
        payments = sorted(await again.payments(native.id), key=lambda p: p.log_index)
        assert [(p.log_index, p.amount) for p in payments] == [
            (-3, 4 * ETHER // 10),
            (-1, 6 * ETHER // 10),
        ]
        assert payments[1].tx_hash == direct["transactionHash"].lower()
        assert payments[0].tx_hash.startswith("reconciled:")
        kinds = await again.query(
            "SELECT kind FROM transfers WHERE tx_hash = ?", [payments[0].tx_hash]
        )
        assert kinds == [("reconciled",)]
        # and the degraded window is counted, and the node did answer geth's refusals
        assert counter(STATE_MISSING_BLOCKS, "ethereum") > missing_before
        assert counter(RECONCILED_CREDITS, "ethereum") == reconciled_before + 1

        # when the gateway restarts again (it reconciles after every start) and a new
        # payment reaches a second invoice through the contract, within the node's state
        await again.close()
        third = await gateway_factory([chain], database=gw.gateway.settings.database)
        third.start_tails()
        second = await third.create_invoice("ethereum", "ETH", ETHER // 2)
        await third.wait_processed("ethereum", chain.anvil.head())
        receipt = chain.anvil.forward(
            chain.forwarder, chain.payer, second.address.lower(), ETHER // 2
        )
        chain.anvil.mine(3)

        # then nothing is counted twice, and tracing works again with real hashes
        await third.wait_status(second.id, "paid")
        [traced] = await third.payments(second.id)
        assert (traced.tx_hash, traced.log_index) == (receipt["transactionHash"].lower(), 1_000_001)
        assert len(await third.payments(native.id)) == 2
        assert (await third.invoice(native.id)).amount_received == ETHER
        assert counter(RECONCILED_CREDITS, "ethereum") == reconciled_before + 1
