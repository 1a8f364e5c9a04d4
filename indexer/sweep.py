"""Sweeps of forwarder deposit addresses: which addresses still hold funds, in which batches.

The books say which deposit addresses received confirmed payments; the node says what each
still holds (`balanceOf`, `eth_getBalance` at the latest block), so an address already swept,
paid twice, never paid or paid again after a sweep is judged by what is there now. Addresses
are grouped per (factory, treasury) into batches whose estimated gas fits well inside the
block gas limit, and each batch becomes one unsigned EIP-1559 transaction calling
`ForwarderFactory.sweep`. Whoever sends it, the funds can only reach the treasury.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from indexer import forwarder
from indexer.chain.rpc import JsonRpcClient
from indexer.domain.errors import ChainpayError
from indexer.domain.money import format_amount
from indexer.domain.network import Asset, Network
from indexer.domain.pricing import Rate
from indexer.services.stores import Store
from indexer.store.rows import DepositRow

BALANCE_OF = keccak(text="balanceOf(address)")[:4]
# Upper bounds per address used to cut batches before estimating (measured, docs/benchmarks.md:
# ~40k for native only, ~45k with one ERC20 in batches of 100); the estimate then decides gas.
GAS_PER_ADDRESS = 60_000
GAS_PER_TOKEN = 40_000
BLOCK_SHARE = 3  # a batch uses at most a third of the block gas limit, so it gets included
GAS_MARGIN_PERCENT = 20  # over eth_estimateGas: state may move between estimate and inclusion
MAX_BATCH = 500


class SweepError(ChainpayError):
    """A sweep could not be planned (the node failed, or an estimate was refused)."""


@dataclass
class Holding:
    """What one deposit address holds now, of the assets a sweep considers."""

    address: str
    salt: bytes
    treasury: str
    factory: str
    amounts: dict[str, int] = field(default_factory=dict)  # asset symbol -> base units


@dataclass
class SweepPlan:
    transactions: list[dict[str, Any]]
    total: dict[str, str]  # asset -> decimal string
    batches: list[list[Holding]] = field(default_factory=list)  # what each transaction moves

    def as_json(self) -> dict[str, Any]:
        return {"transactions": self.transactions, "total": self.total}


def holdings_to_check(
    deposits: list[DepositRow], stores: dict[str, Store], network: str
) -> list[Holding]:
    """Deposit addresses with their salts, re-derived and checked against what was issued."""
    found: dict[str, Holding] = {}
    for row in deposits:
        store = stores.get(row.store_id)
        treasury = store.treasuries.get(network) if store is not None else None
        if store is None or treasury is None or store.salt_secret is None:
            continue
        salt = forwarder.deposit_salt(store.salt_secret, row.address_index)
        derived = forwarder.deposit_address(treasury.factory, treasury.treasury, salt)
        if derived != row.address:  # never sweep what this code would not have issued
            raise SweepError(
                f"{row.address} (store {row.store_id}, index {row.address_index}) does not "
                f"derive from the store's secret and treasury: refusing to plan a sweep"
            )
        found.setdefault(
            row.address, Holding(row.address, salt, treasury.treasury, treasury.factory)
        )
    return list(found.values())


async def read_balances(
    client: JsonRpcClient, holdings: list[Holding], assets: list[Asset]
) -> None:
    """Fill each holding's amounts from the node at the latest block."""
    requests: list[tuple[str, list[Any]]] = []
    for holding in holdings:
        for asset in assets:
            if asset.contract is None:
                requests.append(("eth_getBalance", [holding.address, "latest"]))
            else:
                data = "0x" + (BALANCE_OF + abi_encode(["address"], [holding.address])).hex()
                requests.append(("eth_call", [{"to": asset.contract, "data": data}, "latest"]))
    results = await client.batch(requests) if requests else []
    position = 0
    for holding in holdings:
        for asset in assets:
            raw = results[position]
            position += 1
            value = int(raw, 16) if isinstance(raw, str) and raw not in ("0x", "") else 0
            if value:
                holding.amounts[asset.symbol] = value


async def plan_sweeps(
    client: JsonRpcClient,
    network: Network,
    holdings: list[Holding],
    asset: str | None = None,
    min_value: int = 0,
    *,
    only: Collection[str] | None = None,
) -> SweepPlan:
    """Unsigned transactions sweeping every holding that still holds something (of `asset`,
    or of the assets in `only`, when given)."""
    assets = [
        a
        for a in network.assets
        if (asset is None or a.symbol == asset) and (only is None or a.symbol in only)
    ]
    await read_balances(client, holdings, assets)
    full = [h for h in holdings if h.amounts and max(h.amounts.values()) >= max(min_value, 1)]
    if not full:
        return SweepPlan([], {})
    block = await client.call("eth_getBlockByNumber", ["latest", False])
    gas_limit = int(block["gasLimit"], 16)
    base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
    try:
        tip = int(await client.call("eth_maxPriorityFeePerGas", []), 16)
    except ChainpayError:
        tip = 10**9
    transactions: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    batches = _batches(full, assets, gas_limit // BLOCK_SHARE)
    for batch in batches:
        transactions.append(await _transaction(client, network, batch, assets, base_fee, tip))
        for holding in batch:
            for symbol, amount in holding.amounts.items():
                totals[symbol] = totals.get(symbol, 0) + amount
    by_symbol = {a.symbol: a for a in network.assets}
    return SweepPlan(
        transactions,
        {s: format_amount(v, by_symbol[s].decimals) for s, v in sorted(totals.items())},
        batches,
    )


def _batches(holdings: list[Holding], assets: list[Asset], budget: int) -> list[list[Holding]]:
    """Per (factory, treasury), consecutive runs whose upper-bound gas fits the budget."""
    groups: dict[tuple[str, str], list[Holding]] = {}
    for holding in holdings:
        groups.setdefault((holding.factory, holding.treasury), []).append(holding)
    tokens = sum(1 for a in assets if a.contract is not None)
    per_address = GAS_PER_ADDRESS + GAS_PER_TOKEN * tokens
    size = max(1, min(MAX_BATCH, (budget - 50_000) // per_address))
    batches: list[list[Holding]] = []
    for group in groups.values():
        batches.extend(group[i : i + size] for i in range(0, len(group), size))
    return batches


async def _transaction(
    client: JsonRpcClient,
    network: Network,
    batch: list[Holding],
    assets: list[Asset],
    base_fee: int,
    tip: int,
) -> dict[str, Any]:
    held = {symbol for h in batch for symbol in h.amounts}
    tokens = [a.contract for a in assets if a.contract is not None and a.symbol in held]
    factory, treasury = batch[0].factory, batch[0].treasury
    data = "0x" + forwarder.sweep_calldata(treasury, [h.salt for h in batch], tokens).hex()
    try:
        estimate = int(await client.call("eth_estimateGas", [{"to": factory, "data": data}]), 16)
    except ChainpayError as exc:
        raise SweepError(f"{network.name}: the node refused to estimate a sweep: {exc}") from exc
    gas = estimate * (100 + GAS_MARGIN_PERCENT) // 100
    return {
        "to": factory,
        "data": data,
        "value": "0",
        "gas": gas,
        "chain_id": network.chain_id,
        "type": "0x2",
        "max_fee_per_gas": str(2 * base_fee + tip),
        "max_priority_fee_per_gas": str(tip),
        "addresses": [h.address for h in batch],
        "treasury": treasury,
        "eip681": f"ethereum:{factory}@{network.chain_id}?value=0&gasLimit={gas}&data={data}",
    }


def worth_sending(
    held: dict[str, int],
    native: Asset,
    cost_wei: int,
    multiple: int,
    rates: dict[str, Rate],
    decimals: dict[str, int],
) -> bool:
    """Whether a batch moving `held` (symbol -> base units) is worth `multiple` times its gas.

    Native coin alone is weighed in wei. Anything else is weighed in the one currency of
    `rates` (fiat per whole unit, from the price books), which must price every held asset and
    the native coin. Exact: fractions of integers, never floats.
    """
    if set(held) <= {native.symbol}:
        return held.get(native.symbol, 0) >= multiple * cost_wei
    value = sum(
        (
            Fraction(
                amount * rates[symbol].mantissa, 10 ** (decimals[symbol] + rates[symbol].decimals)
            )
            for symbol, amount in held.items()
        ),
        Fraction(0),
    )
    gas = rates[native.symbol]
    cost = Fraction(cost_wei * gas.mantissa, 10 ** (native.decimals + gas.decimals))
    return value >= multiple * cost
