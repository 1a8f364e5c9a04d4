"""An in-process `[hooks] on_event` target for tests: records calls, can fail on demand."""

from __future__ import annotations

import asyncio
from typing import Any

calls: list[dict[str, Any]] = []
failures_left = 0
async_calls: list[dict[str, Any]] = []


def reset(failures: int = 0) -> None:
    global failures_left
    calls.clear()
    async_calls.clear()
    failures_left = failures


def on_event(event: dict[str, Any]) -> None:
    """A sync hook (run in a thread): fails `failures_left` times, then records the event."""
    global failures_left
    calls.append(event)
    if failures_left > 0:
        failures_left -= 1
        raise RuntimeError("the merchant's database is down")


async def on_event_async(event: dict[str, Any]) -> None:
    await asyncio.sleep(0)
    async_calls.append(event)


not_callable = 42
