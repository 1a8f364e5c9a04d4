"""`chainpay migrate-to URL`: a DuckDB gateway's books into an empty PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.bootstrap import Gateway
from indexer.config import load_settings
from indexer.services.invoices import NewInvoice
from tests.support.api import TEST_XPUB, write_config
from tests.support.process import run


@pytest.mark.duckdb_only
async def test_a_duckdb_gateway_moves_to_postgresql_losing_nothing(
    tmp_path: Path, postgres_cluster
) -> None:  # type: ignore[no-untyped-def]
    # given a DuckDB gateway with a store, a key, invoices with events, and an idempotency key
    config = write_config(tmp_path)
    duck = Gateway(load_settings(config, env={}))
    duck.open()
    store, key = await duck.stores.create_store("shop", TEST_XPUB)
    command = NewInvoice("ethereum", "USDT", 2**200, None, {"k": "v"}, 900, None)
    made = [await duck.invoices.create(store, command, f"k{n}", "h") for n in range(3)]
    events_before = await duck.db.read_sql(
        lambda c: c.execute("SELECT id, seq, payload::VARCHAR FROM events ORDER BY seq").fetchall()
    )
    await duck.close()
    url = postgres_cluster.new_database()  # empty: migrate-to migrates it

    # when it is moved
    moved = run("--config", str(config), "migrate-to", url, "--json")

    # then every row is there, on PostgreSQL
    assert moved.returncode == 0, moved.stderr
    copied = json.loads(moved.stdout)
    assert copied["invoices"] == 3 and copied["events"] == 3 and copied["api_keys"] == 1
    (tmp_path / "pg").mkdir()
    pg_config = write_config(tmp_path / "pg", database=url)
    pg = Gateway(load_settings(pg_config, env={}))
    pg.open()
    try:
        assert pg.stores.authenticate(key.secret) is not None  # the same key works
        for reply in made:
            view = await pg.invoices.get(store.id, reply.body["id"])
            assert view == reply.body  # amounts to the last unit, metadata, addresses
        events_after = await pg.db.read_sql(
            lambda c: c.execute(
                "SELECT id, seq, payload::VARCHAR FROM events ORDER BY seq"
            ).fetchall()
        )
        assert [(i, s) for i, s, _ in events_after] == [(i, s) for i, s, _ in events_before]
        assert [json.loads(p) for *_, p in events_after] == [
            json.loads(p) for *_, p in events_before
        ]
        # and the same idempotency key replays, new invoices follow with new addresses
        again = await pg.invoices.create(pg.stores.stores[store.id], command, "k0", "h")
        assert again.replayed and again.body == made[0].body
        fresh = await pg.invoices.create(pg.stores.stores[store.id], command, None, "h")
        assert fresh.body["address"] not in {r.body["address"] for r in made}
        newest = await pg.db.read_sql(lambda c: c.execute("SELECT max(seq) FROM events").fetchall())
        assert newest[0][0] > events_before[-1][1]
    finally:
        await pg.close()

    # and a second run is refused before anything is written (exit 2, one line)
    twice = run("--config", str(config), "migrate-to", url)
    assert twice.returncode == 2
    assert "already holds chainpay data" in twice.stderr
