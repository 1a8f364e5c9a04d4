"""Authentication is the default: every route of the built app needs a key unless it is on the
reviewed public list, so a route that forgets authentication cannot exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from api.auth import PUBLIC_ROUTES, is_public
from api.bootstrap import Gateway
from indexer.config import Settings
from tests.support.api import Merchant

Client = TestClient[Any, Any]

# The reviewed allow-list: changing api.auth.PUBLIC_ROUTES means changing this line too.
REVIEWED_PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/pay/{invoice_id}",
    "/pay/{invoice_id}/status",
    "/pay/{invoice_id}/qr.svg",
    "/static",
}


def _routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, template) of every route the app serves, HEAD included."""
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None
        }
    )


def _url(template: str) -> str:
    url = re.sub(r"\{[^}]+\}", "x", template)
    return url + "/checkout.css" if template == "/static" else url


def _built_routes() -> list[tuple[str, str]]:
    # The route table is the same for every gateway; this one is never opened.
    unopened = Gateway(Settings("test", Path("unused.duckdb"), "https://pay.example.com"))
    return _routes(build_app(unopened))


PROTECTED = [r for r in _built_routes() if not is_public(*r)]
PUBLIC = [r for r in _built_routes() if is_public(*r)]


def test_the_public_list_is_the_reviewed_one_and_holds_no_v1_route() -> None:
    assert PUBLIC_ROUTES == REVIEWED_PUBLIC
    assert not [path for path in PUBLIC_ROUTES if path.startswith("/v1")]


def test_every_v1_route_is_protected() -> None:
    v1 = [r for r in _built_routes() if r[1].startswith("/v1")]
    assert len(v1) >= 17  # store, invoices, webhook endpoints, events (HEAD included)
    assert set(v1) <= set(PROTECTED)


@pytest.mark.parametrize(("method", "template"), PROTECTED, ids=[" ".join(r) for r in PROTECTED])
async def test_a_protected_route_answers_401_without_a_key_or_with_a_revoked_one(
    client: Client, gateway: Gateway, merchant: Merchant, method: str, template: str
) -> None:
    revoked = await gateway.stores.create_key(merchant.store_id)
    await gateway.stores.revoke_key(revoked.key_id)
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {revoked.secret}"},
    ):
        response = await client.request(method, _url(template), headers=headers)
        assert response.status == 401, headers
        if method != "HEAD":
            assert (await response.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "template"), PUBLIC, ids=[" ".join(r) for r in PUBLIC])
async def test_a_public_route_answers_without_a_key(
    client: Client, method: str, template: str
) -> None:
    response = await client.request(method, _url(template))
    assert response.status in (200, 404, 503)  # an unknown invoice, a gateway with no chain


async def test_a_route_added_without_thinking_of_keys_is_protected(
    gateway: Gateway, merchant: Merchant
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"secret": "store data"})

    app = build_app(gateway)
    app.router.add_get("/v1/new-thing", handler)
    app.router.add_post("/reports", handler)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/v1/new-thing")).status == 401
        assert (await client.post("/reports")).status == 401
        assert (await client.get("/v1/new-thing", headers=merchant.headers)).status == 200


async def test_public_routes_serve_only_reads(client: Client) -> None:
    response = await client.post("/healthz")
    assert response.status == 405  # no such route: never authenticated, never served
    app_routes = set(_built_routes())
    assert not [r for r in app_routes if r[1] in PUBLIC_ROUTES and r[0] not in ("GET", "HEAD")]
