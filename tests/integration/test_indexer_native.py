"""Native coin payments: direct transactions, and value arriving through a contract call."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gateway import Chain, GatewayFactory
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

ETHER = 10**18


async def test_eth_sent_directly_pays_a_native_invoice(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice for 0.5 ETH
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "ETH", ETHER // 2)

    # when 0.5 ETH is sent to its address and confirmed
    receipt = chain.anvil.send_eth(chain.payer, invoice.address.lower(), ETHER // 2)
    chain.anvil.mine(2)

    # then it is paid by one payment keyed by the transaction (log index -1)
    paid = await gw.wait_status(invoice.id, "paid")
    assert paid.amount_received == ETHER // 2
    [payment] = await gw.payments(invoice.id)
    assert (payment.tx_hash, payment.log_index) == (receipt["transactionHash"].lower(), -1)
    kinds = await gw.query("SELECT kind FROM transfers WHERE tx_hash = ?", [payment.tx_hash])
    assert kinds == [("native",)]


async def test_eth_through_a_contract_call_is_found_in_traces(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given an invoice for 1 ETH
    gw = await gateway_factory([chain])
    gw.start_tails()
    invoice = await gw.create_invoice("ethereum", "ETH", ETHER)

    # when 1 ETH reaches it through the Forwarder contract (no transaction names the address)
    receipt = chain.anvil.forward(chain.forwarder, chain.payer, invoice.address.lower(), ETHER)
    chain.anvil.mine(2)

    # then the internal transfer is credited, keyed 1,000,000 + its call frame's position
    paid = await gw.wait_status(invoice.id, "paid")
    assert paid.amount_received == ETHER
    [payment] = await gw.payments(invoice.id)
    assert payment.tx_hash == receipt["transactionHash"].lower()
    assert payment.log_index == 1_000_001
    rows = await gw.query(
        "SELECT kind, from_address FROM transfers WHERE tx_hash = ?", [payment.tx_hash]
    )
    assert rows == [("internal", chain.forwarder)]


class RefusingProxy(RpcProxy):
    """A node without some tracing methods, refused as geth refuses a disabled API."""

    def __init__(self, upstream: str, refused: set[str]) -> None:
        super().__init__(upstream)
        self.refused = refused

    def _fault(self, request: dict[str, Any]) -> dict[str, Any] | None:
        method = str(request.get("method"))
        if method in self.refused:
            self.requests.append((method, list(request.get("params") or [])))
            error = {"code": -32601, "message": f"the method {method} does not exist"}
            return {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
        return super()._fault(request)


async def test_without_trace_block_the_debug_tracer_finds_the_same_payment(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a geth-like node: debug_traceBlockByNumber but no trace_block
    async with RefusingProxy(chain.anvil.http_url, {"trace_block"}) as proxy:
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        gw.start_tails()
        invoice = await gw.create_invoice("ethereum", "ETH", ETHER)

        # when 1 ETH arrives through the Forwarder
        chain.anvil.forward(chain.forwarder, chain.payer, invoice.address.lower(), ETHER)
        chain.anvil.mine(2)

        # then the callTracer path credits it under the same key trace_block would give
        await gw.wait_status(invoice.id, "paid")
        [payment] = await gw.payments(invoice.id)
        assert payment.log_index == 1_000_001
        assert proxy.methods("debug_traceBlockByNumber")


async def test_without_traces_eth_through_a_contract_is_found_by_balance(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a node that cannot trace, and an invoice for 1 ETH
    async with RefusingProxy(
        chain.anvil.http_url, {"trace_block", "debug_traceBlockByNumber"}
    ) as proxy:
        chain.rpc_url = proxy.url
        gw = await gateway_factory([chain])
        gw.start_tails()
        invoice = await gw.create_invoice("ethereum", "ETH", ETHER)
        await gw.wait_processed("ethereum", chain.anvil.head())

        # when 0.4 ETH arrives through the Forwarder and 0.6 ETH directly, then confirmations
        chain.anvil.forward(chain.forwarder, chain.payer, invoice.address.lower(), 4 * ETHER // 10)
        chain.anvil.send_eth(chain.payer, invoice.address.lower(), 6 * ETHER // 10)
        chain.anvil.mine(2)

        # then the balance increase is credited once under a synthetic key, and it is paid
        paid = await gw.wait_status(invoice.id, "paid")
        payments = await gw.payments(invoice.id)
        assert sorted((p.log_index, p.amount) for p in payments) == [
            (-2, 4 * ETHER // 10),
            (-1, 6 * ETHER // 10),
        ]
        assert paid.amount_received == ETHER
        assert proxy.methods("debug_traceBlockByNumber")
