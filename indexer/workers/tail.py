"""The chain tail: one worker per network following the node from a durable cursor.

It checks the node's chain id once, then loops: ask the head, process every block from the
cursor up to it in ranges (never skipping one), and sleep until the websocket announces a new
head or `poll_interval` passes (a safety net for heads missed while the socket was down). Any
node or store failure is retried with capped backoff, forever; `status` and the metrics say
which network is behind and why. A wrong chain id is a configuration error and is raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Protocol

from indexer import metrics
from indexer.chain.fetch import BlockFetcher
from indexer.chain.reader import ChainReader
from indexer.chain.rpc import JsonRpcClient, reconnecting_heads
from indexer.config import ConfigError, Settings
from indexer.domain.clock import Clock
from indexer.domain.network import Network
from indexer.matcher import AddressMatcher
from indexer.services.blocks import BlockService, ReorgDetected
from indexer.store import chain as queries
from indexer.store.database import Database

log = logging.getLogger(__name__)


class StatusSink(Protocol):
    """Where the tail reports its state (the gateway's `NetworkStatus` for /readyz)."""

    connected: bool
    head: int | None
    processed: int | None
    lag_seconds: float | None
    error: str | None


class TailWorker:
    """Follows one network; `run()` never returns except by cancellation or a ConfigError."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        network: Network,
        matcher: AddressMatcher,
        clock: Clock,
        status: StatusSink,
        *,
        range_size: int = 500,
        poll_interval: float = 2.0,
        rpc_timeout: float = 10.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.db = db
        self.settings = settings
        self.network = network
        self.matcher = matcher
        self.clock = clock
        self.status = status
        self.range_size = range_size
        self.poll_interval = poll_interval
        self.rpc_timeout = rpc_timeout
        self.max_backoff = max_backoff
        self._chain_checked = False
        self._wake = asyncio.Event()
        self._last_block_time: float | None = None

    async def run(self) -> None:
        delay = 0.25
        while True:
            try:
                await self._follow()
            except (asyncio.CancelledError, ConfigError):
                raise
            except Exception as exc:  # node down, timeouts, refusals, a store hiccup: retry
                self.status.connected = False
                self.status.error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning(
                    "%s: tail failed (%s); retrying in %.1fs",
                    self.network.name, self.status.error, delay,
                    extra={"network": self.network.name},
                )  # fmt: skip
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.max_backoff)
            else:
                delay = 0.25

    async def _follow(self) -> None:
        client = JsonRpcClient(self.network.rpc_url, self.network.name, timeout=self.rpc_timeout)
        reader = ChainReader(client)
        listener: asyncio.Task[None] | None = None
        try:
            await self._check_chain_id(reader)
            service = self._service(reader)
            cursor = await service.load_cursor(start_below_head=self.network.confirmations)
            self.status.processed = cursor.number
            metrics.PROCESSED_HEIGHT.labels(self.network.name).set(cursor.number)
            listener = asyncio.create_task(self._listen(client))
            while True:
                head = await reader.head_number()
                self._saw_head(head)
                await self._catch_up(service, head)
                self.status.connected, self.status.error = True, None
                try:
                    # not wait_for: on 3.11 it can swallow a cancel that races the wake-up,
                    # and the tail would then never stop
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            await client.close()

    def _service(self, reader: ChainReader) -> BlockService:
        name, native = self.network.name, self.network.native.symbol

        async def open_native_addresses() -> list[str]:
            now = self.clock.now()
            return await self.db.read(lambda c: queries.open_native_addresses(c, name, native, now))

        fetcher = BlockFetcher(reader, self.network, self.matcher.screen, open_native_addresses)
        return BlockService(self.db, self.settings, self.network, reader, fetcher, self.clock)

    async def _check_chain_id(self, reader: ChainReader) -> None:
        if self._chain_checked:
            return
        chain_id = await reader.chain_id()
        if chain_id != self.network.chain_id:
            raise ConfigError(
                self.settings.source,
                f"networks.{self.network.name}.chain_id",
                f"node reports chain id {chain_id}, not {self.network.chain_id}",
            )
        self._chain_checked = True

    async def _listen(self, client: JsonRpcClient) -> None:
        async for head in reconnecting_heads(client, max_delay=self.max_backoff):
            metrics.LAST_HEAD_SEEN.labels(self.network.name).set(time.time())
            number = head.get("number")
            if isinstance(number, str):
                self._saw_head(int(number, 16))
            self._wake.set()

    def _saw_head(self, head: int) -> None:
        if self.status.head is None or head > self.status.head:
            self.status.head = head
            metrics.NODE_HEAD.labels(self.network.name).set(head)
        self._publish_lag()

    async def _catch_up(self, service: BlockService, head: int) -> None:
        assert service.cursor is not None
        if head < service.cursor.number:
            log.warning(
                "%s: node head %d is behind the processed block %d (node resyncing?)",
                self.network.name, head, service.cursor.number,
            )  # fmt: skip
            return
        while service.cursor.number < head:
            first = service.cursor.number + 1
            last = min(head, first + self.range_size - 1)
            try:
                processed = await service.process(first, last)
            except ReorgDetected:
                await service.rewind()
                continue
            self.status.processed = processed
            self.status.connected, self.status.error = True, None
            self._published_block(service)

    def _published_block(self, service: BlockService) -> None:
        self._last_block_time = service.last_block_time
        self._publish_lag()

    def _publish_lag(self) -> None:
        name = self.network.name
        if self.status.head is not None and self.status.processed is not None:
            metrics.LAG_BLOCKS.labels(name).set(max(self.status.head - self.status.processed, 0))
        if self._last_block_time is not None:
            lag = max(time.time() - self._last_block_time, 0.0)
            self.status.lag_seconds = round(lag, 3)
            metrics.LAG_SECONDS.labels(name).set(lag)
