"""Forwarder commands: `chainpay contracts deploy|verify --network N` and `chainpay sweep`.

Nothing here signs: `contracts deploy` and `sweep` print unsigned transactions for the
operator's wallet (any wallet may send a sweep: its funds can only reach the treasury).
`sweep` reads the books from the database file, or from a running gateway over its admin socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from api.bootstrap import open_storage
from api.command import Handler, UsageError, call_admin, settings_from
from indexer import forwarder
from indexer.chain.errors import RpcError
from indexer.chain.rpc import JsonRpcClient
from indexer.config import Settings
from indexer.domain.clock import SystemClock
from indexer.domain.money import parse_amount
from indexer.domain.network import Network
from indexer.services.stores import StoreService
from indexer.store.errors import DatabaseLocked
from indexer.store.port import Storage
from indexer.sweep import SweepError, holdings_to_check, plan_sweeps


def add_parsers(sub: Any) -> dict[str, Handler]:
    contracts = sub.add_parser("contracts", help="the forwarder factory on each network")
    actions = contracts.add_subparsers(dest="contracts_command", required=True)
    deploy = actions.add_parser("deploy", help="print the unsigned factory deployment")
    deploy.add_argument("--network", required=True)
    deploy.add_argument("--json", action="store_true")
    deploy.set_defaults(command="contracts", command_key="contracts deploy")
    verify = actions.add_parser("verify", help="compare the deployed factory with the artifact")
    verify.add_argument("--network", required=True)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(command="contracts", command_key="contracts verify")

    sweep = sub.add_parser("sweep", help="print unsigned transactions sweeping deposit addresses")
    sweep.add_argument("--network", required=True)
    sweep.add_argument("--asset", help="only this asset (default: every configured asset)")
    sweep.add_argument(
        "--min-value", help="skip addresses holding less than this (decimal, needs --asset)"
    )
    sweep.add_argument("--json", action="store_true")
    sweep.set_defaults(command_key="sweep")
    return {
        "contracts deploy": cmd_deploy,
        "contracts verify": cmd_verify,
        "sweep": cmd_sweep,
    }


def _network(settings: Settings, name: str) -> Network:
    network = settings.network(name)
    if network is None:
        known = ", ".join(sorted(settings.networks)) or "none configured"
        raise UsageError(f"unknown network {name!r} (known: {known})")
    return network


def cmd_deploy(args: argparse.Namespace) -> int:
    network = _network(settings_from(args), args.network)
    out = asyncio.run(_deploy(network))
    if args.json:
        print(json.dumps(out))
        return 0
    for tx in out["transactions"]:
        print(f"Send from any account on {network.name} (chain id {network.chain_id}):")
        print(f"  to:    {tx['to'] or '(contract creation)'}")
        print(f"  gas:   {tx['gas']}")
        print(f"  data:  {tx['data']}")
    print(f"The factory will be at {out['factory'] or 'the address your wallet reports'}.")
    return 0


async def _deploy(network: Network) -> dict[str, Any]:
    async with JsonRpcClient(network.rpc_url, network.name) as client:
        try:
            chain_id = int(await client.call("eth_chainId"), 16)
            if chain_id != network.chain_id:
                raise UsageError(f"{network.name}: node is on chain id {chain_id}")
            proxy = await client.call("eth_getCode", [forwarder.DEPLOYER_PROXY, "latest"])
            present = bytes.fromhex(proxy[2:]) == forwarder.DEPLOYER_PROXY_RUNTIME
            factory = forwarder.factory_for(network)
            if present and await forwarder.factory_problem(client, factory) is None:
                return {"transactions": [], "factory": factory, "deployed": True}
            tx = forwarder.factory_deployment(present, network.chain_id, 0)
            call = {"data": tx["data"], **({"to": tx["to"]} if tx["to"] else {})}
            tx["gas"] = int(await client.call("eth_estimateGas", [call]), 16) * 12 // 10
        except RpcError as exc:
            raise UsageError(f"{network.name}: the node failed: {exc}") from None
    return {
        "transactions": [tx],
        "factory": forwarder.deterministic_factory() if present else None,
        "deployed": False,
    }


def cmd_verify(args: argparse.Namespace) -> int:
    network = _network(settings_from(args), args.network)
    factory = forwarder.factory_for(network)

    async def check() -> str | None:
        async with JsonRpcClient(network.rpc_url, network.name) as client:
            return await forwarder.factory_problem(client, factory)

    problem = asyncio.run(check())
    if args.json:
        print(json.dumps({"network": network.name, "factory": factory, "ok": problem is None,
                          "problem": problem}))  # fmt: skip
    elif problem is None:
        print(f"{network.name}: the factory at {factory} matches the artifact byte for byte")
    else:
        print(f"{network.name}: {problem}")
    return 0 if problem is None else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    network = _network(settings, args.network)
    request = {"network": network.name, "asset": args.asset, "min_value": args.min_value}
    try:
        db = open_storage(settings)  # PostgreSQL too: Database() would open a file of that name
    except DatabaseLocked:
        db = None
    if db is None:
        plan = call_admin(settings, "/admin/sweep", request)
    else:
        try:
            db.migrate()
            stores = StoreService(db, SystemClock())
            db.read_sync(stores.load)
            plan = asyncio.run(sweep_plan(db, stores, network, args.asset, args.min_value))
        finally:
            asyncio.run(db.close())
    if args.json:
        print(json.dumps(plan))
    elif not plan["transactions"]:
        print(f"{network.name}: nothing to sweep")
    else:
        for tx in plan["transactions"]:
            print(f"{len(tx['addresses'])} addresses -> {tx['treasury']}, gas {tx['gas']}:")
            print(f"  {tx['eip681']}")
        print("total: " + ", ".join(f"{v} {k}" for k, v in plan["total"].items()))
    return 0


async def sweep_plan(
    db: Storage, stores: StoreService, network: Network, asset: str | None, min_value: str | None
) -> dict[str, Any]:
    """The sweep of `network` as JSON; shared by the CLI and the admin socket."""
    threshold = 0
    if asset is not None and network.asset(asset) is None:
        raise UsageError(f"unknown asset {asset!r} on {network.name}")
    if min_value is not None:
        if asset is None:
            raise UsageError("--min-value needs --asset (the value is in that asset's units)")
        found = network.asset(asset)
        assert found is not None
        threshold = parse_amount(min_value, found.decimals, "min_value")
    deposits = await db.read(lambda uow: uow.stores.forwarder_deposits(network.name))
    holdings = holdings_to_check(deposits, stores.stores, network.name)
    async with JsonRpcClient(network.rpc_url, network.name) as client:
        try:
            plan = await plan_sweeps(client, network, holdings, asset, threshold)
        except (RpcError, SweepError) as exc:
            raise UsageError(f"{network.name}: {exc}") from None
    return plan.as_json()
