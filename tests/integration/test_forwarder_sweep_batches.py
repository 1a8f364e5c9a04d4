"""A sweep of 200 forwarder deposit addresses: planned from the books, split into batches under
the block gas limit, sent by an arbitrary account, and nothing left behind (issue 13, item 6)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from api.contracts import sweep_plan
from indexer.domain.money import format_amount
from tests.integration.test_forwarder_stores import forwarder_store
from tests.support.anvil import Anvil, calldata
from tests.support.forwarders import token_balance
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest, eventually

pytestmark = pytest.mark.anvil

USDT = 10**6
GWEI = 10**9
ADDRESSES = 200
# A block gas limit low enough that 200 addresses cannot go in one batch on its budget (a third
# of the block), yet high enough for the payments' blocks below.
BLOCK_GAS_LIMIT = 12_000_000


def in_one_block(anvil: Anvil, transactions: list[dict[str, Any]]) -> None:
    """Send every transaction with automine off, mine them in one block, check each succeeded."""
    anvil.rpc("evm_setAutomine", False)
    try:
        hashes = [anvil.rpc("eth_sendTransaction", tx) for tx in transactions]
        anvil.mine(1)
    finally:
        anvil.rpc("evm_setAutomine", True)
    for tx_hash in hashes:
        receipt = anvil.rpc("eth_getTransactionReceipt", tx_hash)
        assert receipt is not None and int(receipt["status"], 16) == 1, tx_hash


def arbitrary_account(anvil: Anvil) -> str:
    """A fresh random address with gas money and no other role: it only sends the sweeps."""
    account = "0x" + secrets.token_hex(20)
    anvil.rpc("anvil_setBalance", account, hex(10**21))
    anvil.rpc("anvil_impersonateAccount", account)
    return account


def pay(chain: Chain, usdt: dict[str, int], eth: dict[str, int]) -> None:
    """USDT by direct transfers in one block, ETH by one contract call (internal transfers)."""
    anvil = chain.anvil
    anvil.token_mint(chain.usdt, chain.payer, sum(usdt.values()))
    in_one_block(
        anvil,
        [
            {
                "from": chain.payer,
                "to": chain.usdt,
                "data": calldata("transfer(address,uint256)", address.lower(), amount),
                "gas": hex(60_000),
            }
            for address, amount in usdt.items()
        ],
    )
    recipients = [address.lower() for address in eth]
    anvil.split(chain.forwarder, chain.payer, recipients, list(eth.values()))


async def paid_count(gw: GatewayUnderTest) -> int:
    rows = await gw.query("SELECT count(*) FROM invoices WHERE status = 'paid'")
    return int(rows[0][0])


async def test_two_hundred_paid_addresses_are_swept_in_batches_under_the_gas_limit(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a forwarder store with 200 paid invoices: USDT only, ETH only, and both
    chain.anvil.rpc("anvil_setBlockGasLimit", hex(BLOCK_GAS_LIMIT))
    gw = await gateway_factory([chain])
    await forwarder_store(gw, [chain])
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())  # watching before anything is paid
    treasury = chain.anvil.accounts[5]
    usdt: dict[str, int] = {}
    eth: dict[str, int] = {}
    for i in range(ADDRESSES):
        if i % 4 == 3:  # ETH invoices, one in two of them also sent USDT (a wrong asset)
            invoice = await gw.create_invoice("ethereum", "ETH", (i + 1) * 1000 * GWEI)
            eth[invoice.address] = (i + 1) * 1000 * GWEI
            if i % 8 == 7:
                usdt[invoice.address] = 7 * USDT + i
        else:
            invoice = await gw.create_invoice("ethereum", "USDT", (i + 1) * USDT)
            usdt[invoice.address] = (i + 1) * USDT
    pay(chain, usdt, eth)
    chain.anvil.mine(3)
    await eventually(lambda: _all_paid(gw), within=60)
    usdt_before = token_balance(chain.anvil, chain.usdt, treasury)
    eth_before = chain.anvil.balance(treasury)

    # when the sweep is planned
    plan = await sweep_plan(gw.gateway.db, gw.gateway.stores, chain.network(), None, None)

    # then it covers every address once, in more than one batch, each under the block gas limit
    transactions = plan["transactions"]
    assert len(transactions) > 1
    swept = [address for tx in transactions for address in tx["addresses"]]
    assert sorted(swept) == sorted({*usdt, *eth})
    assert all(tx["gas"] <= BLOCK_GAS_LIMIT // 3 for tx in transactions)
    assert plan["total"] == {
        "ETH": format_amount(sum(eth.values()), 18),
        "USDT": format_amount(sum(usdt.values()), 6),
    }

    # and when an arbitrary account sends every batch
    sender = arbitrary_account(chain.anvil)
    for tx in transactions:
        chain.anvil.send_tx(sender, tx["to"], data=tx["data"], gas=tx["gas"])

    # then every address is empty and the treasury received exactly the plan's total
    for address in {*usdt, *eth}:
        assert token_balance(chain.anvil, chain.usdt, address) == 0, address
        assert chain.anvil.balance(address) == 0, address
    assert token_balance(chain.anvil, chain.usdt, treasury) - usdt_before == sum(usdt.values())
    assert chain.anvil.balance(treasury) - eth_before == sum(eth.values())
    # and a second plan finds nothing
    again = await sweep_plan(gw.gateway.db, gw.gateway.stores, chain.network(), None, None)
    assert again == {"transactions": [], "total": {}}


async def _all_paid(gw: GatewayUnderTest) -> bool:
    return await paid_count(gw) == ADDRESSES
