"""Bad input: a clear JSON 4xx naming the field, and nothing stored. Never a 5xx."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from api.app import build_app
from api.bootstrap import Gateway
from indexer.config import load_settings
from tests.support.api import Merchant, make_merchant, write_config

Client = TestClient[Any, Any]
GOOD = {"network": "ethereum", "asset": "USDT", "amount": "10"}

BAD_BODIES = [
    ("unknown-network", {**GOOD, "network": "dogechain"}, 400, "unknown_network", "network"),
    ("unknown-asset", {**GOOD, "asset": "DAI"}, 400, "unknown_asset", "asset"),
    ("asset-of-other-network", {**GOOD, "asset": "BNB"}, 400, "unknown_asset", "asset"),
    ("zero", {**GOOD, "amount": "0"}, 400, "amount_not_positive", "amount"),
    ("negative", {**GOOD, "amount": "-5"}, 400, "invalid_amount", "amount"),
    ("too-many-decimals", {**GOOD, "amount": "1.0000001"}, 400, "too_many_decimals", "amount"),
    ("too-large", {**GOOD, "amount": "1" + "0" * 80}, 400, "amount_too_large", "amount"),
    ("number-not-string", {**GOOD, "amount": 10}, 400, "invalid_amount", "amount"),
    ("missing-amount", {"network": "ethereum", "asset": "USDT"}, 400, "invalid_amount", "amount"),
    ("missing-network", {"asset": "USDT", "amount": "1"}, 400, "invalid_network", "network"),
    ("network-wrong-type", {**GOOD, "network": 1}, 400, "invalid_network", "network"),
    ("unknown-field", {**GOOD, "colour": "red"}, 400, "unknown_field", "colour"),
    ("metadata-not-object", {**GOOD, "metadata": [1]}, 400, "invalid_metadata", "metadata"),
    (
        "metadata-too-big",
        {**GOOD, "metadata": {"x": "y" * 9000}},
        400,
        "invalid_metadata",
        "metadata",
    ),
    ("expires-too-short", {**GOOD, "expires_in": 5}, 400, "invalid_expires_in", "expires_in"),
    ("expires-bool", {**GOOD, "expires_in": True}, 400, "invalid_expires_in", "expires_in"),
    ("order-id-empty", {**GOOD, "order_id": ""}, 400, "invalid_order_id", "order_id"),
    (
        "redirect-not-http",
        {**GOOD, "redirect_url": "javascript:alert(1)"},
        400,
        "invalid_redirect_url",
        "redirect_url",
    ),
    ("body-is-list", [GOOD], 400, "invalid_body", None),
]


async def invoice_count(gateway: Gateway) -> int:
    row = await gateway.db.read(lambda c: c.execute("SELECT count(*) FROM invoices").fetchone())
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("body", "status", "code", "field"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_body_is_rejected_and_stores_nothing(
    client: Client,
    merchant: Merchant,
    gateway: Gateway,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = await client.post("/v1/invoices", json=body, headers=merchant.headers)
    error = (await response.json())["error"]
    assert response.status == status
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert await invoice_count(gateway) == 0


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b'{"amount": NaN}', "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b"[" * 100000, "application/json", 413, "body_too_large"),
        (b"network=ethereum", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
    ids=["malformed", "empty", "nan", "not-utf8", "oversized", "form-encoded"],
)
async def test_malformed_bodies_are_4xx(
    client: Client,
    merchant: Merchant,
    gateway: Gateway,
    raw: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    headers = {**merchant.headers, "Content-Type": content_type}
    response = await client.post("/v1/invoices", data=raw, headers=headers)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    assert await invoice_count(gateway) == 0


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/invoices?limit=0", 400, "invalid_limit"),
        ("/v1/invoices?limit=abc", 400, "invalid_limit"),
        ("/v1/invoices?status=done", 400, "invalid_status"),
        ("/v1/invoices?starting_after=inv_x", 400, "invalid_cursor"),
        ("/v1/invoices/inv_doesnotexist", 404, "not_found"),
        ("/v1/invoices/" + "x" * 500, 404, "not_found"),
        ("/v1/nothing", 404, "not_found"),
    ],
)
async def test_bad_queries_and_paths_are_4xx(
    client: Client, merchant: Merchant, path: str, status: int, code: str
) -> None:
    response = await client.get(path, headers=merchant.headers)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_wrong_method_is_405_json(client: Client, merchant: Merchant) -> None:
    response = await client.delete("/v1/invoices", headers=merchant.headers)
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_made_up_methods_share_one_metrics_label(client: Client, merchant: Merchant) -> None:
    # given requests with methods the API does not use (the client chooses the method)
    for method in ("PROPFIND", "MKCOL", "PROPFIND"):
        response = await client.request(method, "/v1/invoices", headers=merchant.headers)
        assert response.status == 405

    # then the request counter has one "OTHER" series for them, not one per invented method
    before = REGISTRY.get_sample_value(
        "chainpay_api_requests_total",
        {"route": "unmatched", "method": "OTHER", "status": "405"},
    )
    assert before is not None and before >= 3
    for method in ("PROPFIND", "MKCOL"):
        labels = {"route": "unmatched", "method": method, "status": "405"}
        assert REGISTRY.get_sample_value("chainpay_api_requests_total", labels) is None


# -- property test: arbitrary JSON against a live server never gives a 5xx ---------------------
class LiveServer:
    """The real app on a loopback port, in its own thread and event loop (hypothesis is sync)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.merchant: Merchant | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self.gateway = Gateway(load_settings(self.config, env={}))
        self.gateway.open()
        self.merchant = await make_merchant(self.gateway)
        self.runner = web.AppRunner(build_app(self.gateway))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def count(self) -> int:
        async def read() -> int:
            return await invoice_count(self.gateway)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(10)

    def stop(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.gateway.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(write_config(tmp_path_factory.mktemp("live"))).start()
    yield server
    server.stop()


def post(live: LiveServer, raw: bytes) -> tuple[int, Any]:
    assert live.merchant is not None
    request = urllib.request.Request(
        f"{live.url}/v1/invoices", data=raw, method="POST", headers=live.merchant.headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
invoice_like = st.fixed_dictionaries(
    {},
    optional={
        "network": st.sampled_from(["ethereum", "bsc", "x", ""]) | json_values,
        "asset": st.sampled_from(["USDT", "ETH", "BNB", "usdt"]) | json_values,
        "amount": st.from_regex(r"-?\d{0,80}(\.\d{0,20})?", fullmatch=True) | json_values,
        "expires_in": st.integers(-10, 10**7) | json_values,
        "order_id": st.text(max_size=300) | json_values,
        "metadata": json_values,
        "redirect_url": st.text(max_size=50) | json_values,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=invoice_like | json_values)
def test_any_json_body_gets_201_or_a_json_4xx_and_rejections_store_nothing(
    live: LiveServer, body: Any
) -> None:
    before = live.count()
    status, answer = post(live, json.dumps(body).encode())
    assert status in (201, 400, 409, 413, 415), answer
    if status == 201:
        assert live.count() == before + 1
    else:
        assert set(answer["error"]) == {"code", "message", "field"}
        assert live.count() == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_json_4xx(live: LiveServer, raw: bytes) -> None:
    before = live.count()
    status, answer = post(live, raw)
    assert 400 <= status < 500 or status == 201, answer
    if status != 201:
        assert live.count() == before
