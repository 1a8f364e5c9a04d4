"""Bad input: a clear JSON 4xx naming the field, and nothing stored. Never a 5xx."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from api.admin import build_admin_app
from api.bootstrap import Gateway
from tests.support.api import Merchant, write_config
from tests.support.live import LiveServer, invoice_count

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
    # text: JSON can spell a lone UTF-16 surrogate, which no database or UTF-8 can store
    ("surrogate-order-id", {**GOOD, "order_id": "a\ud800"}, 400, "invalid_text", "order_id"),
    (
        "surrogate-metadata-key",
        {**GOOD, "metadata": {"\udc00": 1}},
        400,
        "invalid_text",
        "metadata",
    ),
    (
        "surrogate-deep-in-metadata",
        {**GOOD, "metadata": {"a": [{"b": ["ok", "\udfff"]}]}},
        400,
        "invalid_text",
        "metadata",
    ),
    ("surrogate-field-name", {**GOOD, "\ud800": 1}, 400, "invalid_text", None),
    # amounts are ASCII digits: Python's int() and \\d would take these
    ("arabic-indic-digits", {**GOOD, "amount": "١٢"}, 400, "invalid_amount", "amount"),
    ("fullwidth-digits", {**GOOD, "amount": "１２"}, 400, "invalid_amount", "amount"),
    ("superscript-digit", {**GOOD, "amount": "1²"}, 400, "invalid_amount", "amount"),
    ("devanagari-fraction", {**GOOD, "amount": "1.५"}, 400, "invalid_amount", "amount"),
]


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


LISTS = [
    "/v1/invoices",
    "/v1/webhook-endpoints",
    "/v1/events",
    "/v1/events/evt_0000000000000000000000/deliveries",
    "/v1/webhook-endpoints/we_0000000000000000000000/deliveries",
]


@pytest.mark.parametrize("limit", ["²", "①", "١٢", "１２", "5\n", " 5", "+5", "1" * 50])
@pytest.mark.parametrize("path", LISTS)
async def test_limit_is_ascii_digits_on_every_list(
    client: Client, merchant: Merchant, path: str, limit: str
) -> None:
    response = await client.get(path, params={"limit": limit}, headers=merchant.headers)
    assert response.status in (400, 404)  # the two deliveries lists: unknown parent first
    error = (await response.json())["error"]
    if response.status == 400:
        assert (error["code"], error["field"]) == ("invalid_limit", "limit")


async def test_a_webhook_description_with_a_lone_surrogate_is_400(
    client: Client, merchant: Merchant
) -> None:
    body = {"url": "https://example.com/hook", "description": "\ud800"}
    response = await client.post("/v1/webhook-endpoints", json=body, headers=merchant.headers)
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "description"
    listed = await (await client.get("/v1/webhook-endpoints", headers=merchant.headers)).json()
    assert listed["data"] == []


async def test_admin_commands_refuse_a_body_that_is_not_an_object(gateway: Gateway) -> None:
    async with TestClient(TestServer(build_admin_app(gateway))) as admin:
        for path, body in [
            ("/admin/stores", []),
            ("/admin/stores", {"name": 1, "evm_xpub": "x"}),
            ("/admin/export", {}),
            ("/admin/backup", "out"),
        ]:
            response = await admin.post(path, json=body)
            assert response.status == 400, path
            assert set((await response.json())["error"]) == {"code", "message", "field"}


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


# Text classes outside hypothesis' default alphabet: lone surrogates (JSON can escape them),
# non-ASCII digits (Python's int() reads them), and everything else.
surrogates = st.characters(categories=["Cs"])
unicode_digits = st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii())
any_text = st.text(max_size=30) | st.text(
    st.characters() | surrogates | unicode_digits, max_size=30
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=10,
)
digits = st.text(st.sampled_from("0123456789") | unicode_digits, min_size=1, max_size=20)
invoice_like = st.fixed_dictionaries(
    {},
    optional={
        "network": st.sampled_from(["ethereum", "bsc", "x", ""]) | json_values,
        "asset": st.sampled_from(["USDT", "ETH", "BNB", "usdt"]) | json_values,
        "amount": st.from_regex(r"-?\d{0,80}(\.\d{0,20})?", fullmatch=True)
        | st.builds(lambda a, b: f"{a}.{b}", digits, digits)
        | digits
        | json_values,
        "expires_in": st.integers(-10, 10**7) | json_values,
        "order_id": st.text(max_size=300) | any_text | json_values,
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


# -- bytes no client library would send: raw requests on the live server --------------------
def raw_request(live: LiveServer, head: bytes, body: bytes = b"") -> tuple[int, str, Any]:
    """Send `head` (request line and headers, without the blank line) and read the answer."""
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"\r\nConnection: close\r\n\r\n" + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    header_block, _, payload = answer.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), json.loads(payload)


def auth_line(live: LiveServer) -> bytes:
    assert live.merchant is not None
    return f"Authorization: Bearer {live.merchant.key}".encode()


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        (b"Idempotency-Key: \xff\xfe", 400, "invalid_header"),
        (b"Idempotency-Key: caf\xc3\xa9", 400, "invalid_idempotency_key"),
        (b"Idempotency-Key: a\x7fb", 400, "bad_request"),  # aiohttp's parser refuses it
        (b"Idempotency-Key: " + b"k" * 256, 400, "invalid_idempotency_key"),
    ],
    ids=["not-utf8", "not-ascii", "control", "too-long"],
)
def test_a_bad_idempotency_key_is_400_and_stores_nothing(
    live: LiveServer, header: bytes, status: int, code: str
) -> None:
    body = json.dumps(GOOD).encode()
    head = (
        b"POST /v1/invoices HTTP/1.1\r\nHost: x\r\n" + auth_line(live) + b"\r\n"
        b"Content-Type: application/json\r\n" + header + b"\r\n"
        b"Content-Length: " + str(len(body)).encode()
    )
    before = live.count()
    answer = raw_request(live, head, body)
    assert answer[:2] == (status, "application/json; charset=utf-8")
    assert answer[2]["error"]["code"] == code
    assert live.count() == before


@pytest.mark.parametrize("path", ["/v1/invoices", "/v1/store", "/v1/events"])
def test_an_authorization_header_that_is_not_utf8_is_401(live: LiveServer, path: str) -> None:
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + b"Authorization: Bearer \xff\xfe\x80"
    status, content_type, answer = raw_request(live, head)
    assert (status, answer["error"]["code"]) == (401, "unauthorized")
    assert content_type.startswith("application/json")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000,
        b"POST /v1/invoices HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x",
    ],
    ids=["header-over-8kb", "content-length-and-chunked", "space-in-header-name", "long-path"],
)
def test_requests_aiohttps_parser_refuses_get_the_json_error_shape(
    live: LiveServer, head: bytes
) -> None:
    status, content_type, answer = raw_request(live, head)
    assert 400 <= status < 500
    assert content_type.startswith("application/json")
    assert set(answer["error"]) == {"code", "message", "field"}
    assert b"aaaa" not in json.dumps(answer).encode()  # the request's bytes are not echoed


header_bytes = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"\r" not in b and b"\n" not in b and b.strip() == b
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=header_bytes, limit=any_text, request_id=header_bytes)
def test_any_header_or_limit_bytes_get_a_json_answer_never_a_5xx(
    live: LiveServer, key: bytes, limit: str, request_id: bytes
) -> None:
    body = json.dumps(GOOD).encode()
    head = (
        b"POST /v1/invoices HTTP/1.1\r\nHost: x\r\n" + auth_line(live) + b"\r\n"
        b"Content-Type: application/json\r\nIdempotency-Key: " + key + b"\r\n"
        b"X-Request-Id: " + request_id + b"\r\nContent-Length: " + str(len(body)).encode()
    )
    status, _, answer = raw_request(live, head, body)
    assert status in (201, 400), answer
    query = urllib.parse.urlencode({"limit": limit}, errors="surrogatepass")
    head = f"GET /v1/invoices?{query} HTTP/1.1\r\nHost: x\r\n".encode() + auth_line(live)
    status, _, answer = raw_request(live, head)
    assert status in (200, 400), answer


async def test_an_integral_json_number_is_an_integer_for_expires_in(
    client: Client, merchant: Merchant
) -> None:
    # JSON Schema (and so the OpenAPI document) calls 900.0 an integer; 900.5 is not one
    body = {**GOOD, "expires_in": 900.0}
    response = await client.post("/v1/invoices", json=body, headers=merchant.headers)
    assert response.status == 201, await response.text()
    body = {**GOOD, "expires_in": 900.5}
    response = await client.post("/v1/invoices", json=body, headers=merchant.headers)
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "expires_in"
