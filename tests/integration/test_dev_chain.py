"""`chainpay dev`'s chain side on a real anvil: the test USDT deployed and `dev pay` sent
through web3.py, checked with plain JSON-RPC reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.dev import FAUCET_USDT, DevError, DevState, pay_invoice, prepare_chain
from tests.support.anvil import Anvil, calldata
from tests.support.api import Merchant

Client = TestClient[Any, Any]


def token_balance(anvil: Anvil, token: str, holder: str) -> int:
    data = calldata("balanceOf(address)", holder)
    return int(anvil.rpc("eth_call", {"to": token, "data": data}, "latest"), 16)


async def test_prepare_chain_deploys_the_test_usdt_and_funds_every_customer(
    anvil: Anvil,
) -> None:
    token, reason = await prepare_chain(anvil.http_url, None, False, None)

    assert reason is None
    assert anvil.rpc("eth_getCode", token, "latest") not in ("0x", "0x0")
    assert all(token_balance(anvil, token, a) == FAUCET_USDT for a in anvil.accounts[1:])


async def test_prepare_chain_keeps_a_token_that_exists_and_spots_a_replaced_chain(
    anvil: Anvil,
) -> None:
    token, _ = await prepare_chain(anvil.http_url, None, False, None)
    head = anvil.rpc("eth_getBlockByNumber", "latest", False)

    same = await prepare_chain(anvil.http_url, token, True, (int(head["number"], 16), head["hash"]))
    other = await prepare_chain(
        anvil.http_url, token, True, (int(head["number"], 16), "0x" + "1" * 64)
    )
    missing = await prepare_chain(anvil.http_url, "0x" + "2" * 40, True, None)

    assert same == (token, None)
    assert other[0] == token and other[1] is not None and "not on the dev chain" in other[1]
    assert missing[0] != token and missing[1] is not None and "from scratch" in missing[1]


async def test_dev_pay_sends_what_is_due_in_the_test_usdt(
    anvil: Anvil, client: Client, merchant: Merchant, tmp_path: Path
) -> None:
    token, _ = await prepare_chain(anvil.http_url, None, False, None)
    body = {"network": "ethereum", "asset": "USDT", "amount": "12.5"}
    invoice = await (await client.post("/v1/invoices", json=body, headers=merchant.headers)).json()
    state = DevState(
        gateway_url=str(client.make_url("")).rstrip("/"),
        anvil_url=anvil.http_url,
        token=token,
        api_key=merchant.key,
    )

    message = await pay_invoice(state, str(tmp_path), invoice["id"], None)

    assert token_balance(anvil, token, invoice["address"]) == 12_500_000
    assert f"Sent 12.5 USDT from {anvil.accounts[1]}".lower() in message.lower()


async def test_dev_pay_refuses_more_than_the_customer_holds(
    anvil: Anvil, client: Client, merchant: Merchant, tmp_path: Path
) -> None:
    token, _ = await prepare_chain(anvil.http_url, None, False, None)
    body = {"network": "ethereum", "asset": "USDT", "amount": "1"}
    invoice = await (await client.post("/v1/invoices", json=body, headers=merchant.headers)).json()
    state = DevState(
        str(client.make_url("")).rstrip("/"), anvil.http_url, token, None, merchant.key
    )

    with pytest.raises(DevError, match="refused") as refused:
        await pay_invoice(state, str(tmp_path), invoice["id"], str(FAUCET_USDT))  # 10^12 USDT

    assert refused.value.exit_code == 1
    assert token_balance(anvil, token, invoice["address"]) == 0
