"""The outbox fan-out query on a real DuckDB file: what it skips, what it refuses, what it reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from indexer.domain.ids import new_id
from indexer.store.duckdb.connection import Connection, migrate, open_connection
from indexer.store.errors import StaleCursor
from indexer.store.repositories.events import SqlEventRepository
from indexer.store.repositories.webhooks import SqlWebhookRepository
from indexer.store.rows import EndpointRow, EventRow, FanOut


# The adapter's repositories on the test's connection (this file tests the DuckDB SQL).
def insert_events(conn: Connection, events: list[EventRow]) -> None:
    SqlEventRepository(conn).insert_events(events)


def insert_endpoint(conn: Connection, endpoint: EndpointRow) -> None:
    SqlWebhookRepository(conn).insert_endpoint(endpoint)


def fan_out(conn: Connection, cursor: int, now: datetime, hook: bool) -> FanOut:
    return SqlWebhookRepository(conn).fan_out(cursor, now, hook)


def outbox_cursor(conn: Connection) -> int:
    return SqlWebhookRepository(conn).outbox_cursor()


STORE = "st_" + "A" * 22
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> Connection:
    connection = open_connection(tmp_path / "outbox.duckdb")
    migrate(connection)
    return connection


def add_events(conn: Connection, count: int, at: datetime) -> list[str]:
    events = []
    for _ in range(count):
        event_id = new_id("evt")
        body = json.dumps({"id": event_id, "type": "invoice.created"})
        events.append(EventRow(event_id, STORE, "invoice.created", None, body, at))
    insert_events(conn, events)
    return [e.id for e in events]


def add_endpoint(conn: Connection, at: datetime, status: str = "enabled") -> str:
    endpoint_id = new_id("we")
    insert_endpoint(
        conn,
        EndpointRow(
            endpoint_id, STORE, "https://merchant.example/hook", None, None, "whsec_test",
            None, None, status, None, None, at, at,
        ),
    )  # fmt: skip
    return endpoint_id


def test_without_an_enabled_endpoint_the_cursor_passes_the_events_and_makes_nothing(
    conn: Connection,
) -> None:
    # given events and only a disabled endpoint
    add_endpoint(conn, T0, status="disabled")
    add_events(conn, 3, T0 + timedelta(seconds=1))

    # when they are fanned out
    result = fan_out(conn, outbox_cursor(conn), T0, hook=False)

    # then the cursor is past them and no delivery exists
    assert result.events == 3
    assert result.deliveries == [] and result.payloads == {}
    assert outbox_cursor(conn) == result.last_seq > 0
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)


def test_an_endpoint_enabled_later_gets_the_later_events_with_their_payloads(
    conn: Connection,
) -> None:
    # given events fanned out before any endpoint existed
    add_events(conn, 2, T0)
    fan_out(conn, outbox_cursor(conn), T0, hook=False)

    # when an endpoint is created and more events follow
    endpoint_id = add_endpoint(conn, T0 + timedelta(seconds=5))
    later = add_events(conn, 2, T0 + timedelta(seconds=6))
    result = fan_out(conn, outbox_cursor(conn), T0 + timedelta(seconds=7), hook=False)

    # then only the later events are delivered, and their payloads come back with them
    assert sorted(d.event_id for d in result.deliveries) == sorted(later)
    assert {d.endpoint_id for d in result.deliveries} == {endpoint_id}
    assert sorted(result.payloads) == sorted(later)
    assert all(json.loads(p)["id"] == e for e, p in result.payloads.items())


def test_a_stale_cursor_is_refused_and_changes_nothing(conn: Connection) -> None:
    # given an endpoint and events already fanned out once
    add_endpoint(conn, T0)
    add_events(conn, 2, T0 + timedelta(seconds=1))
    first = fan_out(conn, outbox_cursor(conn), T0, hook=False)
    add_events(conn, 1, T0 + timedelta(seconds=2))

    # when a caller fans out from a cursor that is no longer the stored one
    conn.execute("BEGIN TRANSACTION")
    with pytest.raises(StaleCursor):
        fan_out(conn, 0, T0, hook=False)
    conn.execute("ROLLBACK")

    # then the events are not delivered twice and the cursor has not moved
    assert outbox_cursor(conn) == first.last_seq
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (2,)


def test_the_hook_gets_every_event_even_without_endpoints(conn: Connection) -> None:
    # given events and no endpoint, with the in-process hook configured
    ids = add_events(conn, 3, T0)

    # when they are fanned out
    result = fan_out(conn, outbox_cursor(conn), T0, hook=True)

    # then each event has one hook delivery and its payload
    assert sorted(d.event_id for d in result.deliveries) == sorted(ids)
    assert sorted(result.payloads) == sorted(ids)
