"""What every `chainpay` subcommand shares: the usage error, settings from `--config`, and
the call to a running gateway's admin socket.

Subcommand modules (api.copies, api.dev) import this, never api.cli: api.cli imports them to
build its parser, and `python -m api.cli` runs api.cli as `__main__`, so an import of api.cli
from a subcommand would load a second copy of it with its own, empty, command table.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from api import admin
from indexer.config import Settings, load_settings
from indexer.domain.errors import ChainpayError
from indexer.store.errors import StoreError

Handler = Callable[[argparse.Namespace], int]  # a subcommand: parsed arguments → exit code


class UsageError(ChainpayError):
    """Bad input on the command line: exit 2."""


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def call_admin(
    settings: Settings, path: str, payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST to the admin socket of the gateway that holds `settings.database`."""
    try:
        status, body = asyncio.run(admin.call(settings.database, path, payload))
    except OSError:
        raise StoreError(
            f"{settings.database} is locked by another process and no chainpay admin socket answers"
        ) from None
    if status >= 400:
        error = body.get("error", {})
        raise UsageError(error.get("message", f"failed with HTTP {status}"))
    return body
