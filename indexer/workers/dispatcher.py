"""The dispatcher: fans the event outbox out into deliveries and sends them until delivered.

Three loops share one in-memory schedule that is rebuilt from DuckDB on every start:

- fan-out reads the events after `outbox_cursor` and, in one transaction, inserts a delivery
  per matching enabled endpoint (and per event for the in-process hook) and moves the cursor,
  so an event is fanned out exactly once and never lost between its commit and its publish;
- dispatch pops due deliveries from a heap and sends them, at most
  `max_concurrency_per_endpoint` at a time per endpoint, each endpoint with its own connection
  pool and timeout, so a slow endpoint only ever waits on itself;
- record writes finished attempts in batches (one transaction per batch: attempt rows,
  delivery states, next due times, endpoint health) and only then reschedules in memory.

A crash after a send and before its record leaves the delivery pending in DuckDB: it is sent
again after the restart (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from indexer import metrics
from indexer.config import Settings
from indexer.domain.clock import Clock
from indexer.domain.retry import next_attempt_delay
from indexer.domain.signing import SIGNATURE_HEADER, sign
from indexer.services.webhooks import (
    ENABLED,
    HealthChange,
    WebhookService,
)
from indexer.store.errors import StaleCursor
from indexer.store.port import Storage
from indexer.store.rows import (
    HOOK_ENDPOINT,
    AttemptRow,
    DeliveryUpdate,
    EndpointRow,
    NewDelivery,
    new_attempt_id,
)
from indexer.webhook.sender import AttemptResult, WebhookSender, build_headers
from indexer.workers.hook import Hook, call_hook

log = logging.getLogger(__name__)
RetryDelay = Callable[[int], timedelta | None]
# Bodies of deliveries retried later than this are dropped from memory and re-read when due,
# so a long outage of one endpoint does not pin every payload it missed in RAM.
KEEP_BODY_FOR = timedelta(minutes=1)
MAX_SLEEP = 1.0  # the schedule is re-checked at least this often (clock jumps, gauges)


def default_retry_delay(attempt_number: int) -> timedelta | None:
    return next_attempt_delay(attempt_number, random.random)


@dataclass(eq=False)
class Job:
    """One pending delivery held in memory: scheduled, queued, sending or being recorded."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    attempts: int
    due: datetime
    created_at: datetime
    body: bytes | None = None
    state: str = "scheduled"


@dataclass
class _Plan:
    """What one batch of finished attempts changes; built in memory, written in one commit.

    Endpoint health (`health`) is decided and kept by the WebhookService, its one owner."""

    attempts: list[AttemptRow] = field(default_factory=list)
    updates: list[tuple[Job, DeliveryUpdate]] = field(default_factory=list)
    health: HealthChange = field(default_factory=HealthChange)


class Dispatcher:
    def __init__(
        self,
        db: Storage,
        webhooks: WebhookService,
        settings: Settings,
        clock: Clock,
        hook: Hook | None = None,
        retry_delay: RetryDelay = default_retry_delay,
        poll_interval: float = 0.05,
    ) -> None:
        self.db = db
        self.webhooks = webhooks
        self.settings = settings
        self.clock = clock
        self.hook = hook
        self.retry_delay = retry_delay
        self.poll_interval = poll_interval
        self.fan_out_limit = 1000
        self.gather_delay = 0.01
        # With no endpoint and no hook nothing can be delivered, now or later (an endpoint
        # gets only events created after it): the cursor then moves only this often.
        self.idle_advance = 5.0
        self._advanced_at = -math.inf
        self.record_batch = 1000
        self.cursor = 0
        self._jobs: dict[str, Job] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._order = itertools.count()
        self._queues: dict[str, deque[Job]] = {}
        self._busy: dict[str, int] = {}
        self._finished: list[tuple[Job, datetime, AttemptResult]] = []
        self._senders: dict[str, WebhookSender] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox = asyncio.Event()
        self._wake = asyncio.Event()
        self._recordable = asyncio.Event()
        self._gauges_at = 0.0

    # -- signals from writers and the API (DeliveryListener) ----------------------------------
    def events_committed(self) -> None:
        self._outbox.set()

    def deliveries_added(self, deliveries: list[NewDelivery], payloads: dict[str, str]) -> None:
        for d in deliveries:
            body = payloads.get(d.event_id)
            self._add(d.id, d.event_id, d.endpoint_id, 0, d.created_at, d.created_at, body)
        self._wake.set()

    def endpoint_enabled(self, endpoint_id: str) -> None:
        self._spawn(self._resume(endpoint_id))

    def wake(self) -> None:
        """Re-check the schedule now (tests that move the clock call this)."""
        self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        await self._rebuild()
        self.webhooks.listener = self
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._fan_out_loop())
                group.create_task(self._dispatch_loop())
                group.create_task(self._record_loop())
        finally:
            if self.webhooks.listener is self:
                self.webhooks.listener = None
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for sender in self._senders.values():
                await sender.close()
            self._senders.clear()

    async def _rebuild(self) -> None:
        """The schedule from DuckDB: every pending delivery to an enabled endpoint or the hook."""
        self._jobs.clear()
        self._heap.clear()
        self._queues.clear()
        self._busy.clear()
        self._finished.clear()
        hook = self.hook is not None
        self.cursor = await self.db.read(lambda uow: uow.webhooks.outbox_cursor())
        pending = await self.db.read(lambda c: c.webhooks.pending_deliveries(hook))
        for p in pending:
            self._add(p.id, p.event_id, p.endpoint_id, p.attempts, p.next_attempt_at, p.created_at)
        if pending:
            log.info("dispatcher resumed %d pending deliveries", len(pending))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the schedule -------------------------------------------------------------------------
    def _add(
        self,
        delivery_id: str,
        event_id: str,
        endpoint_id: str,
        attempts: int,
        due: datetime,
        created_at: datetime,
        body: str | None = None,
    ) -> None:
        if delivery_id in self._jobs:
            return
        job = Job(delivery_id, event_id, endpoint_id, attempts, due, created_at)
        job.body = body.encode() if body is not None else None
        self._jobs[delivery_id] = job
        self._schedule(job)

    def _schedule(self, job: Job) -> None:
        job.state = "scheduled"
        heapq.heappush(self._heap, (job.due, next(self._order), job.delivery_id))

    def _pop_due(self, now: datetime) -> list[Job]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            at, _, delivery_id = heapq.heappop(self._heap)
            job = self._jobs.get(delivery_id)
            if job is not None and job.state == "scheduled" and job.due == at:
                due.append(job)
        return due

    def _deliverable(self, endpoint_id: str) -> bool:
        if endpoint_id == HOOK_ENDPOINT:
            return self.hook is not None
        endpoint = self.webhooks.endpoints.get(endpoint_id)
        return endpoint is not None and endpoint.status == ENABLED

    def _park(self, job: Job) -> None:
        """Forget a job whose endpoint is disabled or gone: it stays pending in DuckDB."""
        self._jobs.pop(job.delivery_id, None)

    async def _resume(self, endpoint_id: str) -> None:
        pending = await self.db.read(
            lambda c: c.webhooks.pending_deliveries(False, endpoint_id=endpoint_id)
        )
        for p in pending:
            self._add(p.id, p.event_id, p.endpoint_id, p.attempts, p.next_attempt_at, p.created_at)
        self._wake.set()

    # -- fan-out --------------------------------------------------------------------------------
    async def fan_out_once(self) -> int:
        """Fan out the next events after the cursor; returns how many events were read.

        The transaction decides what is delivered; the in-memory endpoint list only lets a
        gateway without endpoints skip it. An endpoint created meanwhile loses nothing: the
        cursor has not moved, and the next fan-out finds the events created after it.
        """
        if (
            self.hook is None
            and not self.webhooks.endpoints
            and time.monotonic() - self._advanced_at < self.idle_advance
        ):
            return 0
        if not await self.db.read(lambda c: c.webhooks.has_events_after(self.cursor)):
            return 0
        now, hook, limit = self.clock.now(), self.hook is not None, self.fan_out_limit
        cursor = self.cursor
        try:
            result = await self.db.write(
                lambda c: c.webhooks.fan_out(cursor, now, hook, limit), "fanout"
            )
        except StaleCursor:
            self.cursor = await self.db.read(lambda uow: uow.webhooks.outbox_cursor())
            raise
        self.cursor = result.last_seq
        self._advanced_at = time.monotonic()
        self.deliveries_added(result.deliveries, result.payloads)
        return result.events

    async def _fan_out_loop(self) -> None:
        while True:
            self._outbox.clear()  # before reading, so a commit during the read is not missed
            try:
                if await self.fan_out_once() >= self.fan_out_limit:
                    continue
            except Exception:
                log.exception("webhook fan-out failed; retrying")
            try:
                async with asyncio.timeout(self.poll_interval):
                    await self._outbox.wait()
                # Woken by a commit: let the commits of concurrent requests land too, so one
                # fan-out transaction serves many of them (DuckDB pays per transaction).
                await asyncio.sleep(self.gather_delay)
            except TimeoutError:
                pass

    # -- dispatch -----------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock.now()
            due = self._pop_due(now)
            if due:
                await self._load_bodies(due)
                touched = set()
                for job in due:
                    if job.delivery_id not in self._jobs:
                        continue  # its event vanished (see _load_bodies)
                    if not self._deliverable(job.endpoint_id):
                        self._park(job)
                        continue
                    job.state = "queued"
                    self._queues.setdefault(job.endpoint_id, deque()).append(job)
                    touched.add(job.endpoint_id)
                for endpoint_id in touched:
                    self._start_sends(endpoint_id)
            self._update_gauges(now)
            sleep = MAX_SLEEP
            if self._heap:
                sleep = min(max((self._heap[0][0] - now).total_seconds(), 0.0), MAX_SLEEP)
            if sleep > 0:
                try:
                    async with asyncio.timeout(sleep):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _load_bodies(self, jobs: list[Job]) -> None:
        missing = list({j.event_id for j in jobs if j.body is None})
        if not missing:
            return
        payloads = await self.db.read(lambda c: c.webhooks.event_payloads(missing))
        for job in jobs:
            if job.body is None:
                payload = payloads.get(job.event_id)
                if payload is None:
                    log.error("delivery %s: event %s is missing", job.delivery_id, job.event_id)
                    self._park(job)
                else:
                    job.body = payload.encode()

    def _start_sends(self, endpoint_id: str) -> None:
        queue = self._queues.get(endpoint_id)
        limit = self.settings.webhooks.max_concurrency_per_endpoint
        while queue and self._busy.get(endpoint_id, 0) < limit:
            job = queue.popleft()
            if not self._deliverable(endpoint_id):
                self._park(job)
                continue
            job.state = "sending"
            self._busy[endpoint_id] = self._busy.get(endpoint_id, 0) + 1
            self._spawn(self._send(job))
        if queue is not None and not queue:
            del self._queues[endpoint_id]

    async def _send(self, job: Job) -> None:
        attempted_at = self.clock.now()
        body = job.body or b""
        endpoint = self.webhooks.endpoints.get(job.endpoint_id)
        try:
            if job.endpoint_id == HOOK_ENDPOINT and self.hook is not None:
                timeout = self.settings.webhooks.timeout_seconds
                result = await call_hook(self.hook, job.event_id, body, timeout)
            elif endpoint is not None:
                headers = self._headers(endpoint, job.event_id, body, attempted_at)
                result = await self._sender(endpoint.id).send(endpoint.url, body, headers)
            else:  # deleted between queueing and sending
                result = AttemptResult(False, None, 0, "endpoint_deleted", "")
        finally:
            self._busy[job.endpoint_id] -= 1
        job.state = "recording"
        self._finished.append((job, attempted_at, result))
        self._recordable.set()
        self._start_sends(job.endpoint_id)

    def _headers(
        self, endpoint: EndpointRow, event_id: str, body: bytes, now: datetime
    ) -> dict[str, str]:
        timestamp = int(now.timestamp())
        headers = build_headers(event_id, body, endpoint.secret, timestamp)
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and now < expires:
            # During a rotation both secrets sign; a receiver holding either one verifies.
            old = sign(endpoint.previous_secret, body, timestamp).split(",", 1)[1]
            headers[SIGNATURE_HEADER] += "," + old
        return headers

    def _sender(self, endpoint_id: str) -> WebhookSender:
        # One connection pool per endpoint: a slow endpoint can fill only its own pool.
        sender = self._senders.get(endpoint_id)
        if sender is None:
            hooks = self.settings.webhooks
            sender = WebhookSender(
                allow_private=hooks.allow_private_targets,
                timeout=hooks.timeout_seconds,
                per_host_limit=hooks.max_concurrency_per_endpoint,
            )
            self._senders[endpoint_id] = sender
        return sender

    # -- record -------------------------------------------------------------------------------
    async def _record_loop(self) -> None:
        while True:
            await self._recordable.wait()
            self._recordable.clear()
            while self._finished:
                batch = self._finished[: self.record_batch]
                del self._finished[: len(batch)]
                plan = self._plan(batch)
                try:
                    await self.webhooks.record_attempts(
                        plan.attempts, [u for _, u in plan.updates], plan.health
                    )
                except Exception:
                    log.exception("recording %d webhook attempts failed; retrying", len(batch))
                    self._finished[:0] = batch
                    await asyncio.sleep(1.0)
                    continue
                self._apply(plan)

    def _plan(self, batch: list[tuple[Job, datetime, AttemptResult]]) -> _Plan:
        plan = _Plan()
        now = self.clock.now()
        outcomes: list[tuple[str, bool, datetime]] = []
        for job, attempted_at, result in batch:
            plan.attempts.append(
                AttemptRow(
                    new_attempt_id(), job.delivery_id, job.event_id, job.endpoint_id,
                    attempted_at, result.status_code, result.latency_ms, result.error,
                    result.response_excerpt[:4096] or None,
                )
            )  # fmt: skip
            attempts = job.attempts + 1
            delay = None if result.ok else self.retry_delay(attempts)
            if result.ok:
                update = DeliveryUpdate(
                    job.delivery_id, "delivered", attempts, None, attempted_at, now
                )
            elif delay is None:
                update = DeliveryUpdate(
                    job.delivery_id, "failed", attempts, None, attempted_at, None
                )
            else:
                update = DeliveryUpdate(
                    job.delivery_id, "pending", attempts, now + delay, attempted_at, None
                )
            plan.updates.append((job, update))
            outcomes.append((job.endpoint_id, result.ok, attempted_at))
        plan.health = self.webhooks.assess(outcomes, now)
        return plan

    def _apply(self, plan: _Plan) -> None:
        """Memory after the commit: reschedule or forget each job, endpoint health, metrics."""
        for job, update in plan.updates:
            webhook = job.endpoint_id != HOOK_ENDPOINT
            if update.status == "pending" and update.next_attempt_at is not None:
                job.attempts = update.attempts
                job.due = update.next_attempt_at
                if job.due - update.last_attempt_at > KEEP_BODY_FOR:
                    job.body = None
                self._schedule(job)
                outcome = "retrying"
            else:
                self._jobs.pop(job.delivery_id, None)
                outcome = update.status
            ids = {"event_id": job.event_id, "endpoint_id": job.endpoint_id, "status": outcome}
            if outcome == "failed":
                log.warning(
                    "delivery %s of event %s to %s failed after %d attempts",
                    job.delivery_id, job.event_id, job.endpoint_id, update.attempts, extra=ids,
                )  # fmt: skip
            else:
                log.info(
                    "delivery %s of event %s to %s: %s (attempt %d)",
                    job.delivery_id, job.event_id, job.endpoint_id, outcome, update.attempts,
                    extra=ids,
                )  # fmt: skip
            if webhook:
                metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
        if plan.health.disabled:  # their endpoint_disabled events wait in the outbox
            self._outbox.set()
        self._wake.set()

    # -- gauges -------------------------------------------------------------------------------
    def _update_gauges(self, now: datetime) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._gauges_at < 1.0:
            return
        self._gauges_at = loop_time
        due = 0
        oldest: datetime | None = None
        for job in self._jobs.values():
            if job.state in ("scheduled", "queued") and job.due <= now:
                due += 1
            if oldest is None or job.created_at < oldest:
                oldest = job.created_at
        metrics.WEBHOOK_DUE.set(due)
        metrics.WEBHOOK_OLDEST_AGE.set((now - oldest).total_seconds() if oldest else 0.0)
        for endpoint_id in list(self._senders):
            if not self._deliverable(endpoint_id) and not self._busy.get(endpoint_id):
                self._spawn(self._senders.pop(endpoint_id).close())
