"""PostgreSQL commits concurrently: an event numbered before another may commit after it.

The outbox must not skip it. Fan-out takes only events of transactions older than every running
one (the snapshot's xmin) and orders the outbox by (transaction, seq), so a late committer is
fanned out when it commits, never passed over.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from indexer.store.postgres.database import PostgresStorage
from indexer.store.rows import EventRow, StoreRow

T0 = datetime(2026, 11, 29, tzinfo=UTC)
STORE = StoreRow("st_" + "P" * 22, "pg", "xpub-pg", "chain-pg", T0)


def event(n: int) -> EventRow:
    return EventRow(f"evt_{n:022d}", STORE.id, "invoice.created", None, "{}", T0)


async def test_an_event_committed_after_a_later_numbered_one_is_still_fanned_out(
    postgres_url: str,
) -> None:
    storage = PostgresStorage(postgres_url, pool_size=4)
    try:
        await storage.write(lambda uow: uow.stores.insert_store(STORE))
        # given a transaction that inserted event 1 and has not committed yet
        with psycopg.connect(postgres_url) as slow:
            slow.execute(
                "INSERT INTO events (id, store_id, type, payload, created_at) "
                "VALUES (%s, %s, 'invoice.created', '{}', %s)",
                [event(1).id, STORE.id, T0],
            )
            # and event 2, inserted and committed after it
            await storage.write(lambda uow: uow.events.insert_events([event(2)]))
            numbered = dict(
                await storage.read_sql(lambda c: c.execute("SELECT id, seq FROM events").fetchall())
            )
            assert numbered == {event(2).id: 2}  # seq 1 is taken by the open transaction

            # when the outbox is fanned out while event 1's transaction is still open
            cursor = await storage.read(lambda uow: uow.webhooks.outbox_cursor())
            first = await storage.write(lambda uow: uow.webhooks.fan_out(cursor, T0, hook=True))
            # then nothing is passed over: event 2 waits behind the open transaction
            assert first.events == 0

            slow.commit()

        # and once it commits, both are fanned out, the earlier-numbered one included
        second = await storage.write(lambda uow: uow.webhooks.fan_out(cursor, T0, hook=True))
        assert sorted(d.event_id for d in second.deliveries) == [event(1).id, event(2).id]
        assert await storage.read(lambda uow: uow.webhooks.outbox_cursor()) == second.last_seq
    finally:
        await storage.close()
