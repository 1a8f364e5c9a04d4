"""A gas key cannot redirect a sweep: whatever the key's account sends to the factory or to
deposit addresses (another treasury, other salts, other tokens, direct calls), the merchant's
funds reach the treasury or stay where they are; the key only ever loses the gas it paid."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from indexer import forwarder
from indexer.chain.gas_key import GasKey, load_gas_key
from indexer.config import Settings, SweepSettings
from tests.support.anvil import Anvil, calldata
from tests.support.forwarders import checksum, deploy_factory, token_balance
from tests.support.gateway import Chain

pytestmark = pytest.mark.anvil

USDT = 10**6
ETHER = 10**18
GAS_KEY = keccak(text="chainpay tests: a hostile gas key").hex()


def gas_key(tmp_path: Path) -> GasKey:
    path = tmp_path / "gas.key"
    path.write_text(GAS_KEY)
    path.chmod(0o600)
    settings = Settings(
        source="test", database=tmp_path / "unused.duckdb", public_url="http://127.0.0.1",
        sweep=SweepSettings(gas_key_file=path),
    )  # fmt: skip
    return load_gas_key(settings)


def send_signed(anvil: Anvil, key: GasKey, to: str, data: str) -> dict[str, Any]:
    """Sign with the gas key and send raw, as the sweeper does; a fixed gas limit, so a call
    that reverts is still mined (and paid for). Returns the receipt."""
    nonce = int(anvil.rpc("eth_getTransactionCount", key.address, "pending"), 16)
    base = int(anvil.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    raw, tx_hash = key.sign(
        {
            "type": 2, "chainId": anvil.chain_id, "nonce": nonce, "to": checksum(to),
            "data": data, "value": 0, "gas": 3_000_000,
            "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9,
        }
    )  # fmt: skip
    assert anvil.rpc("eth_sendRawTransaction", raw) == tx_hash
    deadline = time.monotonic() + 30  # anvil mines it at once; this only bounds a broken node
    while (receipt := anvil.rpc("eth_getTransactionReceipt", tx_hash)) is None:
        assert time.monotonic() < deadline, f"{tx_hash} was not mined"
        time.sleep(0.02)
    return dict(receipt)


def gas_paid(receipt: dict[str, Any]) -> int:
    return int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)


def sweep_data(treasury: str, salts: list[bytes], tokens: list[str]) -> str:
    tokens = [checksum(t) for t in tokens]
    return "0x" + forwarder.sweep_calldata(checksum(treasury), salts, tokens).hex()


def test_whatever_the_gas_key_sends_the_deposits_reach_only_the_treasury(
    chain: Chain, tmp_path: Path
) -> None:
    # given three funded deposit addresses of a treasury, and a gas key holding 1 ETH
    anvil = chain.anvil
    factory = deploy_factory(anvil)
    treasury = checksum(anvil.accounts[5])
    bystander = checksum(anvil.accounts[8])  # another address the key might try to pay
    secret = keccak(text="a store's salt secret")
    salts = [forwarder.deposit_salt(secret, i) for i in range(3)]
    deposits = [forwarder.deposit_address(factory, treasury, salt) for salt in salts]
    for i, deposit in enumerate(deposits):
        anvil.token_mint(chain.usdt, deposit.lower(), (i + 1) * USDT)
        anvil.send_eth(chain.payer, deposit.lower(), ETHER // 10)
    key = gas_key(tmp_path)
    anvil.send_eth(anvil.accounts[0], key.address.lower(), ETHER)
    key_eth = anvil.balance(key.address)
    treasury_usdt, treasury_eth = (
        token_balance(anvil, chain.usdt, treasury),
        anvil.balance(treasury),
    )
    bystander_eth = anvil.balance(bystander)
    hostile = chain.spoof  # a same-symbol token at another contract
    other_salts = [keccak(text=f"guess {i}") for i in range(3)]

    # when the key's account tries every redirection it can express
    attempts = [
        (factory, sweep_data(key.address, salts, [chain.usdt])),  # to itself
        (factory, sweep_data(bystander, salts, [chain.usdt, hostile])),  # to another address
        (factory, sweep_data(key.address, other_salts, [chain.usdt])),  # guessed salts
        (factory, sweep_data(treasury, other_salts, [chain.usdt])),  # the treasury, wrong salts
        (factory, sweep_data(key.address, salts, [hostile, deposits[0]])),  # odd "tokens"
        (factory, calldata("sweepTokens()")),  # the list only exists during a sweep
        *[
            (deposit, calldata("transfer(address,uint256)", key.address, USDT))
            for deposit in deposits
        ],  # direct calls: no code lives at a deposit address
        *[(deposit, "0x") for deposit in deposits],
    ]
    spent = sum(gas_paid(send_signed(anvil, key, to, data)) for to, data in attempts)

    # then nothing moved: every deposit holds what it held, nobody received anything
    for i, deposit in enumerate(deposits):
        assert token_balance(anvil, chain.usdt, deposit) == (i + 1) * USDT
        assert anvil.balance(deposit) == ETHER // 10
    assert token_balance(anvil, chain.usdt, key.address) == 0
    assert token_balance(anvil, chain.usdt, bystander) == 0
    assert anvil.balance(bystander) == bystander_eth
    assert token_balance(anvil, chain.usdt, treasury) == treasury_usdt
    assert anvil.balance(treasury) == treasury_eth
    assert anvil.balance(key.address) == key_eth - spent  # the key lost its gas, nothing else

    # and when the key sends the real sweep, everything reaches the treasury, exactly
    receipt = send_signed(anvil, key, factory, sweep_data(treasury, salts, [chain.usdt, hostile]))
    assert int(receipt["status"], 16) == 1
    assert token_balance(anvil, chain.usdt, treasury) == treasury_usdt + 6 * USDT
    assert anvil.balance(treasury) == treasury_eth + 3 * (ETHER // 10)
    for deposit in deposits:
        assert token_balance(anvil, chain.usdt, deposit) == 0
        assert anvil.balance(deposit) == 0
    assert token_balance(anvil, chain.usdt, key.address) == 0
    assert anvil.balance(key.address) == key_eth - spent - gas_paid(receipt)
