"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from api.bootstrap import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
