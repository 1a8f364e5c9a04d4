"""Webhook endpoints and the delivery log: register, change, rotate, test, redeliver, read.

Endpoints live in memory (rebuilt from DuckDB at start, changed only after a commit) so the
dispatcher signs and sends without a database read. The dispatcher registers itself as the
`listener` to hear about deliveries made here and endpoints enabled again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from indexer import metrics
from indexer.config import Settings
from indexer.domain.clock import Clock
from indexer.domain.errors import ConflictError, NotFoundError, ValidationError
from indexer.domain.ids import new_id
from indexer.domain.invoice import EventType
from indexer.domain.retry import should_disable_endpoint
from indexer.domain.signing import new_secret
from indexer.domain.view import iso
from indexer.services.events import event_row
from indexer.services.pagination import own_cursor
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import (
    AttemptRow,
    DeliveryRow,
    DeliveryUpdate,
    EndpointRow,
    EventRow,
    NewDelivery,
    new_delivery_id,
)
from indexer.webhook.target import validate_url

ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS_PER_STORE = 100
MAX_DESCRIPTION = 500
# What an endpoint may subscribe to; `ping` only ever goes to the endpoint being tested.
SUBSCRIBABLE = tuple(t.value for t in EventType if t is not EventType.PING)
EVENT_TYPES = tuple(t.value for t in EventType)
ENABLED, DISABLED = "enabled", "disabled"


log = logging.getLogger(__name__)
DISABLE_REASON = "failing for 3 days"


@dataclass
class HealthChange:
    """Endpoint health after a batch of attempts: failure streaks started, endpoints disabled."""

    failing_since: dict[str, datetime | None] = field(default_factory=dict)
    disabled: list[tuple[EndpointRow, EventRow]] = field(default_factory=list)


class DeliveryListener(Protocol):
    """What the dispatcher offers the service (and writers): wake-ups after commits."""

    def events_committed(self) -> None: ...

    def deliveries_added(self, deliveries: list[NewDelivery], payloads: dict[str, str]) -> None: ...

    def endpoint_enabled(self, endpoint_id: str) -> None: ...


def endpoint_view(e: EndpointRow, secret: bool = False) -> dict[str, Any]:
    """The public JSON of an endpoint; the secret only when just created or rotated."""
    view: dict[str, Any] = {
        "id": e.id,
        "object": "webhook_endpoint",
        "url": e.url,
        "description": e.description,
        "events": list(e.events) if e.events is not None else None,
        "status": e.status,
        "disabled_reason": e.disabled_reason,
        "previous_secret_expires_at": iso(e.previous_secret_expires_at),
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
    }
    if secret:
        view["secret"] = e.secret
    return view


def delivery_view(d: DeliveryRow, attempts: list[AttemptRow]) -> dict[str, Any]:
    return {
        "id": d.id,
        "object": "delivery",
        "event_id": d.event_id,
        "event_type": d.event_type,
        "endpoint_id": d.endpoint_id,
        "status": d.status,
        "attempt_count": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at),
        "last_attempt_at": iso(d.last_attempt_at),
        "delivered_at": iso(d.delivered_at),
        "created_at": iso(d.created_at),
        "attempts": [
            {
                "id": a.id,
                "attempted_at": iso(a.attempted_at),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
            }
            for a in attempts
        ],
    }


def endpoint_event(type_: str, endpoint: EndpointRow, now: datetime) -> EventRow:
    """An event about an endpoint (`ping`, `webhook_endpoint.disabled`), for the outbox."""
    return event_row(
        type_, endpoint.store_id, None, {"webhook_endpoint": endpoint_view(endpoint)}, now
    )


# --- input ---------------------------------------------------------------------------------
def _check_fields(payload: object, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValidationError("invalid_body", "the request body must be a JSON object")
    for name in payload:
        if name not in allowed:
            raise ValidationError("unknown_field", f"unknown field {name!r}", str(name)[:100])
    return payload


def _events(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError(
            "invalid_events", "events must be a non-empty list of event types, or null for all",
            "events",
        )  # fmt: skip
    for v in value:
        if v not in SUBSCRIBABLE:
            raise ValidationError(
                "unknown_event_type",
                f"unknown event type {v[:64]!r} (known: {', '.join(SUBSCRIBABLE)})",
                "events",
            )
    return tuple(dict.fromkeys(value))


def _description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise ValidationError(
            "invalid_description",
            f"description must be a string of at most {MAX_DESCRIPTION} characters",
            "description",
        )
    return value or None


def parse_endpoint_changes(payload: object, settings: Settings, create: bool) -> dict[str, Any]:
    """Validated column values from a create (POST) or update (PATCH) body."""
    allowed = {"url", "events", "description"} | (set() if create else {"status"})
    body = _check_fields(payload, allowed)
    changes: dict[str, Any] = {}
    if create or "url" in body:
        if create and "url" not in body:
            raise ValidationError("invalid_url", "url is required", "url")
        changes["url"] = validate_url(body["url"], settings.webhooks.allow_private_targets)
    if "events" in body:
        changes["events"] = _events(body["events"])
    if "description" in body:
        changes["description"] = _description(body["description"])
    if "status" in body:
        if body["status"] not in (ENABLED, DISABLED):
            raise ValidationError(
                "invalid_status", "status must be 'enabled' or 'disabled'", "status"
            )
        changes["status"] = body["status"]
    return changes


@dataclass(frozen=True)
class NewEndpoint:
    """A validated create request."""

    url: str
    events: tuple[str, ...] | None
    description: str | None


def parse_new_endpoint(payload: object, settings: Settings) -> NewEndpoint:
    changes = parse_endpoint_changes(payload, settings, create=True)
    return NewEndpoint(changes["url"], changes.get("events"), changes.get("description"))


def parse_redelivery(payload: object) -> str | None:
    body = _check_fields(payload, {"endpoint_id"})
    endpoint_id = body.get("endpoint_id")
    if endpoint_id is not None and not isinstance(endpoint_id, str):
        raise ValidationError("invalid_endpoint_id", "endpoint_id must be a string", "endpoint_id")
    return endpoint_id


class WebhookService:
    """Endpoint commands and reads; owns the in-memory endpoint table."""

    def __init__(self, db: Storage, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.endpoints: dict[str, EndpointRow] = {}
        self.listener: DeliveryListener | None = None
        self._create_lock = asyncio.Lock()  # the per-store limit is checked, then committed

    def load(self, uow: UnitOfWork) -> None:
        self.endpoints = {e.id: e for e in uow.webhooks.live_endpoints()}

    def notify(self) -> None:
        """Writers call this after committing events, so fan-out runs at once, not at a poll."""
        if self.listener is not None:
            self.listener.events_committed()

    def remember(self, endpoint: EndpointRow) -> None:
        if endpoint.deleted_at is None:
            self.endpoints[endpoint.id] = endpoint
        else:
            self.endpoints.pop(endpoint.id, None)

    def owned(self, store_id: str, endpoint_id: str) -> EndpointRow:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.store_id != store_id:
            raise NotFoundError(f"no webhook endpoint {endpoint_id[:64]}")
        return endpoint

    # -- endpoint commands ----------------------------------------------------------------
    async def create(self, store_id: str, command: NewEndpoint) -> dict[str, Any]:
        async with self._create_lock:
            if sum(e.store_id == store_id for e in self.endpoints.values()) >= (
                MAX_ENDPOINTS_PER_STORE
            ):
                raise ConflictError(
                    "too_many_endpoints",
                    f"a store can have at most {MAX_ENDPOINTS_PER_STORE} webhook endpoints",
                )
            now = self.clock.now()
            endpoint = EndpointRow(
                id=new_id("we"),
                store_id=store_id,
                url=command.url,
                description=command.description,
                events=command.events,
                secret=new_secret(),
                previous_secret=None,
                previous_secret_expires_at=None,
                status=ENABLED,
                disabled_reason=None,
                failing_since=None,
                created_at=now,
                updated_at=now,
            )
            await self.db.write(
                lambda c: c.webhooks.insert_endpoint(endpoint),
                kind="webhooks",
                on_commit=lambda _: self.remember(endpoint),
            )
        return endpoint_view(endpoint, secret=True)

    async def _update(self, endpoint_id: str, **changes: Any) -> EndpointRow:
        row = await self.db.write(
            lambda c: c.webhooks.update_endpoint(endpoint_id, **changes),
            kind="webhooks",
            on_commit=self._remember_committed,
        )
        if row is None:
            raise NotFoundError(f"no webhook endpoint {endpoint_id}")
        return row

    def _remember_committed(self, row: EndpointRow | None) -> None:
        """Memory follows the database once a change commits, even if its caller timed out."""
        if row is not None:
            self.remember(row)

    async def update(self, store_id: str, endpoint_id: str, payload: object) -> dict[str, Any]:
        before = self.owned(store_id, endpoint_id)
        changes = parse_endpoint_changes(payload, self.settings, create=False)
        if changes.get("status") == ENABLED and before.status != ENABLED:
            # Enabled by hand: the failure streak starts over.
            changes.update(disabled_reason=None, failing_since=None)
        elif changes.get("status") == DISABLED and before.status != DISABLED:
            changes["disabled_reason"] = "disabled through the API"
        row = await self._update(endpoint_id, **changes, updated_at=self.clock.now())
        if row.status == ENABLED and before.status != ENABLED and self.listener is not None:
            self.listener.endpoint_enabled(row.id)
        return endpoint_view(row)

    async def delete(self, store_id: str, endpoint_id: str) -> dict[str, Any]:
        self.owned(store_id, endpoint_id)
        now = self.clock.now()

        def write(uow: UnitOfWork) -> EndpointRow | None:
            row = uow.webhooks.update_endpoint(endpoint_id, deleted_at=now, updated_at=now)
            if row is not None:
                uow.webhooks.cancel_pending(endpoint_id)
            return row

        row = await self.db.write(write, kind="webhooks", on_commit=self._remember_committed)
        if row is None:
            raise NotFoundError(f"no webhook endpoint {endpoint_id}")
        return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    async def rotate_secret(self, store_id: str, endpoint_id: str) -> dict[str, Any]:
        self.owned(store_id, endpoint_id)
        now, secret = self.clock.now(), new_secret()

        def write(uow: UnitOfWork) -> EndpointRow | None:
            # The secret being replaced is read in the same transaction: two rotations at once
            # each keep the other's secret as the previous one, instead of both keeping the
            # original and losing the first new secret.
            current = uow.webhooks.get_endpoint(endpoint_id)
            if current is None or current.deleted_at is not None:
                return None
            return uow.webhooks.update_endpoint(
                endpoint_id, secret=secret, previous_secret=current.secret,
                previous_secret_expires_at=now + ROTATION_OVERLAP, updated_at=now,
            )  # fmt: skip

        row = await self.db.write(write, kind="webhooks", on_commit=self._remember_committed)
        if row is None:
            raise NotFoundError(f"no webhook endpoint {endpoint_id}")
        return endpoint_view(row, secret=True)

    # -- endpoint health: decided, written and kept here only ---------------------------------
    def assess(self, outcomes: Iterable[tuple[str, bool, datetime]], now: datetime) -> HealthChange:
        """What a batch of attempt outcomes (endpoint id, ok, attempted at) does to endpoints'
        health: the new start of each failure streak, and the endpoints to disable."""
        streaks: dict[str, datetime | None] = {}
        for endpoint_id, ok, attempted_at in outcomes:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None:
                continue  # the hook, or a deleted endpoint: no health to track
            since = streaks.get(endpoint_id, endpoint.failing_since)
            streaks[endpoint_id] = None if ok else (since or attempted_at)
        change = HealthChange()
        for endpoint_id, since in streaks.items():
            endpoint = self.endpoints[endpoint_id]
            if since != endpoint.failing_since:
                change.failing_since[endpoint_id] = since
            if endpoint.status == ENABLED and should_disable_endpoint(since, now):
                disabled = replace(
                    endpoint, status=DISABLED, failing_since=since,
                    disabled_reason=DISABLE_REASON, updated_at=now,
                )  # fmt: skip
                event = endpoint_event(EventType.ENDPOINT_DISABLED.value, disabled, now)
                change.disabled.append((disabled, event))
        return change

    async def record_attempts(
        self, attempts: list[AttemptRow], updates: list[DeliveryUpdate], change: HealthChange
    ) -> None:
        """One commit: the attempts, their deliveries, and the endpoints' health; memory after."""

        def write(uow: UnitOfWork) -> list[tuple[EndpointRow, EventRow]]:
            uow.webhooks.record_attempts(attempts, updates, change.failing_since)
            disabled = []
            for endpoint, event in change.disabled:
                row = uow.webhooks.update_endpoint(
                    endpoint.id, status=DISABLED, disabled_reason=endpoint.disabled_reason,
                    updated_at=endpoint.updated_at,
                )  # fmt: skip
                if row is not None:
                    uow.events.insert_events([event])
                    disabled.append((row, event))
            return disabled

        def committed(disabled: list[tuple[EndpointRow, EventRow]]) -> None:
            for endpoint_id, since in change.failing_since.items():
                current = self.endpoints.get(endpoint_id)
                if current is not None and current.failing_since != since:
                    self.endpoints[endpoint_id] = replace(current, failing_since=since)
            for row, event in disabled:
                self.remember(row)
                metrics.WEBHOOK_ENDPOINTS_DISABLED.inc()
                log.warning(
                    "webhook endpoint %s of store %s disabled: %s (event %s)",
                    row.id, row.store_id, row.disabled_reason, event.id,
                )  # fmt: skip

        await self.db.write(write, kind="webhooks", on_commit=committed)

    # -- test and redelivery ----------------------------------------------------------------
    async def send_test(self, store_id: str, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.owned(store_id, endpoint_id)
        if endpoint.status != ENABLED:
            raise ConflictError("endpoint_disabled", "enable the endpoint before testing it")
        now = self.clock.now()
        event = endpoint_event(EventType.PING.value, endpoint, now)
        delivery = NewDelivery(new_delivery_id(), event.id, endpoint.id, store_id, now)

        def write(uow: UnitOfWork) -> None:
            uow.events.insert_events([event])
            uow.webhooks.insert_deliveries([delivery])

        await self.db.write(
            write,
            kind="webhooks",
            on_commit=lambda _: self._deliveries_added([delivery], {event.id: event.payload}),
        )
        return self._new_delivery_view(delivery, EventType.PING.value)

    def _deliveries_added(self, made: list[NewDelivery], payloads: dict[str, str]) -> None:
        if self.listener is not None and made:
            self.listener.deliveries_added(made, payloads)

    async def redeliver(
        self, store_id: str, event: EventRow, payload: object
    ) -> list[dict[str, Any]]:
        """Deliver the store's `event` again: to one endpoint, or to every enabled one."""
        endpoint_id = parse_redelivery(payload)
        if endpoint_id is not None:
            try:
                endpoint = self.owned(store_id, endpoint_id)
            except NotFoundError:
                raise ValidationError(
                    "unknown_endpoint", "endpoint_id is not an endpoint of this store",
                    "endpoint_id",
                ) from None  # fmt: skip
            if endpoint.status != ENABLED:
                raise ConflictError("endpoint_disabled", "enable the endpoint before redelivering")
            targets = [endpoint]
        else:
            targets = [
                e for e in self.endpoints.values()
                if e.store_id == store_id and e.status == ENABLED and e.wants(event.type)
            ]  # fmt: skip
        now = self.clock.now()
        made = [
            NewDelivery(new_delivery_id(), event.id, e.id, store_id, now)
            for e in sorted(targets, key=lambda e: e.created_at)
        ]
        await self.db.write(
            lambda c: c.webhooks.insert_deliveries(made),
            kind="webhooks",
            on_commit=lambda _: self._deliveries_added(made, {event.id: event.payload}),
        )
        return [self._new_delivery_view(d, event.type) for d in made]

    def _new_delivery_view(self, d: NewDelivery, event_type: str) -> dict[str, Any]:
        row = DeliveryRow(
            d.id, d.event_id, d.endpoint_id, d.store_id, "pending", 0, d.created_at, None, None,
            d.created_at, event_type,
        )  # fmt: skip
        return delivery_view(row, [])

    # -- reads --------------------------------------------------------------------------------
    def get(self, store_id: str, endpoint_id: str) -> dict[str, Any]:
        return endpoint_view(self.owned(store_id, endpoint_id))

    def list_endpoints(
        self, store_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        mine = sorted(
            (e for e in self.endpoints.values() if e.store_id == store_id),
            key=lambda e: (e.created_at, e.id),
            reverse=True,
        )
        if starting_after is not None:
            cursor = own_cursor(self.endpoints.get(starting_after), store_id, "an endpoint")
            mine = [e for e in mine if (e.created_at, e.id) < (cursor.created_at, cursor.id)]
        return [endpoint_view(e) for e in mine[:limit]], len(mine) > limit

    async def deliveries(
        self,
        store_id: str,
        limit: int,
        starting_after: str | None,
        endpoint_id: str | None = None,
        event_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The delivery log, newest first, each delivery with its attempts."""

        def read(uow: UnitOfWork) -> tuple[list[dict[str, Any]], bool]:
            after = None
            if starting_after is not None:
                found = uow.webhooks.get_delivery(starting_after)
                after = own_cursor(found, store_id, "a delivery")
            rows, more = uow.webhooks.list_deliveries(
                store_id, limit, endpoint_id=endpoint_id, event_id=event_id, after=after
            )
            attempts = uow.webhooks.attempts_for([d.id for d in rows])
            return [delivery_view(d, attempts[d.id]) for d in rows], more

        return await self.db.read(read)
