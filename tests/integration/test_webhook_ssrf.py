"""SSRF: private targets are refused at registration, at connect time, and through redirects."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from indexer.webhook.target import is_forbidden_ip
from tests.support.gateway import eventually
from tests.support.receiver import Receiver
from tests.support.webhooks import HarnessFactory


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://192.168.1.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "https://2130706433/hook",
    ],
    ids=["loopback", "10/8", "192.168/16", "ipv6-loopback", "metadata", "localhost", "decimal"],
)
async def test_literal_private_address_is_refused_at_registration(
    webhook_harness: HarnessFactory, url: str
) -> None:
    h = await webhook_harness(allow_private=False, start=False)

    status, body = await h.call("POST", "/v1/webhook-endpoints", {"url": url})

    assert status == 400
    assert body["error"]["field"] == "url"
    assert body["error"]["code"] in ("private_target", "invalid_url")
    assert await h.query("SELECT count(*) FROM webhook_endpoints") == [(0,)]


async def test_plain_http_is_refused_unless_private_targets_are_allowed(
    webhook_harness: HarnessFactory,
) -> None:
    h = await webhook_harness(allow_private=False, start=False)

    status, body = await h.call("POST", "/v1/webhook-endpoints", {"url": "http://shop.example"})

    assert status == 400
    assert body["error"]["code"] == "https_required"


async def test_hostname_resolving_to_a_private_address_is_refused_at_delivery(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    host = socket.gethostname()  # /etc/hosts maps this machine's name to a local address
    address = socket.getaddrinfo(host, None)[0][4][0]
    assert is_forbidden_ip(ipaddress.ip_address(address)), f"{host} -> {address}"
    h = await webhook_harness(allow_private=False)
    status, endpoint = await h.call(
        "POST", "/v1/webhook-endpoints", {"url": f"https://{host}:{receiver.port}/hook"}
    )
    assert status == 201, endpoint  # the name itself says nothing; its addresses do

    await h.insert_events(1)

    async def refused() -> bool:
        delivery = ((await h.deliveries(endpoint["id"])) or [{}])[0]
        return bool(delivery.get("attempts"))

    await eventually(refused)
    [delivery] = await h.deliveries(endpoint["id"])
    assert delivery["attempts"][0]["error"].startswith("private_target: ")
    assert delivery["status"] == "pending"  # retried later, like any failure
    assert receiver.requests == []


async def test_redirect_to_a_private_address_is_not_followed(
    webhook_harness: HarnessFactory, receiver: Receiver
) -> None:
    inner = Receiver()
    await inner.up()
    try:
        h = await webhook_harness()
        endpoint = await h.endpoint(receiver.url)
        receiver.redirect_to(inner.url)  # private (loopback) and reachable: never followed

        await h.insert_events(1)

        await receiver.wait_for_requests(1)

        async def logged() -> bool:
            delivery = ((await h.deliveries(endpoint["id"])) or [{}])[0]
            return bool(delivery.get("attempts"))

        await eventually(logged)
        [delivery] = await h.deliveries(endpoint["id"])
        assert delivery["attempts"][0]["error"] == "redirect_not_followed: 302"
        assert delivery["attempts"][0]["status_code"] == 302
        # A followed redirect would have reached `inner` before the attempt was recorded.
        assert inner.requests == []
    finally:
        await inner.down()
