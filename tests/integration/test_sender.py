"""The webhook sender against a real loopback receiver: outcomes, guard, caps, signature."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from indexer import __version__
from indexer.domain.signing import verify_signature
from indexer.webhook.sender import WebhookSender, build_headers
from tests.support.receiver import Receiver

SECRET = "whsec_integration"
BODY = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {}}).encode()


def headers_now() -> dict[str, str]:
    return build_headers("evt_1", BODY, SECRET, int(time.time()))


@pytest_asyncio.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    """A sender that may reach the loopback receiver, with a short timeout for speed."""
    client = WebhookSender(allow_private=True, timeout=1.0)
    yield client
    await client.close()


@pytest_asyncio.fixture
async def guarded_sender() -> AsyncIterator[WebhookSender]:
    """A sender with production rules: https only, no private targets."""
    client = WebhookSender(allow_private=False, timeout=1.0)
    yield client
    await client.close()


async def test_2xx_is_delivered_with_a_verifiable_signature(
    sender: WebhookSender, receiver: Receiver
) -> None:
    result = await sender.send(receiver.url, BODY, headers_now())

    assert result.ok
    assert result.status_code == 200
    assert result.error is None
    assert result.response_excerpt == "ok"
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.body == BODY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"chainpay-webhooks/{__version__}"
    assert request.headers["Chainpay-Event-Id"] == "evt_1"
    assert request.headers["Accept-Encoding"] == "identity"
    assert verify_signature(request.body, request.headers["Chainpay-Signature"], SECRET)


async def test_every_2xx_status_counts_as_delivered(
    sender: WebhookSender, receiver: Receiver
) -> None:
    receiver.respond_with(status=204, body=b"")

    result = await sender.send(receiver.url, BODY, headers_now())

    assert result.ok
    assert result.status_code == 204


async def test_server_error_is_not_delivered(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.respond_with(status=500, body=b"boom")

    result = await sender.send(receiver.url, BODY, headers_now())

    assert not result.ok
    assert result.status_code == 500
    assert result.error == "http_status: 500"
    assert result.response_excerpt == "boom"


async def test_a_sequence_of_answers_is_followed_in_order(
    sender: WebhookSender, receiver: Receiver
) -> None:
    receiver.respond_sequence(503, 429)

    results = [await sender.send(receiver.url, BODY, headers_now()) for _ in range(3)]

    assert [r.status_code for r in results] == [503, 429, 200]
    assert [r.ok for r in results] == [False, False, True]


async def test_answer_slower_than_timeout_is_a_timeout(receiver: Receiver) -> None:
    receiver.respond_with(status=200, delay=2.0)
    client = WebhookSender(allow_private=True, timeout=0.3)
    try:
        result = await client.send(receiver.url, BODY, headers_now())
    finally:
        await client.close()

    assert not result.ok
    assert result.status_code is None
    assert result.error == "timeout"
    assert 250 <= result.latency_ms < 1500


async def test_refused_connection_is_reported_and_recovers_when_receiver_returns(
    sender: WebhookSender, receiver: Receiver
) -> None:
    await receiver.down()

    refused = await sender.send(receiver.url, BODY, headers_now())
    await receiver.up()
    delivered = await sender.send(receiver.url, BODY, headers_now())

    assert not refused.ok
    assert refused.error == "connection_refused"
    assert delivered.ok
    assert len(receiver.requests) == 1


async def test_redirect_is_not_followed(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.redirect_to(receiver.url_for("/elsewhere"), status=302)

    result = await sender.send(receiver.url, BODY, headers_now())

    assert not result.ok
    assert result.status_code == 302
    assert result.error == "redirect_not_followed: 302"
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_response_excerpt_is_capped(receiver: Receiver) -> None:
    receiver.respond_with(status=200, body=b"x" * 200_000)
    client = WebhookSender(allow_private=True, timeout=1.0, max_response_bytes=1000)
    try:
        result = await client.send(receiver.url, BODY, headers_now())
    finally:
        await client.close()

    assert result.ok
    assert result.response_excerpt == "x" * 1000


async def test_localhost_name_is_refused_at_connect_time_without_private_targets(
    guarded_sender: WebhookSender, receiver: Receiver
) -> None:
    url = f"https://localhost:{receiver.port}/hook"

    result = await guarded_sender.send(url, BODY, headers_now())

    assert not result.ok
    assert result.error in ("private_target: 127.0.0.1", "private_target: ::1")
    assert receiver.requests == []


async def test_localhost_name_is_allowed_with_private_targets(
    sender: WebhookSender, receiver: Receiver
) -> None:
    result = await sender.send(f"http://localhost:{receiver.port}/hook", BODY, headers_now())

    assert result.ok
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("127.0.0.1", id="v4-literal"),
        pytest.param("[::ffff:127.0.0.1]", id="v4-mapped-literal"),
    ],
)
async def test_literal_private_ip_is_refused_without_private_targets(
    guarded_sender: WebhookSender, receiver: Receiver, host: str
) -> None:
    result = await guarded_sender.send(f"https://{host}:{receiver.port}/hook", BODY, {})

    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("private_target: ")
    assert receiver.requests == []


async def test_metadata_address_is_refused_even_with_private_targets(
    sender: WebhookSender,
) -> None:
    result = await sender.send("http://169.254.169.254/latest/meta-data/", BODY, {})

    assert result.error == "private_target: 169.254.169.254"


async def test_plain_http_is_refused_without_private_targets(
    guarded_sender: WebhookSender, receiver: Receiver
) -> None:
    result = await guarded_sender.send(receiver.url, BODY, headers_now())

    assert result.error == "https_required"
    assert receiver.requests == []


async def test_tls_failure_is_reported(sender: WebhookSender, receiver: Receiver) -> None:
    # The receiver speaks plain HTTP, so the TLS handshake cannot succeed.
    result = await sender.send(f"https://127.0.0.1:{receiver.port}/hook", BODY, {})

    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("tls_error")


async def test_unresolvable_name_is_a_dns_error(sender: WebhookSender) -> None:
    result = await sender.send("https://no-such-host.invalid/hook", BODY, {})

    assert not result.ok
    assert result.error == "dns_error"


async def test_error_never_contains_the_query_string_or_header_values(
    sender: WebhookSender, receiver: Receiver
) -> None:
    await receiver.down()
    headers = headers_now()

    result = await sender.send(receiver.url + "?token=s3cret", BODY, headers)

    assert result.error is not None
    assert "s3cret" not in result.error
    assert all(value not in result.error for value in headers.values())


async def test_send_records_the_delivery_duration_metric(
    sender: WebhookSender, receiver: Receiver
) -> None:
    name = "chainpay_webhook_delivery_duration_seconds_count"
    before = REGISTRY.get_sample_value(name) or 0.0

    await sender.send(receiver.url, BODY, headers_now())
    await receiver.down()
    await sender.send(receiver.url, BODY, headers_now())

    assert REGISTRY.get_sample_value(name) == before + 2


async def test_sender_can_be_closed_and_used_again(receiver: Receiver) -> None:
    client = WebhookSender(allow_private=True, timeout=1.0)
    first = await client.send(receiver.url, BODY, headers_now())
    await client.close()
    second = await client.send(receiver.url, BODY, headers_now())
    await client.close()

    assert first.ok and second.ok
