"""Fiat-priced invoices on anvil: feeds of our own (8 and 18 decimals) read through the node."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address

from indexer.domain.money import format_amount
from tests.support.anvil import Anvil
from tests.support.fiat import (
    FiatChain,
    FiatGateway,
    deploy_fiat_chain,
    expected_units,
    feed_rate,
    fiat,
    open_fiat_gateway,
)
from tests.support.gateway import eventually

pytestmark = pytest.mark.anvil
__all__ = ["fiat"]  # the fixture


@pytest.mark.parametrize(
    ("asset", "price", "currency", "pairs", "decimals"),
    [
        pytest.param("ETH", "49.99", "USD", ["ETH/USD"], 18, id="native-eth-8-decimal-feed"),
        pytest.param("USDT", "49.99", "USD", ["USDT/USD"], 6, id="usdt-6-decimals"),
        pytest.param("DAI", "0.01", "USD", ["DAI/USD"], 18, id="token-18-decimals-18-feed"),
        pytest.param("ETH", "100", "EUR", ["ETH/USD", "EUR/USD"], 18, id="cross-eth-in-eur"),
        pytest.param("USDT", "7.5", "EUR", ["USDT/USD", "EUR/USD"], 6, id="cross-usdt-in-eur"),
    ],
)
async def test_fiat_prices_convert_exactly_rounding_up_and_lock_the_rate(
    fiat: FiatGateway, asset: str, price: str, currency: str, pairs: list[str], decimals: int
) -> None:
    # when a merchant prices an invoice in fiat
    status, body = await fiat.create(
        {"asset": asset, "price": {"amount": price, "currency": currency}}
    )
    # then the amount is the reference conversion, rounded up to the asset's smallest unit
    assert status == 201, body
    units = expected_units(price, [feed_rate(p) for p in pairs], decimals)
    assert body["amount"] == format_amount(units, decimals)
    quote = body["price"]
    assert (quote["amount"], quote["currency"]) == (price, currency)
    assert quote["source"] == ("cross" if len(pairs) == 2 else "feed")
    # and the feeds read are recorded: address, round and updatedAt
    legs = quote["legs"]
    assert [leg["pair"] for leg in legs] == pairs
    for leg in legs:
        assert leg["feed"] == to_checksum_address(fiat.chain.feeds[leg["pair"]])
        assert leg["round_id"] == "1" and leg["updated_at"].endswith("Z")
    # and the stored invoice reads back the same, rate locked
    got = await fiat.client.get(f"/v1/invoices/{body['id']}", headers=fiat.merchant.headers)
    assert (await got.json())["price"] == quote


async def test_the_rate_is_locked_while_the_feed_moves(fiat: FiatGateway) -> None:
    _, first = await fiat.create({"asset": "ETH", "price": {"amount": "30", "currency": "USD"}})
    fiat.chain.set_answer("ETH/USD", 150000000000)  # ETH halves to 1500 USD
    _, second = await fiat.create({"asset": "ETH", "price": {"amount": "30", "currency": "USD"}})
    assert (first["amount"], second["amount"]) == ("0.009999588494334389", "0.02")
    got = await fiat.client.get(f"/v1/invoices/{first['id']}", headers=fiat.merchant.headers)
    assert (await got.json())["amount"] == "0.009999588494334389"


async def test_a_pegged_stablecoin_is_shown_as_a_peg(fiat: FiatGateway) -> None:
    status, body = await fiat.create(
        {"asset": "USDC", "price": {"amount": "49.99", "currency": "USD"}}
    )
    assert status == 201, body
    assert body["amount"] == "49.99"
    assert body["price"]["source"] == "peg"
    assert body["price"]["legs"] == [{"pair": "USDC/USD", "peg": True}]


def _stale(chain: FiatChain) -> None:
    now = chain.chain_time()
    chain.set_round("ETH/USD", 5, 300000000000, now - 3600 - 120 - 30, 5)


def _incomplete(chain: FiatChain) -> None:
    chain.set_round("ETH/USD", 5, 300000000000, chain.chain_time(), 4)


def _apart(chain: FiatChain) -> None:
    chain.set_round("EUR/USD", 5, 108000000, chain.chain_time() - 7200, 5)


@pytest.mark.parametrize(
    ("spoil", "currency", "reason"),
    [
        pytest.param(lambda c: c.set_answer("ETH/USD", 0), "USD", "not_positive", id="zero"),
        pytest.param(lambda c: c.set_answer("ETH/USD", -5), "USD", "not_positive", id="negative"),
        pytest.param(_stale, "USD", "stale", id="stale"),
        pytest.param(_incomplete, "USD", "incomplete_round", id="incomplete-round"),
        pytest.param(lambda c: c.set_reverts("ETH/USD"), "USD", "feed_unreadable", id="reverts"),
        pytest.param(_apart, "EUR", "feeds_apart", id="cross-feeds-apart"),
    ],
)
async def test_bad_feeds_refuse_with_503_and_store_nothing(
    fiat: FiatGateway, spoil: Callable[[FiatChain], None], currency: str, reason: str
) -> None:
    # given a feed gone bad
    spoil(fiat.chain)
    # when an invoice is priced through it
    status, body = await fiat.create(
        {"asset": "ETH", "price": {"amount": "10", "currency": currency}}
    )
    # then 503 price_unavailable with the reason, and no invoice
    assert status == 503, body
    assert (body["error"]["code"], body["error"]["reason"]) == ("price_unavailable", reason)
    assert await fiat.invoice_count() == 0
    # and an invoice in the asset's own units is still created
    status, _ = await fiat.create({"asset": "ETH", "amount": "0.01"})
    assert status == 201


async def test_a_node_behind_refuses_fiat_prices(anvil: Anvil, tmp_path: Path) -> None:
    # given a tail whose lag bound is 1 s, on a chain that mines no new block
    chain = deploy_fiat_chain(anvil)
    async for behind in open_fiat_gateway(chain, tmp_path, ready_lag=1):
        await eventually(_lag_above(behind, 1.0), 30)
        status, body = await behind.create(
            {"asset": "ETH", "price": {"amount": "10", "currency": "USD"}}
        )
        assert status == 503, body
        assert body["error"]["reason"] == "node_behind"
        assert await behind.invoice_count() == 0


async def test_without_a_tail_reporting_lag_no_fiat_price_is_given(
    anvil: Anvil, tmp_path: Path
) -> None:
    async for blind in open_fiat_gateway(deploy_fiat_chain(anvil), tmp_path, tail=False):
        status, body = await blind.create(
            {"asset": "ETH", "price": {"amount": "10", "currency": "USD"}}
        )
        assert (status, body["error"]["reason"]) == (503, "node_behind")


def _lag_above(opened: FiatGateway, seconds: float) -> Callable[[], Any]:
    async def check() -> bool:
        lag = opened.gateway.tail_lag("ethereum")
        return lag is not None and lag > seconds

    return check


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        pytest.param({"price": {"amount": "10", "currency": "GBP"}}, "price.currency",
                     "unknown_currency", id="unknown-currency"),
        pytest.param({"asset": "WBTC", "price": {"amount": "10", "currency": "USD"}},
                     "price.currency", "unknown_pair", id="unknown-pair"),
        pytest.param({"price": {"amount": "10.001", "currency": "USD"}}, "price.amount",
                     "too_many_decimals", id="three-decimals"),
        pytest.param({"price": {"amount": "-10", "currency": "USD"}}, "price.amount",
                     "invalid_price", id="negative"),
        pytest.param({"price": {"amount": "0.00", "currency": "USD"}}, "price.amount",
                     "price_not_positive", id="zero"),
        pytest.param({"price": {"amount": "10", "currency": "USD"}, "amount": "1"}, "price",
                     "amount_and_price", id="both"),
        pytest.param({}, "amount", "invalid_amount", id="neither"),
        pytest.param({"price": "10 USD"}, "price", "invalid_price", id="not-an-object"),
    ],
)  # fmt: skip
async def test_bad_price_input_is_a_400_naming_the_field(
    fiat: FiatGateway, body: dict[str, Any], field: str, code: str
) -> None:
    status, reply = await fiat.create({"asset": "ETH", **body})
    assert status == 400, reply
    assert (reply["error"]["field"], reply["error"]["code"]) == (field, code)
    assert await fiat.invoice_count() == 0


async def test_paid_within_tolerance_is_visible_in_api_events_and_checkout(
    fiat: FiatGateway,
) -> None:
    # given a 20 USD invoice in USDT (0.9999 USD each): 20.002001 USDT, 0.5% tolerance
    _, body = await fiat.create({"asset": "USDT", "price": {"amount": "20", "currency": "USD"}})
    units = expected_units("20", [Fraction(9999, 10000)], 6)
    assert body["amount"] == format_amount(units, 6) == "20.002001"
    assert body["paid_tolerance"] == "0.5%"
    # when exactly (1 - 0.5%) of it arrives, rounded up: ceil(20002001 * 0.995) = 19901991
    anvil, token = fiat.chain.anvil, fiat.chain.tokens["USDT"][0]
    anvil.token_mint(token, anvil.accounts[1], 19901991)
    anvil.token_transfer(token, anvil.accounts[1], body["address"].lower(), 19901991)
    anvil.mine(2)

    async def paid() -> bool:
        got = await fiat.client.get(f"/v1/invoices/{body['id']}", headers=fiat.merchant.headers)
        return (await got.json())["status"] == "paid"

    await eventually(paid, 30)
    # then the API, the paid event and the checkout all name the exception
    got = await (
        await fiat.client.get(f"/v1/invoices/{body['id']}", headers=fiat.merchant.headers)
    ).json()
    assert got["exception"] == "underpaid_within_tolerance"
    events = await fiat.client.get("/v1/events", headers=fiat.merchant.headers)
    paid_events = [e for e in (await events.json())["data"] if e["type"] == "invoice.paid"]
    assert paid_events[0]["data"]["invoice"]["exception"] == "underpaid_within_tolerance"
    status = await (await fiat.client.get(f"/pay/{body['id']}/status")).json()
    assert status["exception"] == "underpaid_within_tolerance"
    page = await (await fiat.client.get(f"/pay/{body['id']}")).text()
    assert "within the tolerance" in page and "20 USD" in page
