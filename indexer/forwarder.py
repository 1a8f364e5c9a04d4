"""Forwarder deposit addresses: CREATE2 derivation, the factory's deployment and its sweep call.

A forwarder store's invoice address is where `ForwarderFactory` would CREATE2 a
`DepositForwarder` (indexer/chain/contracts/DepositForwarder.sol):

    address = keccak256(0xff ++ factory ++ salt ++ keccak256(init_code))[12:]
    init_code = DepositForwarder creation code ++ abi.encode(treasury)

The treasury is inside the init code, so an address commits to the one place its funds can go.

The salt is keccak256("chainpay/deposit" ++ store secret ++ uint256(index)), with a 256-bit
random secret per store (kept in the database, never shown) and the store's address index,
which is never reused (the same allocation as xpub stores, floors after a restore included).
Why that is safe: the risk of a CREATE2 address is a collision with an address an attacker
controls (an EOA key or another contract); a birthday search needs ~2^80 work only when the
attacker can enumerate many of our future addresses. Without the secret our addresses cannot
be enumerated, so the attacker faces a second preimage of one published address (~2^160). The
derivation stays reproducible from the database alone, so addresses past the highest issued
index can be re-derived and swept after a restore, like an xpub wallet's.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from indexer.chain.errors import RpcError
from indexer.chain.rpc import JsonRpcClient
from indexer.domain.errors import ValidationError
from indexer.domain.network import Network

# The deterministic-deployment proxy (github.com/Arachnid/deterministic-deployment-proxy), at the
# same address on most EVM chains: a call with data = salt ++ init code CREATE2s the init code.
DEPLOYER_PROXY = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
DEPLOYER_PROXY_RUNTIME = bytes.fromhex(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe036016000816020823780358282"
    "34f58015156039578182fd5b8082525050506014600cf3"
)
FACTORY_SALT = bytes(32)  # anyone may deploy the factory; the same code lands at the same place
SALT_DOMAIN = b"chainpay/deposit"
ZERO_ADDRESS = "0x" + "00" * 20
SWEEP_SELECTOR = keccak(text="sweep(address,bytes32[],address[])")[:4]
# DepositForwarder's event, logged from the deposit address right before selfdestruct moves its
# native coin to the treasury (a transfer no log would otherwise show).
NATIVE_SWEPT_TOPIC = "0x" + keccak(text="NativeSwept(address,uint256)").hex()


@dataclass(frozen=True)
class Artifacts:
    factory_init: bytes
    factory_runtime: bytes
    forwarder_init: bytes


@cache
def artifacts() -> Artifacts:
    """The checked-in compiler output (reproduced byte for byte in CI)."""

    def load(name: str) -> dict[str, Any]:
        path = resources.files("indexer.chain").joinpath(f"contracts/{name}.json")
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    factory, forwarder = load("ForwarderFactory"), load("DepositForwarder")
    return Artifacts(
        factory_init=bytes.fromhex(factory["bytecode"][2:]),
        factory_runtime=bytes.fromhex(factory["deployedBytecode"][2:]),
        forwarder_init=bytes.fromhex(forwarder["bytecode"][2:]),
    )


def create2_address(deployer: str, salt: bytes, init_code_hash: bytes) -> str:
    digest = keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + init_code_hash)
    return str(to_checksum_address(digest[12:]))


@cache
def deterministic_factory() -> str:
    """Where the proxy puts the factory: the same address on every chain that has the proxy."""
    return create2_address(DEPLOYER_PROXY, FACTORY_SALT, keccak(artifacts().factory_init))


def factory_for(network: Network) -> str:
    """The factory new forwarder stores use on `network`: configured, or the deterministic one."""
    return network.forwarder_factory or deterministic_factory()


async def factory_problem(client: JsonRpcClient, factory: str) -> str | None:
    """None when the chain holds exactly the artifact's runtime at `factory`; else why not."""
    try:
        code = await client.call("eth_getCode", [factory, "latest"])
    except RpcError as exc:
        return f"the node did not answer ({exc})"
    if not isinstance(code, str) or code in ("0x", "0x0", ""):
        return f"no contract at {factory}"
    if not runtime_matches(code):
        return f"the code at {factory} differs from chainpay's ForwarderFactory artifact"
    return None


def forwarder_init_code(treasury: str) -> bytes:
    return artifacts().forwarder_init + abi_encode(["address"], [treasury])


@lru_cache(maxsize=4096)
def _init_code_hash(treasury: str) -> bytes:
    return keccak(forwarder_init_code(treasury))


def deposit_salt(secret: bytes, index: int) -> bytes:
    if len(secret) != 32 or index < 0:
        raise ValueError("a deposit salt needs a 32-byte secret and an index >= 0")
    return keccak(SALT_DOMAIN + secret + index.to_bytes(32, "big"))


def deposit_address(factory: str, treasury: str, salt: bytes) -> str:
    """The EIP-55 deposit address of (treasury, salt) under `factory`."""
    return create2_address(factory, salt, _init_code_hash(treasury.lower()))


def new_salt_secret() -> bytes:
    return secrets.token_bytes(32)


def check_treasury(value: object, network: str, factory: str) -> str:
    """A treasury as given by an operator: EIP-55, not zero, not chainpay's own contracts."""
    field = f"treasury.{network}"
    if (
        not isinstance(value, str)
        or len(value) != 42
        or not value.startswith("0x")
        or not all(c in "0123456789abcdefABCDEF" for c in value[2:])
    ):
        raise ValidationError("invalid_treasury", f"{network}: not a 0x address: {value!r}", field)
    if value.lower() == ZERO_ADDRESS:
        raise ValidationError(
            "invalid_treasury", f"{network}: the zero address would burn every sweep", field
        )
    if to_checksum_address(value) != value:
        raise ValidationError(
            "invalid_treasury",
            f"{network}: {value} is not EIP-55 checksummed (expected {to_checksum_address(value)});"
            " a typo in a treasury loses every payment, so only checksummed addresses are taken",
            field,
        )
    if value.lower() in (factory.lower(), DEPLOYER_PROXY.lower()):
        raise ValidationError(
            "invalid_treasury",
            f"{network}: {value} is chainpay's forwarder factory (or its deployer), not a wallet",
            field,
        )
    return value


def sweep_calldata(treasury: str, salts: list[bytes], tokens: list[str]) -> bytes:
    """`ForwarderFactory.sweep(treasury, salts, tokens)`."""
    return SWEEP_SELECTOR + abi_encode(
        ["address", "bytes32[]", "address[]"], [treasury, salts, tokens]
    )


def factory_deployment(proxy_present: bool, chain_id: int, gas: int) -> dict[str, Any]:
    """The unsigned transaction that puts the factory on a chain.

    Through the proxy when the chain has it (the factory then sits at `deterministic_factory()`
    there as everywhere); otherwise a plain creation (`to` null) whose address depends on the
    sender, which the operator then sets as `[networks.N] forwarder_factory`.
    """
    init = artifacts().factory_init
    data = FACTORY_SALT + init if proxy_present else init
    return {
        "to": DEPLOYER_PROXY if proxy_present else None,
        "data": "0x" + data.hex(),
        "value": "0",
        "gas": gas,
        "chain_id": chain_id,
    }


def runtime_matches(code_hex: str) -> bool:
    """Whether code read from a chain (eth_getCode) is the factory's, byte for byte."""
    text = code_hex[2:] if code_hex.startswith("0x") else code_hex
    try:
        return bytes.fromhex(text) == artifacts().factory_runtime
    except ValueError:
        return False
