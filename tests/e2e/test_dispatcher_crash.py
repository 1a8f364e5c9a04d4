"""At least once across a crash: `chainpay serve` killed while a delivery is on the wire."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.support.process import free_port, http_json, run, start_serve, stop
from tests.support.receiver import Receiver
from tests.support.webhooks import xpub_for_seed

pytestmark = pytest.mark.slow


async def test_dispatcher_killed_mid_delivery_resends_the_event_after_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    port = free_port()
    config = tmp_path / "chainpay.toml"
    config.write_text(
        f'database = "{tmp_path / "chainpay.duckdb"}"\n'
        f'public_url = "http://127.0.0.1:{port}"\n'
        "[webhooks]\nallow_private_targets = true\ntimeout_seconds = 30\n"
    )
    created = await asyncio.to_thread(
        run, "--config", str(config), "store", "create", "--name", "shop",
        "--evm-xpub", xpub_for_seed(7), "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["api_key"]
    base = f"http://127.0.0.1:{port}"
    receiver.respond_with(200, delay=30.0)  # the answer never comes before the kill
    log = tmp_path / "serve.log"

    serve = await asyncio.to_thread(start_serve, config, port, log=log)
    try:
        status, endpoint = await asyncio.to_thread(
            http_json, "POST", f"{base}/v1/webhook-endpoints", {"url": receiver.url}, key
        )
        assert status == 201, endpoint
        status, ping = await asyncio.to_thread(
            http_json, "POST", f"{base}/v1/webhook-endpoints/{endpoint['id']}/test", None, key
        )
        assert status == 202, ping
        [first] = await receiver.wait_for_requests(1, within=10)
        serve.send_signal(signal.SIGKILL)
        await asyncio.to_thread(serve.wait)
    finally:
        if serve.poll() is None:
            serve.kill()
    receiver.respond_with(200)

    serve = await asyncio.to_thread(start_serve, config, port, log=log)
    try:
        first_again, second = await receiver.wait_for_requests(2, within=15)
        assert first_again is first
        assert second.headers["Chainpay-Event-Id"] == first.headers["Chainpay-Event-Id"]
        assert second.body == first.body

        async def delivered() -> list[dict[str, object]]:
            for _ in range(100):
                status, log_page = await asyncio.to_thread(
                    http_json, "GET",
                    f"{base}/v1/webhook-endpoints/{endpoint['id']}/deliveries", None, key,
                )  # fmt: skip
                assert status == 200
                if log_page["data"][0]["status"] == "delivered":
                    return list(log_page["data"])
                await asyncio.sleep(0.1)
            raise AssertionError("the delivery was not recorded as delivered")

        [delivery] = await delivered()
        assert delivery["event_id"] == ping["event_id"]
        # The attempt cut short by the kill was never recorded; the resend was.
        assert delivery["attempt_count"] == 1
        assert delivery["attempts"][0]["status_code"] == 200
    finally:
        await asyncio.to_thread(stop, serve)


def test_serve_with_an_unimportable_hook_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "chainpay.toml"
    config.write_text(
        f'database = "{tmp_path / "chainpay.duckdb"}"\n[hooks]\non_event = "nope.handlers:on_event"\n'
    )

    result = run("--config", str(config), "serve", "--port", str(free_port()), timeout=30)

    assert result.returncode == 2
    assert "hooks.on_event" in result.stderr
    assert "nope" in result.stderr
