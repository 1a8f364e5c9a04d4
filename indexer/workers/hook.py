"""The in-process event hook: `[hooks] on_event = "pkg.module:function"`, loaded at start.

The dispatcher calls it like a webhook endpoint (reserved endpoint id `hook`): with the event
payload as a dict, after the event committed, at least once, on the same retry schedule. A
hook that raises or overruns the webhook timeout counts as a failed attempt.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from indexer import metrics
from indexer.config import ConfigError
from indexer.webhook.sender import AttemptResult

log = logging.getLogger(__name__)
CONFIG_KEY = "hooks.on_event"
Hook = Callable[[dict[str, Any]], Any]


def load_hook(path: str | None, source: str = "config") -> Hook | None:
    """Import `package.module:attribute`; a wrong path is a ConfigError naming hooks.on_event."""
    if path is None:
        return None
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(source, CONFIG_KEY, f'expected "package.module:function", got {path!r}')
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import error or whatever the module raises at import
        raise ConfigError(
            source, CONFIG_KEY, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(source, CONFIG_KEY, f"{module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(source, CONFIG_KEY, f"{path!r} is not callable")
    return target  # type: ignore[no-any-return]


async def call_hook(hook: Hook, event_id: str, body: bytes, seconds: float) -> AttemptResult:
    """One call of the hook; exceptions and overruns become a failed AttemptResult."""
    started = time.perf_counter()
    error: str | None = None
    try:
        payload = json.loads(body)
        async with asyncio.timeout(seconds):
            if inspect.iscoroutinefunction(hook):
                await hook(payload)
            else:
                # A sync hook runs in a thread; on timeout it is abandoned, not killed.
                result = await asyncio.to_thread(hook, payload)
                if inspect.isawaitable(result):
                    await result
    except TimeoutError:
        error = "timeout"
    except Exception as exc:
        error = f"exception: {type(exc).__name__}: {exc}"[:500]
    latency_ms = round((time.perf_counter() - started) * 1000)
    metrics.HOOK_CALLS.labels("ok" if error is None else "error").inc()
    if error is not None:
        log.warning(
            "on_event hook failed for event %s: %s", event_id, error, extra={"event_id": event_id}
        )
    return AttemptResult(
        ok=error is None, status_code=None, latency_ms=latency_ms, error=error, response_excerpt=""
    )
