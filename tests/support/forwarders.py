"""Forwarder deposit contracts on anvil: the deployer proxy, the factory, token balances, sweeps.

The factory goes on chain exactly as on mainnet: through the deterministic-deployment proxy,
installed here with `anvil_setCode` (its public runtime code), so it lands at
`deterministic_factory()`.
"""

from __future__ import annotations

from typing import Any

from eth_utils.address import to_checksum_address

from indexer import forwarder
from tests.support.anvil import Anvil, calldata


def install_proxy(anvil: Anvil) -> None:
    anvil.rpc(
        "anvil_setCode", forwarder.DEPLOYER_PROXY, "0x" + forwarder.DEPLOYER_PROXY_RUNTIME.hex()
    )


def deploy_factory(anvil: Anvil) -> str:
    """The factory at its deterministic address (EIP-55); deployed once per chain."""
    install_proxy(anvil)
    factory = forwarder.deterministic_factory()
    if anvil.rpc("eth_getCode", factory, "latest") in ("0x", "0x0"):
        tx = forwarder.factory_deployment(True, anvil.chain_id, 0)
        anvil.send_tx(anvil.accounts[0], tx["to"], data=tx["data"])
    return factory


def checksum(address: str) -> str:
    return str(to_checksum_address(address))


def token_balance(anvil: Anvil, token: str, holder: str) -> int:
    reply = anvil.rpc(
        "eth_call", {"to": token, "data": calldata("balanceOf(address)", holder)}, "latest"
    )
    return int(reply, 16)


def deploy_awkward(anvil: Anvil, mode: int, decimals: int = 6) -> str:
    return anvil.deploy("AwkwardToken", decimals, mode)


def sweep(
    anvil: Anvil,
    factory: str,
    treasury: str,
    salts: list[bytes],
    tokens: list[str],
    sender: str | None = None,
) -> dict[str, Any]:
    """Send `factory.sweep` from `sender` (any account: the funds' destination is fixed)."""
    data = (
        "0x"
        + forwarder.sweep_calldata(checksum(treasury), salts, [checksum(t) for t in tokens]).hex()
    )
    return anvil.send_tx(sender or anvil.accounts[9], factory, data=data, gas=29_000_000)
