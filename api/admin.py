"""The admin socket: store and key commands reach a running gateway through a Unix socket.

DuckDB lets one process write a file, so while `chainpay serve` runs, `chainpay store create`
and `chainpay key create|revoke` cannot open it. They send the command here instead. The socket
lives next to the database with mode 0600: file permissions are the authentication.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from api.bootstrap import Gateway
from api.errors import ApiError, error_middleware
from api.keys import GATEWAY
from api.requests import parse_json, read_body
from indexer.store.errors import StoreError

routes = web.RouteTableDef()


def socket_path(database: Path) -> Path:
    return database.resolve().parent / f".{database.name}.admin.sock"


async def _command(request: web.Request, *names: str) -> dict[str, str]:
    """The command's JSON object with these string fields (a 400 naming the field otherwise)."""
    body = parse_json(request, await read_body(request))
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the request body must be a JSON object")
    for name in names:
        if not isinstance(body.get(name), str):
            raise ApiError(400, f"invalid_{name}", f"{name} is required (a string)", name)
    return {name: body[name] for name in names}


@routes.post("/admin/stores")
async def create_store(request: web.Request) -> web.Response:
    """An xpub store ({"name", "evm_xpub"}) or a forwarder store ({"name", "treasuries"})."""
    raw = parse_json(request, await read_body(request))
    stores = request.app[GATEWAY].stores
    if isinstance(raw, dict) and "treasuries" in raw:
        store, key = await stores.create_forwarder_store(raw.get("name"), raw["treasuries"])
        return web.json_response(
            {"store_id": store.id, "api_key": key.secret, "key_id": key.key_id}, status=201
        )
    body = await _command(request, "name", "evm_xpub")
    store, key = await stores.create_store(body["name"], body["evm_xpub"])
    return web.json_response(
        {"store_id": store.id, "api_key": key.secret, "key_id": key.key_id}, status=201
    )


@routes.post("/admin/stores/{store_id}/keys")
async def create_key(request: web.Request) -> web.Response:
    key = await request.app[GATEWAY].stores.create_key(request.match_info["store_id"])
    return web.json_response(
        {"store_id": key.store_id, "api_key": key.secret, "key_id": key.key_id}, status=201
    )


@routes.post("/admin/export")
async def export(request: web.Request) -> web.Response:
    body = await _command(request, "out")
    try:
        summary = await request.app[GATEWAY].db.export_snapshot(Path(body["out"]))
    except StoreError as exc:  # target not empty, disk full: the operator's to fix
        raise ApiError(409, "export_failed", str(exc)) from None
    return web.json_response(summary)


@routes.post("/admin/backup")
async def backup(request: web.Request) -> web.Response:
    body = await _command(request, "out")
    try:
        summary = await request.app[GATEWAY].db.backup(Path(body["out"]))
    except StoreError as exc:
        raise ApiError(409, "backup_failed", str(exc)) from None
    return web.json_response(summary)


@routes.post("/admin/sweep")
async def sweep(request: web.Request) -> web.Response:
    from api.command import UsageError  # local: api.command imports this module
    from api.contracts import sweep_plan

    body = parse_json(request, await read_body(request))
    gateway = request.app[GATEWAY]
    if not isinstance(body, dict) or not isinstance(body.get("network"), str):
        raise ApiError(400, "invalid_network", "network is required (a string)", "network")
    network = gateway.settings.network(body["network"])
    if network is None:
        raise ApiError(400, "unknown_network", f"unknown network {body['network']!r}", "network")
    try:
        plan = await sweep_plan(
            gateway.db, gateway.stores, network, body.get("asset"), body.get("min_value")
        )
    except UsageError as exc:
        raise ApiError(409, "sweep_failed", str(exc)) from None
    return web.json_response(plan)


@routes.post("/admin/keys/{key_id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    await request.app[GATEWAY].stores.revoke_key(request.match_info["key_id"])
    return web.json_response({"key_id": request.match_info["key_id"], "revoked": True})


def build_admin_app(gateway: Gateway) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[GATEWAY] = gateway
    app.add_routes(routes)
    return app


async def call(
    database: Path, path: str, payload: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Send one admin command to the running gateway; raises OSError when nobody listens."""
    connector = aiohttp.UnixConnector(path=str(socket_path(database)))
    # An export or backup of a large store can take many minutes; the server keeps going anyway.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.post(f"http://chainpay{path}", json=payload or {}) as response:
            return response.status, json.loads(await response.text())
