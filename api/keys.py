"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from api.bootstrap import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
# What a handler adds to its request's single access-log line: a short note and id fields.
LOG_NOTE = web.RequestKey("log_note", tuple)
