"""POST/GET /v1/invoices over real HTTP against a real Gateway on a DuckDB file."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from api.bootstrap import Gateway
from indexer.wallet import parse_xpub
from tests.support.api import OTHER_XPUB, TEST_XPUB, Merchant, make_merchant

Client = TestClient[Any, Any]
USDT_ORDER = {"network": "ethereum", "asset": "USDT", "amount": "12.50", "order_id": "A-1"}


async def create(client: Client, merchant: Merchant, body: dict[str, Any], **headers: str) -> Any:
    return await client.post("/v1/invoices", json=body, headers={**merchant.headers, **headers})


async def count(gateway: Gateway, table: str) -> int:
    row = await gateway.db.read_sql(lambda c: c.execute(f"SELECT count(*) FROM {table}").fetchone())
    return int(row[0]) if row else 0


async def test_create_returns_new_invoice_with_fresh_derived_address(
    client: Client, merchant: Merchant
) -> None:
    response = await create(client, merchant, {**USDT_ORDER, "metadata": {"cart": [1, 2]}})
    body = await response.json()
    assert response.status == 201
    assert body["status"] == "new" and body["exception"] is None
    assert body["amount"] == "12.5" and body["amount_received"] == "0"
    assert body["address"] == parse_xpub(TEST_XPUB).address(0)
    assert body["payment_uri"] == (
        "ethereum:0xdAC17F958D2ee523a2206206994597C13D831ec7@1/transfer"
        f"?address={body['address']}&uint256=12500000"
    )
    assert body["checkout_url"] == f"https://pay.example.com/pay/{body['id']}"
    assert body["confirmations_required"] == 12
    assert body["metadata"] == {"cart": [1, 2]} and body["order_id"] == "A-1"
    assert body["payments"] == []


async def test_native_invoice_uses_value_uri_and_default_expiry(
    client: Client, merchant: Merchant
) -> None:
    body = await (
        await create(client, merchant, {"network": "bsc", "asset": "BNB", "amount": "0.5"})
    ).json()
    assert body["payment_uri"] == f"ethereum:{body['address']}@56?value=500000000000000000"
    assert body["confirmations_required"] == 15


async def test_each_invoice_gets_the_next_index(client: Client, merchant: Merchant) -> None:
    addresses = [
        (await (await create(client, merchant, USDT_ORDER)).json())["address"] for _ in range(3)
    ]
    assert addresses == [parse_xpub(TEST_XPUB).address(i) for i in range(3)]


async def test_concurrent_creates_never_share_an_address(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    responses = await asyncio.gather(*(create(client, merchant, USDT_ORDER) for _ in range(64)))
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {201}
    assert len({b["address"] for b in bodies}) == 64
    assert await count(gateway, "invoices") == 64
    assert set(
        await gateway.db.read(
            lambda c: [r[0] for r in c.execute("SELECT address_index FROM invoices").fetchall()]
        )
    ) == set(range(64))


async def test_invoice_and_its_created_event_commit_together(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    body = await (await create(client, merchant, USDT_ORDER)).json()
    events = await gateway.db.read_sql(
        lambda c: c.execute(
            "SELECT type, payload::VARCHAR FROM events WHERE invoice_id = ?", [body["id"]]
        ).fetchall()
    )
    assert [e[0] for e in events] == ["invoice.created"]
    assert body["id"] in events[0][1]


async def test_get_returns_the_same_object(client: Client, merchant: Merchant) -> None:
    created = await (await create(client, merchant, USDT_ORDER)).json()
    fetched = await client.get(f"/v1/invoices/{created['id']}", headers=merchant.headers)
    assert fetched.status == 200
    assert await fetched.json() == created


async def test_list_filters_and_paginates_newest_first(client: Client, merchant: Merchant) -> None:
    ids = []
    for i in range(5):
        body = await (
            await create(client, merchant, {**USDT_ORDER, "order_id": f"o{i % 2}"})
        ).json()
        ids.append(body["id"])
    page1 = await (await client.get("/v1/invoices?limit=2", headers=merchant.headers)).json()
    assert [i["id"] for i in page1["data"]] == ids[::-1][:2] and page1["has_more"] is True
    after = page1["data"][-1]["id"]
    page2 = await (
        await client.get(f"/v1/invoices?limit=10&starting_after={after}", headers=merchant.headers)
    ).json()
    assert [i["id"] for i in page2["data"]] == ids[::-1][2:] and page2["has_more"] is False
    by_order = await (await client.get("/v1/invoices?order_id=o1", headers=merchant.headers)).json()
    assert {i["id"] for i in by_order["data"]} == {ids[1], ids[3]}
    by_status = await (
        await client.get("/v1/invoices?status=paid", headers=merchant.headers)
    ).json()
    assert by_status["data"] == []


async def test_another_stores_objects_answer_404(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    other = await make_merchant(gateway, "other", OTHER_XPUB)
    created = await (await create(client, merchant, USDT_ORDER)).json()
    response = await client.get(f"/v1/invoices/{created['id']}", headers=other.headers)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    listing = await (await client.get("/v1/invoices", headers=other.headers)).json()
    assert listing["data"] == []
    cursor = await client.get(f"/v1/invoices?starting_after={created['id']}", headers=other.headers)
    assert cursor.status == 400


async def test_missing_unknown_and_revoked_keys_answer_401(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    assert (await client.get("/v1/store")).status == 401
    assert (
        await client.get("/v1/store", headers={"Authorization": "Bearer cpk_nope"})
    ).status == 401
    assert (await client.get("/v1/store", headers={"Authorization": merchant.key})).status == 401
    second = await gateway.stores.create_key(merchant.store_id)
    key_id = next(k for k, h in gateway.stores._key_ids.items() if h and k != second.key_id)
    await gateway.stores.revoke_key(key_id)
    assert (await client.get("/v1/store", headers=merchant.headers)).status == 401
    ok = await client.get("/v1/store", headers={"Authorization": f"Bearer {second.secret}"})
    assert ok.status == 200


async def test_store_endpoint_shows_the_keys_store(client: Client, merchant: Merchant) -> None:
    body = await (await client.get("/v1/store", headers=merchant.headers)).json()
    assert body["id"] == merchant.store_id and body["evm_xpub"] == TEST_XPUB
    assert [a["symbol"] for a in body["networks"]["bsc"]["assets"]] == ["BNB", "USDT"]


async def test_idempotency_key_replays_first_response(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    first = await create(client, merchant, USDT_ORDER, **{"Idempotency-Key": "k1"})
    again = await create(client, merchant, USDT_ORDER, **{"Idempotency-Key": "k1"})
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert await count(gateway, "invoices") == 1


async def test_idempotency_key_with_another_body_is_409(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    await create(client, merchant, USDT_ORDER, **{"Idempotency-Key": "k2"})
    other = await create(
        client, merchant, {**USDT_ORDER, "amount": "13"}, **{"Idempotency-Key": "k2"}
    )
    assert other.status == 409
    assert (await other.json())["error"]["code"] == "idempotency_key_reused"
    assert await count(gateway, "invoices") == 1


async def test_concurrent_requests_with_one_key_create_one_invoice(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    responses = await asyncio.gather(
        *(create(client, merchant, USDT_ORDER, **{"Idempotency-Key": "same"}) for _ in range(10))
    )
    assert len({(await r.json())["id"] for r in responses}) == 1
    assert await count(gateway, "invoices") == 1


async def test_idempotency_keys_are_per_store(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    other = await make_merchant(gateway, "other", OTHER_XPUB)
    a = await (await create(client, merchant, USDT_ORDER, **{"Idempotency-Key": "shared"})).json()
    b = await (await create(client, other, USDT_ORDER, **{"Idempotency-Key": "shared"})).json()
    assert a["id"] != b["id"]


async def test_restart_rebuilds_keys_indexes_and_idempotency(
    config_path: Any, tmp_path: Any
) -> None:
    from aiohttp.test_utils import TestServer

    from api.app import build_app
    from indexer.config import load_settings

    first = Gateway(load_settings(config_path, env={}))
    first.open()
    merchant = await make_merchant(first)
    async with TestClient(TestServer(build_app(first))) as c1:
        before = await (await create(c1, merchant, USDT_ORDER, **{"Idempotency-Key": "r"})).json()
    await first.close()

    second = Gateway(load_settings(config_path, env={}))
    second.open()
    try:
        async with TestClient(TestServer(build_app(second))) as c2:
            replay = await (
                await create(c2, merchant, USDT_ORDER, **{"Idempotency-Key": "r"})
            ).json()
            fresh = await (await create(c2, merchant, USDT_ORDER)).json()
        assert replay == before
        assert fresh["address"] == parse_xpub(TEST_XPUB).address(1)
        assert before["address"] in second.matcher and fresh["address"] in second.matcher
    finally:
        await second.close()


async def test_pre_derived_addresses_match_derivation_across_pool_refills(
    gateway: Gateway, merchant: Merchant
) -> None:
    from indexer.services.invoices import parse_new_invoice

    store = gateway.stores.stores[merchant.store_id]
    command = parse_new_invoice(USDT_ORDER, gateway.settings)
    replies = []
    for _ in range(10):  # bursts of 64 overtake the refill thread now and then
        replies += await asyncio.gather(
            *(gateway.invoices.create(store, command, None, "h") for _ in range(64))
        )
    key = parse_xpub(TEST_XPUB)
    rows = await gateway.db.read_sql(
        lambda c: c.execute("SELECT address_index, address FROM invoices").fetchall()
    )
    assert len(rows) == 640
    assert all(address == key.address(index) for index, address in rows)
    assert {index for index, _ in rows} == set(range(640))


async def test_a_uint256_amount_is_stored_and_shown_to_the_last_wei(
    client: Client, merchant: Merchant, gateway: Gateway
) -> None:
    # given the largest amount a uint256 holds, in ETH with 18 decimals
    wei = 2**256 - 1
    amount = f"{wei // 10**18}.{wei % 10**18:018d}"

    # when an invoice asks for it (its row goes in through the group commit's appender)
    response = await create(
        client, merchant, {"network": "ethereum", "asset": "ETH", "amount": amount}
    )
    body = await response.json()
    assert response.status == 201, body

    # then the API, the stored row and the payment URI carry it exactly
    assert body["amount"] == amount
    fetched = await (
        await client.get(f"/v1/invoices/{body['id']}", headers=merchant.headers)
    ).json()
    assert fetched["amount"] == amount and fetched["payment_uri"].endswith(f"?value={wei}")
    row = await gateway.db.read_sql(
        lambda c: c.execute(
            "SELECT amount::VARCHAR FROM invoices WHERE id = ?", [body["id"]]
        ).fetchone()
    )
    assert row == (str(wei),)
