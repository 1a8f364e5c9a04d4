"""The real app on a loopback port, in its own thread and event loop, for synchronous tests
(hypothesis, schemathesis) and raw-socket requests. No chain workers: the API and the store."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiohttp import web

from api.app import ApiRunner, build_app
from api.bootstrap import Gateway
from indexer.config import load_settings
from tests.support.api import Merchant, make_merchant


async def invoice_count(gateway: Gateway) -> int:
    row = await gateway.db.read_sql(lambda c: c.execute("SELECT count(*) FROM invoices").fetchone())
    return int(row[0]) if row else 0


class LiveServer:
    """The real app on a loopback port, in its own thread and event loop (hypothesis is sync)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.merchant: Merchant | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self.gateway = Gateway(load_settings(self.config, env={}))
        self.gateway.open()
        self.merchant = await make_merchant(self.gateway)
        self.runner = ApiRunner(build_app(self.gateway))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def count(self) -> int:
        async def read() -> int:
            return await invoice_count(self.gateway)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(10)

    def stop(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.gateway.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
