"""Queries on webhook endpoints, deliveries, attempts and the outbox fan-out cursor.

Every function runs on the caller's connection: inside `Database.write` they are part of its
transaction, so they only touch the database (no clock, no memory, no network).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from indexer.store.errors import StaleCursor
from indexer.store.repositories.base import Repository
from indexer.store.rows import (
    HOOK_ENDPOINT,
    PING,
    AttemptRow,
    DeliveryRow,
    DeliveryUpdate,
    EndpointRow,
    FanOut,
    NewDelivery,
    PendingDelivery,
)
from indexer.store.sql import tx_horizon

# The outbox position: (the inserting transaction's id, seq), ordered as a pair. Concurrent
# committers (PostgreSQL) can commit a lower seq after a higher one, but never an older
# transaction after the horizon has passed it. On DuckDB `tx` is always 0: the position is the
# seq. It crosses the port as one int (tx in the high bits), opaque to callers.
_AFTER = "(tx > ? OR (tx = ? AND seq > ?))"
_SEQ_BITS = 64


def position(tx: int, seq: int) -> int:
    return (tx << _SEQ_BITS) | seq


def unpack(cursor: int) -> tuple[int, int]:
    return cursor >> _SEQ_BITS, cursor & ((1 << _SEQ_BITS) - 1)


# The same id shape as `new_delivery_id`, generated inside DuckDB for set-based fan-out.
_SQL_DELIVERY_ID = "'dlv_' || replace(gen_random_uuid()::VARCHAR, '-', '')"


_ENDPOINT_COLUMNS = (
    "id, store_id, url, description, events, secret, previous_secret, "
    "previous_secret_expires_at, status, disabled_reason, failing_since, created_at, "
    "updated_at, deleted_at"
)


def _endpoint(row: Sequence[Any]) -> EndpointRow:
    values = list(row)
    values[4] = tuple(values[4]) if values[4] is not None else None
    return EndpointRow(*values)


# Columns an update may set; values are taken as given (None clears).
_UPDATABLE = {
    "url", "description", "events", "secret", "previous_secret", "previous_secret_expires_at",
    "status", "disabled_reason", "failing_since", "updated_at", "deleted_at",
}  # fmt: skip


# --- fan-out -----------------------------------------------------------------------------------


# --- dispatch ----------------------------------------------------------------------------------


# --- the delivery log ------------------------------------------------------------------------


_DELIVERY_COLUMNS = (
    "d.id, d.event_id, d.endpoint_id, d.store_id, d.status, d.attempts, d.next_attempt_at, "
    "d.last_attempt_at, d.delivered_at, d.created_at, e.type"
)


class SqlWebhookRepository(Repository):
    """The webhooks repository: its SQL on one connection."""

    def insert_endpoint(self, e: EndpointRow) -> None:
        self.conn.execute(
            f"INSERT INTO webhook_endpoints ({_ENDPOINT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                e.id, e.store_id, e.url, e.description,
                list(e.events) if e.events is not None else None,
                e.secret, e.previous_secret, e.previous_secret_expires_at, e.status,
                e.disabled_reason, e.failing_since, e.created_at, e.updated_at, e.deleted_at,
            ],
        )  # fmt: skip

    def update_endpoint(self, endpoint_id: str, **changes: Any) -> EndpointRow | None:
        """Set the given columns of a live endpoint; the row after the change, or None."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        params = [list(v) if k == "events" and v is not None else v for k, v in changes.items()]
        assignments = ", ".join(f"{k} = ?" for k in changes)
        row = self.conn.execute(
            f"UPDATE webhook_endpoints SET {assignments} WHERE id = ? AND deleted_at IS NULL "
            f"RETURNING {_ENDPOINT_COLUMNS}",
            [*params, endpoint_id],
        ).fetchone()
        return _endpoint(row) if row else None

    def live_endpoints(self) -> list[EndpointRow]:
        """Every endpoint not deleted (the dispatcher and API keep them in memory)."""
        rows = self.conn.execute(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE deleted_at IS NULL"
        ).fetchall()
        return [_endpoint(r) for r in rows]

    def get_endpoint(self, endpoint_id: str) -> EndpointRow | None:
        row = self.conn.execute(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?", [endpoint_id]
        ).fetchone()
        return _endpoint(row) if row else None

    def cancel_pending(self, endpoint_id: str) -> int:
        """Cancel an endpoint's pending deliveries (it was deleted); returns how many."""
        rows = self.conn.execute(
            "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL "
            "WHERE endpoint_id = ? AND status = 'pending' RETURNING id",
            [endpoint_id],
        ).fetchall()
        return len(rows)

    def outbox_cursor(self) -> int:
        row = self.conn.execute(
            "SELECT last_tx, last_seq FROM outbox_cursor WHERE id = 1"
        ).fetchone()
        return position(int(row[0] or 0), int(row[1])) if row else 0

    def has_events_after(self, seq: int) -> bool:
        tx, last = unpack(seq)
        return (
            self.conn.execute(
                f"SELECT 1 FROM events WHERE {_AFTER} LIMIT 1", [tx, tx, last]
            ).fetchone()
            is not None
        )

    def fan_out(self, cursor: int, now: datetime, hook: bool, limit: int = 1000) -> FanOut:
        """Turn the next events after `cursor` into deliveries and advance the cursor.

        `cursor` is the caller's copy of `outbox_cursor`; the update that advances it checks it,
        so a stale copy fails the transaction instead of skipping or repeating events. One
        statement per target kind joins the events with the enabled endpoints of their store, so
        fanning 1,000 events out to 50 endpoints is one set-based insert, not 50,000 rows of
        parameters. Ping events are never fanned out: /test creates their one delivery itself.
        This runs on the writer inside the transactions of concurrent API requests, so it does as
        little as it can: no insert while no endpoint is enabled, payloads read only for events
        that got a delivery.
        """
        tx, seq = unpack(cursor)
        horizon = tx_horizon(self.conn)
        picked = self.conn.execute(
            f"SELECT tx, seq FROM events WHERE {_AFTER} AND tx < ? ORDER BY tx, seq LIMIT ?",
            [tx, tx, seq, horizon, limit],
        ).fetchall()
        if not picked:
            return FanOut(cursor, 0, [], {})
        count = len(picked)
        last_tx, last_seq = int(picked[-1][0] or 0), int(picked[-1][1])
        last = position(last_tx, last_seq)
        # the picked events: after the cursor, up to and including the last one picked
        window = f"{_AFTER} AND (tx < ? OR (tx = ? AND seq <= ?))"
        bounds = [tx, tx, seq, last_tx, last_tx, last_seq]
        enabled_row = self.conn.execute(
            "SELECT count(*) FROM webhook_endpoints WHERE status = 'enabled' AND deleted_at IS NULL"
        ).fetchone()
        enabled = int(enabled_row[0]) if enabled_row else 0
        rows: list[Any] = []
        if enabled:
            rows = self.conn.execute(
                "INSERT INTO deliveries (id, event_id, endpoint_id, store_id, status, attempts, "
                "next_attempt_at, created_at) "
                f"SELECT {_SQL_DELIVERY_ID}, e.id, w.id, e.store_id, 'pending', 0, ?, ? "
                "FROM events e JOIN webhook_endpoints w ON w.store_id = e.store_id "
                f"WHERE {window.replace('tx', 'e.tx').replace('seq', 'e.seq')} AND e.type <> ? "
                "AND w.status = 'enabled' AND w.deleted_at IS NULL "
                "AND e.created_at >= w.created_at "
                "AND (w.events IS NULL OR list_contains(w.events, e.type)) "
                "RETURNING id, event_id, endpoint_id, store_id, created_at",
                [now, now, *bounds, PING],
            ).fetchall()
        if hook:
            rows += self.conn.execute(
                "INSERT INTO deliveries (id, event_id, endpoint_id, store_id, status, attempts, "
                "next_attempt_at, created_at) "
                f"SELECT {_SQL_DELIVERY_ID}, id, ?, store_id, 'pending', 0, ?, ? FROM events "
                f"WHERE {window} AND type <> ? "
                "RETURNING id, event_id, endpoint_id, store_id, created_at",
                [HOOK_ENDPOINT, now, now, *bounds, PING],
            ).fetchall()
        moved = self.conn.execute(
            "UPDATE outbox_cursor SET last_tx = ?, last_seq = ? "
            "WHERE id = 1 AND coalesce(last_tx, 0) = ? AND last_seq = ? RETURNING last_seq",
            [last_tx, last_seq, tx, seq],
        ).fetchall()
        if not moved:
            raise StaleCursor(f"the outbox cursor is not at {cursor}")
        payloads: dict[str, str] = {}
        if rows:
            payloads = dict(
                self.conn.execute(
                    "SELECT id, payload FROM events WHERE id IN (SELECT unnest(?))",
                    [sorted({r[1] for r in rows})],
                ).fetchall()
            )
        return FanOut(last, count, [NewDelivery(*r) for r in rows], payloads)

    def insert_deliveries(self, deliveries: list[NewDelivery]) -> None:
        """Deliveries made by hand (a test ping, a redelivery): due at once."""
        if not deliveries:
            return
        params: list[Any] = []
        for d in deliveries:
            params += [d.id, d.event_id, d.endpoint_id, d.store_id, d.created_at, d.created_at]
        self.conn.execute(
            "INSERT INTO deliveries (id, event_id, endpoint_id, store_id, status, attempts, "
            "next_attempt_at, created_at) VALUES "
            + ",".join(["(?, ?, ?, ?, 'pending', 0, ?, ?)"] * len(deliveries)),
            params,
        )

    def pending_deliveries(
        self, hook: bool, endpoint_id: str | None = None
    ) -> list[PendingDelivery]:
        """Pending deliveries to enabled endpoints (and to the hook when it is configured).

        Filtered on `status = 'pending'`, so start-up never walks the delivered history.
        """
        where = "d.status = 'pending' AND (" + (
            "(w.status = 'enabled' AND w.deleted_at IS NULL)"
            + (" OR d.endpoint_id = ?" if hook else "")
            + ")"
        )
        params: list[Any] = [HOOK_ENDPOINT] if hook else []
        if endpoint_id is not None:
            where += " AND d.endpoint_id = ?"
            params.append(endpoint_id)
        rows = self.conn.execute(
            "SELECT d.id, d.event_id, d.endpoint_id, d.attempts, d.next_attempt_at, d.created_at "
            "FROM deliveries d LEFT JOIN webhook_endpoints w ON w.id = d.endpoint_id "
            f"WHERE {where}",
            params,
        ).fetchall()
        return [PendingDelivery(*r) for r in rows]

    def event_payloads(self, event_ids: Sequence[str]) -> dict[str, str]:
        if not event_ids:
            return {}
        rows = self.conn.execute(
            "SELECT id, payload::VARCHAR FROM events WHERE id IN (SELECT unnest(?))",
            [list(event_ids)],
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def record_attempts(
        self,
        attempts: list[AttemptRow],
        updates: list[DeliveryUpdate],
        failing_since: dict[str, datetime | None],
    ) -> None:
        """One batch of finished attempts: their rows, their deliveries, their endpoints' health.

        One list parameter per column (`unnest`), not one parameter per value: DuckDB binds
        parameters slowly, and a batch holds up to a thousand attempts.
        """
        if attempts:
            columns = list(zip(*[
                (a.id, a.delivery_id, a.event_id, a.endpoint_id, a.attempted_at, a.status_code,
                 a.latency_ms, a.error, a.response_excerpt)
                for a in attempts
            ], strict=True))  # fmt: skip
            self.conn.execute(
                "INSERT INTO delivery_attempts SELECT unnest(?), unnest(?), unnest(?), unnest(?), "
                "unnest(?::TIMESTAMPTZ[]), unnest(?::INTEGER[]), unnest(?::INTEGER[]), "
                "unnest(?::VARCHAR[]), unnest(?::VARCHAR[])",
                [list(c) for c in columns],
            )
        if updates:
            columns = list(zip(*[
                (u.id, u.status, u.attempts, u.next_attempt_at, u.last_attempt_at, u.delivered_at)
                for u in updates
            ], strict=True))  # fmt: skip
            # A delivery cancelled meanwhile (its endpoint was deleted) stays cancelled.
            self.conn.execute(
                "UPDATE deliveries SET status = v.status, attempts = v.attempts, "
                "next_attempt_at = v.next_at, last_attempt_at = v.last_at, "
                "delivered_at = v.delivered_at "
                "FROM (SELECT unnest(?::VARCHAR[]) AS id, unnest(?::VARCHAR[]) AS status, "
                "unnest(?::INTEGER[]) AS attempts, unnest(?::TIMESTAMPTZ[]) AS next_at, "
                "unnest(?::TIMESTAMPTZ[]) AS last_at, unnest(?::TIMESTAMPTZ[]) AS delivered_at) v "
                "WHERE deliveries.id = v.id AND deliveries.status = 'pending'",
                [list(c) for c in columns],
            )
        for endpoint_id, since in failing_since.items():
            self.conn.execute(
                "UPDATE webhook_endpoints SET failing_since = ? WHERE id = ?", [since, endpoint_id]
            )

    def list_deliveries(
        self,
        store_id: str,
        limit: int,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        after: DeliveryRow | None = None,
    ) -> tuple[list[DeliveryRow], bool]:
        """Newest first; `after` is the last delivery of the previous page."""
        where = ["d.store_id = ?"]
        params: list[Any] = [store_id]
        if endpoint_id is not None:
            where.append("d.endpoint_id = ?")
            params.append(endpoint_id)
        if event_id is not None:
            where.append("d.event_id = ?")
            params.append(event_id)
        if after is not None:
            where.append("(d.created_at, d.id) < (?, ?)")
            params += [after.created_at, after.id]
        rows = self.conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d LEFT JOIN events e ON e.id = d.event_id "
            f"WHERE {' AND '.join(where)} ORDER BY d.created_at DESC, d.id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        return [DeliveryRow(*r) for r in rows[:limit]], len(rows) > limit

    def get_delivery(self, delivery_id: str) -> DeliveryRow | None:
        row = self.conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d LEFT JOIN events e ON e.id = d.event_id "
            "WHERE d.id = ?",
            [delivery_id],
        ).fetchone()
        return DeliveryRow(*row) if row else None

    def attempts_for(self, delivery_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
        result: dict[str, list[AttemptRow]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return result
        rows = self.conn.execute(
            "SELECT id, delivery_id, event_id, endpoint_id, attempted_at, status_code, latency_ms, "
            "error, response_excerpt FROM delivery_attempts "
            "WHERE delivery_id IN (SELECT unnest(?)) ORDER BY attempted_at, id",
            [list(delivery_ids)],
        ).fetchall()
        for r in rows:
            result[r[1]].append(AttemptRow(*r))
        return result
