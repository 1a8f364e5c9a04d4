"""The in-process `[hooks] on_event` callable: called after commit, retried, logged, loaded at start."""

from __future__ import annotations

import pytest

from indexer.config import ConfigError
from indexer.workers.hook import load_hook
from tests.support import event_hook
from tests.support.gateway import eventually
from tests.support.webhooks import HarnessFactory


async def test_hook_is_called_with_each_committed_event(webhook_harness: HarnessFactory) -> None:
    event_hook.reset()
    h = await webhook_harness(hook="tests.support.event_hook:on_event")

    invoice = await h.create_invoice()
    ids = await h.insert_events(2)

    async def called() -> bool:
        return len(event_hook.calls) >= 3

    await eventually(called)
    assert event_hook.calls[0]["data"]["invoice"]["id"] == invoice["id"]
    assert sorted(e["id"] for e in event_hook.calls[1:]) == sorted(ids)


async def test_failing_hook_is_retried_and_its_failures_are_in_the_delivery_log(
    webhook_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    event_hook.reset(failures=2)
    h = await webhook_harness(hook="tests.support.event_hook:on_event")

    [event_id] = await h.insert_events(1)

    async def delivered() -> bool:
        _, log = await h.call("GET", f"/v1/events/{event_id}/deliveries")
        return bool(log["data"]) and log["data"][0]["status"] == "delivered"

    await eventually(delivered)
    assert [e["id"] for e in event_hook.calls] == [event_id] * 3
    _, log = await h.call("GET", f"/v1/events/{event_id}/deliveries")
    [delivery] = log["data"]
    assert delivery["endpoint_id"] == "hook"
    errors = [a["error"] for a in delivery["attempts"]]
    assert errors == [
        "exception: RuntimeError: the merchant's database is down",
        "exception: RuntimeError: the merchant's database is down",
        None,
    ]
    assert "on_event hook failed for event " + event_id in caplog.text


async def test_async_hook_is_awaited(webhook_harness: HarnessFactory) -> None:
    event_hook.reset()
    h = await webhook_harness(hook="tests.support.event_hook:on_event_async")

    [event_id] = await h.insert_events(1)

    async def called() -> bool:
        return [e["id"] for e in event_hook.async_calls] == [event_id]

    await eventually(called)


@pytest.mark.parametrize(
    "path",
    [
        "tests.support.no_such_module:on_event",
        "tests.support.event_hook:missing",
        "tests.support.event_hook:not_callable",
        "tests.support.event_hook",
    ],
    ids=["module", "attribute", "not-callable", "no-colon"],
)
def test_bad_hook_path_is_a_config_error_naming_the_key(path: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_hook(path, "chainpay.toml")

    assert raised.value.key == "hooks.on_event"
    assert "chainpay.toml: hooks.on_event:" in str(raised.value)
