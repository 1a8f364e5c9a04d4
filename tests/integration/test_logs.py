"""JSON logs of a real `chainpay serve`: stable fields, ids to follow an invoice, no secrets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.api import TEST_XPUB, write_config
from tests.support.process import free_port, run, start_serve, stop
from tests.support.receiver import Receiver

JSON_LOGS = """
[log]
format = "json"
level = "info"

[webhooks]
allow_private_targets = true
"""
ALWAYS = {"ts", "level", "logger", "message"}
LEVELS = {"debug", "info", "warning", "error", "critical"}


async def serve_with_traffic(tmp_path: Path, receiver: Receiver) -> dict[str, Any]:
    """Store and key (CLI), webhook endpoint, invoices (one bad key, one replay); returns ids."""
    config = write_config(tmp_path, JSON_LOGS)
    port = free_port()
    log = tmp_path / "serve.log"
    server = await asyncio.to_thread(start_serve, config, port, "--migrate", log=log)
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}
    try:
        created = await asyncio.to_thread(
            run, "--config", str(config), "store", "create", "--name", "S", "--evm-xpub",
            TEST_XPUB, "--json",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        key, store_id = (json.loads(created.stdout)[k] for k in ("api_key", "store_id"))
        auth = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(base) as http:
            async with http.post(
                "/v1/webhook-endpoints", json={"url": receiver.url}, headers=auth
            ) as response:
                assert response.status == 201, await response.text()
                endpoint = await response.json()
            headers = {**auth, "X-Request-Id": "req_follow_me", "Idempotency-Key": "order-1"}
            body = {"network": "ethereum", "asset": "USDT", "amount": "3", "order_id": "o-1"}
            for _ in range(2):  # the second is an idempotent replay
                async with http.post("/v1/invoices", json=body, headers=headers) as response:
                    assert response.status == 201, await response.text()
                    invoice = await response.json()
            wrong = {"Authorization": "Bearer cpk_NotARealKeyButLooksLikeOne123456"}
            async with http.get("/v1/invoices", headers=wrong) as response:
                assert response.status == 401
        deadline = asyncio.get_running_loop().time() + 15
        while not any(invoice["id"] in r.body.decode() for r in receiver.requests):
            assert asyncio.get_running_loop().time() < deadline, "no webhook delivery arrived"
            await asyncio.sleep(0.05)
        seen.update(key=key, store_id=store_id, endpoint=endpoint, invoice=invoice)
    finally:
        await asyncio.to_thread(stop, server)
    seen["log"] = log.read_text(encoding="utf-8")
    return seen


async def test_json_logs_follow_an_invoice_and_never_show_a_secret(
    tmp_path: Path, receiver: Receiver
) -> None:
    seen = await serve_with_traffic(tmp_path, receiver)
    text = seen["log"]
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]

    # Every line is one JSON object with the stable fields and a known level.
    assert lines and all(ALWAYS <= set(line) and line["level"] in LEVELS for line in lines)
    # The API request, by the id the caller sent, then the invoice it created, by its ids.
    access = [
        line
        for line in lines
        if line.get("request_id") == "req_follow_me" and line["logger"] == "chainpay.access"
    ]
    assert [(a["route"], a["status"]) for a in access] == [("/v1/invoices", 201)] * 2
    created = [line for line in lines if line.get("invoice_id") == seen["invoice"]["id"]]
    assert created, "no log line names the invoice"
    assert created[0]["request_id"] == "req_follow_me"
    assert created[0]["store_id"] == seen["store_id"]
    assert created[0]["network"] == "ethereum"
    assert [line["message"].split()[-1] for line in created[:2]] == ["created", "replayed"]
    # The webhook the merchant got names the same invoice, under an event id.
    delivered = [
        json.loads(r.body) for r in receiver.requests if seen["invoice"]["id"] in r.body.decode()
    ]
    assert delivered[0]["id"].startswith("evt_")
    # No secret anywhere: API key, the wrong key that was tried, the webhook signing secret.
    secret = seen["endpoint"]["secret"]
    assert secret.startswith("whsec_")
    for needle in (seen["key"], "cpk_NotARealKeyButLooksLikeOne123456", secret, secret[6:]):
        assert needle not in text
    assert "cpk_" not in text.replace("cpk_[redacted]", "")
