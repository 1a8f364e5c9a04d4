"""The chain tail: one worker per network following the node from a durable cursor.

It checks the node's chain id once, waits while the node syncs before placing a first cursor,
then loops: ask the head, process every block from the cursor up to it in ranges (never
skipping one), and sleep until the websocket announces a new head or `poll_interval` passes (a
safety net for heads missed while the socket was down). Any node or store failure is retried
with capped backoff, forever, and the backoff starts over after any success. A wrong chain id is
a configuration error and is raised.

A tick independent of the node republishes the lag every `tick_interval`, so the lag keeps
growing while the node is down or silent: lag in seconds is wall time minus the timestamp of
the last processed block; lag in blocks is the node's head minus the processed block, or, while
the node is unreachable, syncing or has not announced a head for `ready_lag_seconds`, at least
that time divided by the network's `block_time` (an estimate, flagged as such).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from indexer import metrics
from indexer.chain.errors import RpcResponseError
from indexer.chain.fetch import BlockFetcher
from indexer.chain.reader import ChainReader
from indexer.chain.rpc import JsonRpcClient, reconnecting_heads
from indexer.config import ConfigError, Settings
from indexer.domain.clock import Clock
from indexer.domain.network import Network
from indexer.matcher import AddressMatcher
from indexer.services.blocks import BlockService, ReorgDetected
from indexer.store.port import Storage
from indexer.workers.lease import LeaseLost, Leases

log = logging.getLogger(__name__)

# A node whose head block is older than this is not followed from a first cursor: geth with
# no peers (or no consensus client) answers eth_syncing false with a head hours or years old.
STALE_HEAD_SECONDS = 600.0
_METHOD_NOT_FOUND = -32601

# Network states, as /readyz shows them; only "ok" is ready.
STARTING, SYNCING, UNREACHABLE, BEHIND, OK = "starting", "syncing", "unreachable", "behind", "ok"


class StatusSink(Protocol):
    """Where the tail reports its state (the gateway's `NetworkStatus` for /readyz)."""

    state: str
    connected: bool
    head: int | None
    processed: int | None
    lag_seconds: float | None
    lag_blocks: int | None
    lag_estimated: bool
    syncing: dict[str, int | None] | None
    error: str | None
    leader: str | None  # the process tailing the network (this one or another)


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """The node is not at the chain's tip yet: what it says about its progress."""

    current_block: int | None
    highest_block: int | None
    head_age_seconds: int | None = None  # set when the node said "not syncing" but is old

    def as_json(self) -> dict[str, int | None]:
        return {
            "current_block": self.current_block,
            "highest_block": self.highest_block,
            "head_age_seconds": self.head_age_seconds,
        }

    def describe(self) -> str:
        if self.head_age_seconds is not None:
            return f"its head block {self.current_block} is {self.head_age_seconds} s old"
        return f"eth_syncing reports block {self.current_block} of {self.highest_block}"


class Backoff:
    """Capped exponential delays between retries, back to the first after any success."""

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def failed(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.cap)
        return delay

    def succeeded(self) -> None:
        self._next = self.first


def parse_syncing(result: Any) -> SyncProgress | None:
    """An `eth_syncing` answer: None for false (synced), progress for an object."""
    if result is False or result is None:
        return None

    def number(key: str) -> int | None:
        value = result.get(key) if isinstance(result, dict) else None
        if isinstance(value, str):
            return int(value, 16)
        return value if isinstance(value, int) else None

    return SyncProgress(number("currentBlock"), number("highestBlock"))


class TailWorker:
    """Follows one network; `run()` never returns except by cancellation or a ConfigError."""

    def __init__(
        self,
        db: Storage,
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
        tick_interval: float = 1.0,
        sync_check_interval: float = 10.0,
        leases: Leases | None = None,
        refresh_addresses: Callable[[], Awaitable[None]] | None = None,
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
        self.tick_interval = tick_interval
        self.sync_check_interval = sync_check_interval
        self.backoff = Backoff(0.25, max_backoff)
        self.leases = leases  # None: this process is the only one (no lease, no fence)
        self.refresh_addresses = refresh_addresses
        self._token: int | None = None  # the lease's fencing token while this process leads
        self._chain_checked = False
        self._wake = asyncio.Event()
        self._last_block_time: float | None = None  # unix time of the processed block
        self._head_advanced_at: float | None = None  # unix time the node's head last grew
        self._next_sync_check = 0.0  # monotonic
        self._head_behind_logged = False
        metrics.MAX_LAG_SECONDS.labels(network.name).set(network.max_lag_seconds)
        metrics.BLOCK_TIME.labels(network.name).set(network.block_time)

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                try:
                    await self._follow()
                except (asyncio.CancelledError, ConfigError):
                    raise
                except Exception as exc:  # node down, timeouts, refusals, a store hiccup: retry
                    delay = self.backoff.failed()
                    self.status.connected = False
                    self.status.error = f"{type(exc).__name__}: {exc}"[:300]
                    self._publish()
                    log.warning(
                        "%s: tail failed (%s); retrying in %.2fs",
                        self.network.name, self.status.error, delay,
                        extra={"network": self.network.name},
                    )  # fmt: skip
                    await asyncio.sleep(delay * (0.5 + random.random() / 2))
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await self._release()

    @property
    def lease_name(self) -> str:
        return f"tail:{self.network.name}"

    async def _lead(self) -> None:
        """Wait until this process holds the network's lease; meanwhile report the leader's
        progress from the database, so /readyz is right on every replica."""
        assert self.leases is not None
        name = self.network.name
        while True:
            token = await self.leases.acquire(self.lease_name)
            if token is not None:
                if self._token != token:
                    log.info("%s: this process tails the network (lease token %d)", name, token)
                self._token = token
                self.status.leader = self.leases.holder
                metrics.NETWORK_LEADER.labels(name).set(1)
                return
            self._token = None
            metrics.NETWORK_LEADER.labels(name).set(0)
            self.status.leader = await self.leases.holder_of(self.lease_name)
            cursor = await self.db.read(lambda c: c.chain.get_cursor(name))
            when = await self.db.read(lambda c: c.chain.cursor_block_time(name))
            if cursor is not None:
                self.status.processed = cursor.number
            if when is not None:
                self._last_block_time = when.timestamp()
            self.status.connected, self.status.error = True, None
            self._publish()
            await asyncio.sleep(self.leases.poll)

    async def _release(self) -> None:
        if self.leases is None or self._token is None:
            return
        token, self._token = self._token, None
        metrics.NETWORK_LEADER.labels(self.network.name).set(0)
        with contextlib.suppress(Exception):  # stopping: the lease expires by itself anyway
            await self.leases.release(self.lease_name, token)

    async def _tick(self) -> None:
        """Republish the lag on a clock of its own: it must grow while the node is silent."""
        await self._load_progress()
        while True:
            self._publish()
            await asyncio.sleep(self.tick_interval)

    async def _load_progress(self) -> None:
        """The stored cursor and its block's time, so lag is known before the node answers."""
        name = self.network.name
        try:
            cursor = await self.db.read(lambda c: c.chain.get_cursor(name))
            when = await self.db.read(lambda c: c.chain.cursor_block_time(name))
        except Exception as exc:  # the tail itself reports store failures; lag waits
            log.warning("%s: cannot read the stored cursor (%s)", name, exc)
            return
        if cursor is not None and self.status.processed is None:
            self.status.processed = cursor.number
        if when is not None and self._last_block_time is None:
            self._last_block_time = when.timestamp()

    async def _follow(self) -> None:
        client = JsonRpcClient(self.network.rpc_url, self.network.name, timeout=self.rpc_timeout)
        reader = ChainReader(client)
        listener: asyncio.Task[None] | None = None
        try:
            await self._check_chain_id(reader)
            service = self._service(reader)
            name = self.network.name
            if self.leases is not None:
                await self._lead()
                assert self._token is not None
                service.fence = self.leases.fence(self.lease_name, self._token)
                service.refresh_addresses = self.refresh_addresses
            if await self.db.read(lambda c: c.chain.get_cursor(name)) is None:
                await self._wait_until_synced(client, reader)
            cursor = await service.load_cursor(start_below_head=self.network.confirmations)
            self.status.processed = cursor.number
            if service.last_block_time is None:
                when = await self.db.read(lambda c: c.chain.cursor_block_time(name))
                service.last_block_time = None if when is None else when.timestamp()
            self._last_block_time = service.last_block_time or self._last_block_time
            metrics.PROCESSED_HEIGHT.labels(name).set(cursor.number)
            listener = asyncio.create_task(self._listen(client))
            while True:
                head = await reader.head_number()
                self.status.connected, self.status.error = True, None
                await self._check_syncing(client)
                self._saw_head(head)
                await self._catch_up(service, head)
                self.backoff.succeeded()
                self._publish()
                if self.leases is not None and self._token is not None:
                    if not await self.leases.renew(self.lease_name, self._token):
                        self._token = None
                        raise LeaseLost(f"{name}: lease lost to another process")
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
            return await self.db.read(lambda c: c.chain.open_native_addresses(name, native, now))

        async def native_credited(addresses: Sequence[str], through: int) -> dict[str, int]:
            return await self.db.read(
                lambda c: c.chain.native_credited(name, native, addresses, through)
            )

        async def open_addresses() -> list[str]:
            now = self.clock.now()
            return await self.db.read(lambda c: c.chain.open_addresses(name, now))

        async def has_forwarders() -> bool:
            return await self.db.read(lambda c: c.chain.has_forwarder_stores(name))

        fetcher = BlockFetcher(
            reader, self.network, self.matcher.screen, open_native_addresses,
            native_credited=native_credited, open_addresses=open_addresses,
            has_forwarders=has_forwarders,
        )  # fmt: skip
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

    # -- syncing ------------------------------------------------------------------------------
    async def _wait_until_synced(self, client: JsonRpcClient, reader: ChainReader) -> None:
        """Before the first cursor: a syncing node's head (0, or far behind) must not place it."""
        while True:
            progress = await sync_progress(client, reader, self.clock.now().timestamp())
            self.status.connected, self.status.error = True, None
            self.backoff.succeeded()
            self._report_syncing(progress)
            if progress is None:
                return
            await asyncio.sleep(self.poll_interval)

    async def _check_syncing(self, client: JsonRpcClient) -> None:
        """Steady state: report a node that syncs again (blocks it has are still processed)."""
        if time.monotonic() < self._next_sync_check:
            return
        self._next_sync_check = time.monotonic() + self.sync_check_interval
        self._report_syncing(await eth_syncing(client))

    def _report_syncing(self, progress: SyncProgress | None) -> None:
        name, was = self.network.name, self.status.syncing
        self.status.syncing = None if progress is None else progress.as_json()
        metrics.NODE_SYNCING.labels(name).set(0 if progress is None else 1)
        if progress is not None and progress.highest_block is not None:
            metrics.NODE_SYNC_HIGHEST.labels(name).set(progress.highest_block)
        if progress is not None and was is None:
            log.warning(
                "%s: the node is syncing (%s); waiting, not ready until it is done",
                name, progress.describe(), extra={"network": name},
            )  # fmt: skip
        elif progress is None and was is not None:
            log.info("%s: the node has finished syncing", name, extra={"network": name})
        self._publish()

    # -- following ----------------------------------------------------------------------------
    async def _listen(self, client: JsonRpcClient) -> None:
        async for head in reconnecting_heads(client, max_delay=self.backoff.cap):
            metrics.LAST_HEAD_SEEN.labels(self.network.name).set(time.time())
            number = head.get("number")
            if isinstance(number, str):
                self._saw_head(int(number, 16))
            self._wake.set()

    def _saw_head(self, head: int) -> None:
        if self.status.head is None or head > self.status.head:
            self.status.head = head
            self._head_advanced_at = self.clock.now().timestamp()
            metrics.NODE_HEAD.labels(self.network.name).set(head)
        self._publish()

    async def _catch_up(self, service: BlockService, head: int) -> None:
        assert service.cursor is not None
        if head < service.cursor.number:
            if not self._head_behind_logged:
                log.warning(
                    "%s: node head %d is behind the processed block %d (node resyncing?)",
                    self.network.name, head, service.cursor.number,
                )  # fmt: skip
                self._head_behind_logged = True
            return
        self._head_behind_logged = False
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
            self._last_block_time = service.last_block_time
            self._publish()

    # -- reporting ----------------------------------------------------------------------------
    def _publish(self) -> None:
        """Lag, its estimate and the network's state, into the status and the metrics."""
        name, status, network = self.network.name, self.status, self.network
        now = self.clock.now().timestamp()
        if self._last_block_time is not None:
            lag = max(now - self._last_block_time, 0.0)
            status.lag_seconds = round(lag, 3)
            metrics.LAG_SECONDS.labels(name).set(lag)
        known = None
        if status.head is not None and status.processed is not None:
            known = max(status.head - status.processed, 0)
        silent = (
            self._head_advanced_at is None
            or now - self._head_advanced_at > network.ready_lag_seconds
        )
        stale = not status.connected or status.syncing is not None or silent
        estimate = None
        if stale and status.lag_seconds is not None:
            estimate = int(status.lag_seconds // network.block_time)
        status.lag_estimated = estimate is not None and (known is None or estimate > known)
        status.lag_blocks = estimate if status.lag_estimated else known
        if status.lag_blocks is not None:
            metrics.LAG_BLOCKS.labels(name).set(status.lag_blocks)
        status.state = network_state(status, network.ready_lag_seconds)
        metrics.NETWORK_READY.labels(name).set(1 if status.state == OK else 0)


def network_state(status: StatusSink, ready_lag_seconds: float) -> str:
    """One word for /readyz; the network is ready only when it is "ok"."""
    if status.error is not None:
        return UNREACHABLE
    if status.syncing is not None:
        return SYNCING
    if not status.connected or status.processed is None or status.lag_seconds is None:
        return STARTING
    if status.lag_seconds > ready_lag_seconds:
        return BEHIND
    return OK


async def eth_syncing(client: JsonRpcClient) -> SyncProgress | None:
    """The node's `eth_syncing`; a node without the method counts as synced."""
    try:
        return parse_syncing(await client.call("eth_syncing"))
    except RpcResponseError as exc:
        if exc.code == _METHOD_NOT_FOUND:
            return None
        raise


async def sync_progress(
    client: JsonRpcClient, reader: ChainReader, now: float
) -> SyncProgress | None:
    """None when the node is at the tip: not syncing, and its head block is recent."""
    progress = await eth_syncing(client)
    if progress is not None:
        return progress
    head = await reader.head_number()
    block = await reader.get_block(head, full_transactions=False)
    age = None if block is None else int(now - block.timestamp)
    if age is not None and age > STALE_HEAD_SECONDS:
        return SyncProgress(head, None, head_age_seconds=age)
    return None
