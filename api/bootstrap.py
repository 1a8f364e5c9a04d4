"""The composition root: one Gateway wires settings, store, services and workers for a process.

`chainpay serve`, the tests and the benchmarks all build the same Gateway. One process owns the
DuckDB file, so the API, the chain tails, the expirer and the dispatcher all live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from indexer import forwarder, metrics
from indexer.chain.gas_key import GasKey, load_gas_key
from indexer.config import ConfigError, Settings
from indexer.domain.clock import Clock, SystemClock
from indexer.matcher import AddressMatcher
from indexer.services.event_reads import EventService
from indexer.services.invoices import InvoiceService
from indexer.services.pricing import PriceService
from indexer.services.stores import StoreService
from indexer.services.webhooks import WebhookService
from indexer.store.duckdb.database import Database
from indexer.store.errors import StoreError
from indexer.workers.dispatcher import Dispatcher
from indexer.workers.expirer import Expirer
from indexer.workers.exporter import PeriodicExporter
from indexer.workers.hook import load_hook
from indexer.workers.invariants import BooksChecker
from indexer.workers.lease import Leases, leased, process_identity
from indexer.workers.pruner import IdempotencyPruner
from indexer.workers.sweeper import Sweeper
from indexer.workers.tail import TailWorker
from indexer.workers.unswept import UnsweptGauge

log = logging.getLogger("chainpay")


@dataclass
class NetworkStatus:
    """What the chain tail reports for /readyz: filled in by the tail worker (its StatusSink).

    `state` is one of starting, syncing, unreachable, behind, ok (see indexer/workers/tail.py);
    the network is ready only when it is ok.
    """

    name: str
    state: str = "starting"
    connected: bool = False
    head: int | None = None
    processed: int | None = None
    lag_seconds: float | None = None
    lag_blocks: int | None = None
    lag_estimated: bool = False  # lag_blocks from block_time: the node is down or silent
    syncing: dict[str, int | None] | None = None  # the node's progress while it syncs
    error: str | None = None
    ready_lag_seconds: float | None = None
    leader: str | None = None  # which process tails this network (shared store: the lease)

    @property
    def ready(self) -> bool:
        return self.state == "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "ready": self.ready,
            "connected": self.connected,
            "head": self.head,
            "processed": self.processed,
            "lag_blocks": self.lag_blocks,
            "lag_estimated": self.lag_estimated,
            "lag_seconds": self.lag_seconds,
            "ready_lag_seconds": self.ready_lag_seconds,
            "syncing": self.syncing,
            "error": self.error,
            "leader": self.leader,
        }


@dataclass
class Gateway:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    db: Database = field(init=False)
    stores: StoreService = field(init=False)
    invoices: InvoiceService = field(init=False)
    matcher: AddressMatcher = field(init=False)
    webhooks: WebhookService = field(init=False)
    events: EventService = field(init=False)
    prices: PriceService = field(init=False)
    network_status: dict[str, NetworkStatus] = field(init=False, default_factory=dict)
    leases: Leases = field(init=False)
    gas_key: GasKey | None = field(init=False, default=None)  # [sweep] gas_key_file
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    failure: BaseException | None = field(init=False, default=None)  # a worker's ConfigError
    on_failure: Callable[[], None] | None = field(init=False, default=None)
    _settings_changed: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def open(self, migrate: bool = True) -> None:
        """Open DuckDB, apply migrations, rebuild the in-memory indexes. Raises StoreError,
        or ConfigError for a gas key file that is missing, not private or malformed."""
        if self.settings.sweep.gas_key_file is not None:  # before anything is opened
            self.gas_key = load_gas_key(self.settings)
            log.info("gas key %s pays for sweeps (never their destination)", self.gas_key.address)
        self.db = open_storage(self.settings)
        if migrate:
            self.db.migrate()
        elif self.db.pending_migrations():
            raise StoreError("the database needs migrations: run `chainpay migrate`")
        self.matcher = AddressMatcher()
        shared = self.db.shared  # several processes on one store: leases with a real term
        self.leases = Leases(
            self.db, SystemClock(), process_identity(), ttl=10.0 if shared else 0.0, poll=1.0
        )
        self.stores = StoreService(
            self.db,
            self.clock,
            {name: forwarder.factory_for(net) for name, net in self.settings.networks.items()},
        )
        self.prices = PriceService(self.settings, self.clock, self.tail_lag)
        self.invoices = InvoiceService(
            self.db, self.settings, self.stores, self.matcher, self.clock, self.prices
        )
        self.db.read_sync(self.stores.load)
        self.db.read_sync(self.invoices.load)
        self.webhooks = WebhookService(self.db, self.settings, self.clock)
        self.events = EventService(self.db)
        self.db.read_sync(self.webhooks.load)
        # Any commit but the dispatcher's own may carry new events: wake it now, not at a poll.
        self.db.commit_listeners.append(
            lambda kinds: self.webhooks.notify() if kinds - {"webhooks"} else None
        )
        # Another replica's commit (a shared store): its events and settings count here now.
        self.db.remote_commit_listeners.append(self._remote_commit)
        self.network_status = {
            name: NetworkStatus(name, ready_lag_seconds=network.ready_lag_seconds)
            for name, network in self.settings.networks.items()
        }
        metrics.BUILD.info({"version": _version()})

    def ready(self) -> tuple[bool, str]:
        """Whether the store takes writes now. Memory only: no query, so a load balancer
        probing /readyz never competes with the writer (migrations are checked at `open`)."""
        ok, detail = self.db.ready()
        return ok, detail if ok else f"store unavailable: {detail}"

    def alive(self) -> tuple[bool, str]:
        """False when a part is dead, not merely slow: the writer thread, a worker (a tail)
        that ended, or a database that stays invalidated. For /healthz: restart the process."""
        ok, detail = self.db.alive()
        if not ok:
            return False, detail
        for task in self._tasks:
            if task.done() and not task.cancelled():
                return False, f"worker {task.get_name()} ended: {task.exception()!r}"
        return True, "ok"

    def tail_lag(self, network: str) -> float | None:
        """Seconds the network's tail is behind; None until it is connected and knows."""
        status = self.network_status.get(network)
        if status is None or not status.connected:
            return None
        return status.lag_seconds

    def _remote_commit(self, kinds: set[str]) -> None:
        if "events" in kinds:
            self.webhooks.notify()
        if "settings" in kinds:
            self._settings_changed.set()

    async def refresh_caches(self, every: float = 1.0) -> None:
        """Stores, keys and webhook endpoints anew from the shared store every `every` s, and at
        once when another process tells it changed them (`follow_remote_commits`): a key
        revoked or an endpoint changed through another process counts here within that."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._settings_changed.wait()
            self._settings_changed.clear()
            try:
                await self.db.read(self.stores.refresh)
                await self.db.read(self.webhooks.load)
            except StoreError as exc:  # /readyz reports the store; the caches wait
                log.warning("cache refresh failed: %s", exc)

    def networks_ready(self) -> tuple[bool, list[str]]:
        """Chains: ready when at least one network is configured and every one is "ok".

        Any network syncing, unreachable, starting or behind by more than its
        `ready_lag_seconds` makes the whole gateway not ready: an invoice on that network
        would be paid without anyone seeing it in time. The names of those networks are
        returned (docs/operations.md, "Readiness").
        """
        not_ready = [name for name, status in self.network_status.items() if not status.ready]
        return bool(self.network_status) and not not_ready, not_ready

    def start_workers(self, loops: list[Callable[[], Awaitable[None]]]) -> None:
        """Start background loops (see `background_loops`), each restarted if it crashes.

        A worker failing with a ConfigError is not restarted: it is kept in `failure` and
        `on_failure` is called, so `chainpay serve` stops and exits 2 with that one line.
        """
        for loop in loops:
            name = getattr(loop, "__qualname__", "worker")
            task = asyncio.get_running_loop().create_task(_supervised(loop), name=name)
            task.add_done_callback(self._worker_done)
            self._tasks.append(task)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self.failure = task.exception()
        if self.on_failure is not None:
            self.on_failure()

    async def close(self, grace: float = 15.0) -> None:
        """Stop the workers (bounded: a stuck one is reported, never waited on forever)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            done, stuck = await asyncio.wait(self._tasks, timeout=grace)
            for task in done:
                if not task.cancelled() and not isinstance(task.exception(), ConfigError):
                    if task.exception() is not None:
                        log.error("worker ended with %r", task.exception())
            for task in stuck:
                where = _await_chain(task.get_coro())
                log.error("worker did not stop within %.0f s; leaving it at:%s", grace, where)
        self._tasks.clear()
        await self.prices.close()
        try:
            await self.stores.release()
        except StoreError as exc:  # a gap in the HD indexes, never a reuse
            log.warning("reserved HD indexes not given back: %s", exc)
        await self.db.close()


def open_storage(settings: Settings) -> Any:
    """The store the settings name: PostgreSQL for a postgresql:// URL, else the DuckDB file.

    Typed loosely on purpose: tests and tools use each adapter's own extras (read_sql); the
    services see only the port.
    """
    if settings.postgres_url is not None:
        from indexer.store.postgres.database import PostgresStorage

        return PostgresStorage(settings.postgres_url)
    return Database(settings.database, threads=settings.duckdb_threads)


def background_loops(gateway: Gateway) -> list[Callable[[], Awaitable[None]]]:
    """Everything `chainpay serve` runs beside the HTTP server.

    On a store several processes share (PostgreSQL), the singleton workers run in the process
    holding their lease, each network's tail too (with fencing), and every process refreshes
    its caches of stores, keys and webhook endpoints every second.
    """
    shared = gateway.db.shared
    leases = gateway.leases

    def single(name: str, loop: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        return leased(leases, name, loop) if shared else loop

    hook = load_hook(gateway.settings.on_event_hook, gateway.settings.source)
    loops: list[Callable[[], Awaitable[None]]] = [
        single("expirer", Expirer(gateway.db, gateway.settings, gateway.clock).run),
        single("idempotency-pruner", IdempotencyPruner(gateway.invoices).run),
        single(
            "books-checker",
            BooksChecker(gateway.db, gateway.settings.networks, gateway.matcher.screen).run,
        ),
        single(
            "unswept",
            UnsweptGauge(
                gateway.db, gateway.settings.networks, gateway.settings.sweep.alert_above
            ).run,
        ),
        single(
            "dispatcher",
            Dispatcher(gateway.db, gateway.webhooks, gateway.settings, gateway.clock, hook).run,
        ),
    ]
    loops += [
        TailWorker(
            gateway.db, gateway.settings, network, gateway.matcher, gateway.clock,
            gateway.network_status[name], leases=leases,
            refresh_addresses=gateway.invoices.refresh_addresses if shared else None,
        ).run
        for name, network in gateway.settings.networks.items()
    ]  # fmt: skip
    loops += [partial(gateway.prices.run, name) for name in gateway.prices.networks()]
    if gateway.gas_key is not None:  # one sender per network and gas key
        loops += [
            single(f"sweeper:{name}", Sweeper(
                gateway.db, gateway.stores, gateway.prices, gateway.settings, network,
                gateway.gas_key,
            ).run)
            for name, network in gateway.settings.networks.items()
        ]  # fmt: skip
    if gateway.settings.analytics.export_dir is not None:
        exporter = PeriodicExporter(gateway.db, gateway.settings.analytics, gateway.clock)
        loops.append(single("exporter", exporter.run))
    if shared:
        loops.append(gateway.refresh_caches)
        loops.append(gateway.db.follow_remote_commits)
    return loops


async def _supervised(loop: Callable[[], Awaitable[None]]) -> None:
    """Keep a worker alive: log a crash, wait, start it again. Cancellation ends it."""
    delay = 1.0
    while True:
        try:
            await loop()
            return
        except (asyncio.CancelledError, ConfigError):
            raise  # a wrong config stays wrong: restarting cannot help
        except Exception:
            log.exception(
                "worker %s crashed; restarting in %.0fs", getattr(loop, "__qualname__", loop), delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def _await_chain(coro: Any) -> str:
    """Where a coroutine is suspended, innermost last (for a worker that will not stop)."""
    lines: list[str] = []
    while coro is not None and len(lines) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            lines.append(f"\n  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return "".join(lines)


def _version() -> str:
    from indexer import __version__

    return __version__
