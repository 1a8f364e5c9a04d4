"""The storage port's contract: what every adapter must do, tested through the port alone.

Each test takes `storage` (an adapter behind indexer.store.port.Storage, migrated and empty) and
uses only the port, its records and its errors, so a second adapter (PostgreSQL, issue 12) runs
this same suite by adding itself to the `storage` fixture's parameters.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from indexer.domain.invoice import PaymentState, Status
from indexer.domain.records import Invoice, Payment
from indexer.domain.sweep import Sweep
from indexer.store.errors import StaleCursor, StoreError, UniqueViolation
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import (
    ApiKeyRow,
    Cursor,
    EndpointRow,
    EventRow,
    IdempotentResponse,
    StoredBlock,
    StoreRow,
)

UINT256_MAX = 2**256 - 1
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def duckdb_storage(tmp_path: Path) -> Storage:
    from indexer.store.duckdb.database import Database

    database = Database(tmp_path / "contract.duckdb")
    database.migrate()
    return database


def postgres_storage(request: pytest.FixtureRequest) -> Storage:
    from indexer.store.postgres.database import PostgresStorage

    url = request.getfixturevalue("postgres_url")  # a fresh, migrated database
    return PostgresStorage(url, pool_size=8)


@pytest.fixture(params=["duckdb", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    made = duckdb_storage(tmp_path) if request.param == "duckdb" else postgres_storage(request)
    made.write_sync(lambda uow: uow.stores.insert_store(STORE))
    yield made
    await made.close()


STORE = StoreRow("st_" + "C" * 22, "contract", "xpub-contract", "chain-contract", T0)


def invoice(amount: int = 10**6, **changes: Any) -> Invoice:
    made = Invoice(
        id="inv_" + secrets.token_hex(11), store_id=STORE.id, network="ethereum",
        asset="USDT", amount=amount, address="0x" + secrets.token_hex(20),
        address_index=secrets.randbelow(2**31), status=Status.NEW, exception=None,
        amount_received=0, amount_confirmed=0, reorg_flagged=False, order_id=None,
        metadata={"k": "v"}, redirect_url=None, expires_at=T0 + timedelta(minutes=15),
        monitoring_until=T0 + timedelta(days=1), created_at=T0, updated_at=T0, paid_at=None,
    )  # fmt: skip
    return replace(made, **changes)


def payment(inv: Invoice, amount: int, block: int, log_index: int = 0) -> Payment:
    return Payment(
        network=inv.network, tx_hash="0x" + secrets.token_hex(32), log_index=log_index,
        invoice_id=inv.id, store_id=inv.store_id, address=inv.address.lower(), asset=inv.asset,
        amount=amount, counted=True, block_number=block, block_hash="0x" + "ab" * 32,
        block_time=T0, confirmations=1, state=PaymentState.PENDING, first_seen_at=T0,
        confirmed_at=None, updated_at=T0,
    )  # fmt: skip


def event(n: int, invoice_id: str | None = None) -> EventRow:
    payload = f'{{"id":"evt_{n:022d}","object":"event","type":"invoice.created"}}'
    return EventRow(f"evt_{n:022d}", STORE.id, "invoice.created", invoice_id, payload, T0)


# -- writes and reads ------------------------------------------------------------------------
async def test_a_written_invoice_reads_back_exactly_with_uint256_amounts(storage: Storage) -> None:
    # given an invoice whose amounts are the largest uint256
    made = invoice(UINT256_MAX, amount_received=UINT256_MAX - 1)

    # when it is written, then read in another unit of work
    await storage.write(lambda uow: uow.invoices.add(made))
    read = await storage.read(lambda uow: uow.invoices.get_invoice(made.id))

    # then every field is what was written, to the last wei
    assert read == made


async def test_a_write_that_raises_leaves_nothing_behind(storage: Storage) -> None:
    made = invoice()

    def broken(uow: UnitOfWork) -> None:
        uow.invoices.add(made)
        uow.events.add(event(1, made.id))
        raise RuntimeError("the job failed")

    with pytest.raises(RuntimeError):
        await storage.write(broken)
    assert await storage.read(lambda uow: uow.invoices.get_invoice(made.id)) is None
    assert await storage.read(lambda uow: uow.events.get_event(event(1).id)) is None


async def test_on_commit_runs_once_after_the_commit_and_never_after_a_failure(
    storage: Storage,
) -> None:
    seen: list[object] = []
    made = invoice()
    await storage.write(lambda uow: uow.invoices.add(made) or "ok", on_commit=seen.append)
    assert seen == ["ok"]

    def broken(uow: UnitOfWork) -> None:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await storage.write(broken, on_commit=seen.append)
    assert seen == ["ok"]


async def test_a_read_sees_one_snapshot_while_writes_commit(storage: Storage) -> None:
    # given one invoice, and a read that looks twice with a commit in between
    first = invoice()
    await storage.write(lambda uow: uow.invoices.add(first))
    loop = asyncio.get_running_loop()
    second = invoice()

    def look_twice(uow: UnitOfWork) -> tuple[int, int]:
        before = len(uow.invoices.list_invoices(STORE.id, 100)[0])
        commit = storage.write(lambda w: w.invoices.add(second))
        asyncio.run_coroutine_threadsafe(commit, loop).result(timeout=10)
        return before, len(uow.invoices.list_invoices(STORE.id, 100)[0])

    # then both looks agree, and the next read sees the commit
    assert await storage.read(look_twice) == (1, 1)
    assert len((await storage.read(lambda uow: uow.invoices.list_invoices(STORE.id, 100)))[0]) == 2


async def test_concurrent_writers_all_commit(storage: Storage) -> None:
    made = [invoice() for _ in range(64)]
    await asyncio.gather(*(storage.write(lambda uow, i=i: uow.invoices.add(i)) for i in made))
    listed, more = await storage.read(lambda uow: uow.invoices.list_invoices(STORE.id, 100))
    assert {i.id for i in listed} == {i.id for i in made} and not more


# -- uniqueness ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "duplicate",
    [
        pytest.param(lambda first: replace(invoice(), address=first.address), id="address"),
        pytest.param(
            lambda first: replace(invoice(), address_index=first.address_index), id="hd-index"
        ),
        pytest.param(lambda first: replace(invoice(), id=first.id), id="invoice-id"),
    ],
)
async def test_a_second_invoice_on_a_unique_value_is_refused_and_the_first_kept(
    storage: Storage, duplicate: Callable[[Invoice], Invoice]
) -> None:
    first = invoice()
    await storage.write(lambda uow: uow.invoices.add(first))
    with pytest.raises(UniqueViolation):
        await storage.write(lambda uow: uow.invoices.add(duplicate(first)))
    assert await storage.read(lambda uow: uow.invoices.get_invoice(first.id)) == first


async def test_a_second_store_on_the_same_key_chain_is_refused(storage: Storage) -> None:
    twin = replace(STORE, id="st_" + "D" * 22)
    with pytest.raises(UniqueViolation):
        await storage.write(lambda uow: uow.stores.insert_store(twin))


async def test_a_payment_is_stored_once_per_network_tx_and_log_index(storage: Storage) -> None:
    # given an invoice and a payment to it
    inv = invoice()
    await storage.write(lambda uow: uow.invoices.add(inv))
    paid = payment(inv, UINT256_MAX, block=10)

    # when the same payment is applied again (a replay), then moved by a reorg
    await storage.write(lambda uow: uow.chain.upsert_payments([paid]))
    await storage.write(lambda uow: uow.chain.upsert_payments([paid]))
    moved = replace(paid, block_number=11, block_hash="0x" + "cd" * 32)
    await storage.write(lambda uow: uow.chain.upsert_payments([moved]))

    # then there is one payment, in its latest block, with its exact amount
    [stored] = (await storage.read(lambda uow: uow.invoices.payments_for([inv.id])))[inv.id]
    assert (stored.amount, stored.block_number) == (UINT256_MAX, 11)


# -- the outbox ------------------------------------------------------------------------------
async def test_events_fan_out_in_the_order_they_committed(storage: Storage) -> None:
    # given an endpoint, then events committed in three writes
    endpoint = EndpointRow(
        "we_" + "E" * 22, STORE.id, "https://example.com/hook", None, None, "whsec_x", None,
        None, "enabled", None, None, T0 - timedelta(days=1), T0 - timedelta(days=1),
    )  # fmt: skip
    await storage.write(lambda uow: uow.webhooks.insert_endpoint(endpoint))
    for batch in ([1, 2], [3], [4, 5]):
        await storage.write(lambda uow, b=batch: uow.events.insert_events([event(n) for n in b]))

    # when the outbox is fanned out from its cursor
    cursor = await storage.read(lambda uow: uow.webhooks.outbox_cursor())
    fanned = await storage.write(lambda uow: uow.webhooks.fan_out(cursor, T0, hook=False))

    # then every event got one delivery, and the cursor moved past them all
    assert sorted(d.event_id for d in fanned.deliveries) == [event(n).id for n in range(1, 6)]
    assert fanned.events == 5
    assert await storage.read(lambda uow: uow.webhooks.outbox_cursor()) == fanned.last_seq
    # and a fan-out from the old cursor is refused rather than delivering twice
    with pytest.raises(StaleCursor):
        await storage.write(lambda uow: uow.webhooks.fan_out(cursor, T0, hook=False))


# -- chain -------------------------------------------------------------------------------------
async def test_the_cursor_and_blocks_move_together_and_rewind(storage: Storage) -> None:
    blocks = [StoredBlock(n, f"0x{n:064x}", f"0x{n - 1:064x}", T0) for n in range(1, 6)]

    def forward(uow: UnitOfWork) -> None:
        uow.chain.insert_blocks("ethereum", blocks)
        uow.chain.save_cursor("ethereum", Cursor(5, blocks[-1].hash), T0)

    await storage.write(forward)
    assert await storage.read(lambda uow: uow.chain.get_cursor("ethereum")) == Cursor(
        5, blocks[-1].hash
    )
    hashes = await storage.read(lambda uow: uow.chain.block_hashes("ethereum", 1, 5))
    assert hashes == {b.number: b.hash for b in blocks}

    await storage.write(lambda uow: uow.chain.orphan_above("ethereum", 3, T0))
    assert await storage.read(lambda uow: uow.chain.block_hashes("ethereum", 1, 5)) == {
        b.number: b.hash for b in blocks[:3]
    }


# -- keys and idempotency ------------------------------------------------------------------
async def test_a_revoked_key_is_no_longer_active(storage: Storage) -> None:
    key = ApiKeyRow("key_" + "K" * 22, STORE.id, "hash", "cp_live_x", T0, None)
    await storage.write(lambda uow: uow.stores.insert_api_key(key))
    assert await storage.read(lambda uow: uow.stores.active_api_keys()) == [key]
    revoked = await storage.write(lambda uow: uow.stores.revoke_api_key(key.id, T0))
    assert revoked is not None and revoked.revoked_at is not None
    assert await storage.read(lambda uow: uow.stores.active_api_keys()) == []


async def test_idempotency_keys_are_kept_then_pruned_oldest_first_in_batches(
    storage: Storage,
) -> None:
    kept = [
        IdempotentResponse(STORE.id, f"k{n}", "h", 201, "{}", T0 + timedelta(seconds=n))
        for n in range(5)
    ]

    def add(uow: UnitOfWork) -> None:
        for item in kept:
            uow.idempotency.add(item)

    await storage.write(add)
    assert {i.key for i in await storage.read(lambda uow: uow.idempotency.all_responses())} == {
        f"k{n}" for n in range(5)
    }
    cutoff = T0 + timedelta(seconds=3)
    gone = await storage.write(lambda uow: uow.idempotency.delete_older_than(cutoff, 2))
    assert len(gone) == 2
    gone += await storage.write(lambda uow: uow.idempotency.delete_older_than(cutoff, 2))
    assert sorted(k for _, k in gone) == ["k0", "k1", "k2"]
    left = await storage.read(lambda uow: uow.idempotency.all_responses())
    assert sorted(i.key for i in left) == ["k3", "k4"]
    with pytest.raises(UniqueViolation):
        await storage.write(lambda uow: uow.idempotency.add(kept[4]))


async def test_a_closed_storage_refuses_work_with_a_store_error(storage: Storage) -> None:
    await storage.close()
    with pytest.raises(StoreError, match="closed"):
        await storage.write(lambda uow: None)
    with pytest.raises(StoreError, match="closed"):
        await storage.read(lambda uow: None)


# -- the books of sweeps -------------------------------------------------------------------
def sweep(inv: Invoice, block: int, log_index: int, token: str | None = "0x" + "11" * 20) -> Sweep:
    return Sweep(
        network=inv.network, block_number=block, block_hash=f"0x{block:064x}", block_time=T0,
        tx_hash="0x" + secrets.token_hex(32), log_index=log_index, address=inv.address.lower(),
        treasury="0x" + "22" * 20, asset=inv.asset, token=token, amount=5,
    )  # fmt: skip


def record(uow: UnitOfWork, *sweeps: Sweep) -> None:
    """The sweeps as the tail records their blocks: each block's sweeps replaced as a whole."""
    blocks = sorted({(swept.block_number, swept.block_hash) for swept in sweeps})
    uow.chain.replace_sweeps(sweeps[0].network, blocks, list(sweeps))


async def test_each_payment_shows_the_first_canonical_sweep_after_it(storage: Storage) -> None:
    # given a USDT invoice paid in block 10 (log 3), a sweep of it in block 11 that a reorg
    # orphans, then the new chain: the invoice paid again in block 12 (logs 7 and 9) and an ETH
    # invoice paid by its transaction's own value (log index -1) in block 12
    usdt, eth = invoice(), invoice(asset="ETH")
    await storage.write(lambda uow: (uow.invoices.add(usdt), uow.invoices.add(eth)))
    first = payment(usdt, 5, 10, 3)
    await storage.write(lambda uow: uow.chain.upsert_payments([first]))
    orphaned = sweep(usdt, 11, 0)
    await storage.write(lambda uow: record(uow, orphaned))
    await storage.write(lambda uow: uow.chain.orphan_above("ethereum", 10, T0))
    before, after, native = (
        payment(usdt, 5, 12, 7),
        payment(usdt, 5, 12, 9),
        payment(eth, 5, 12, -1),
    )
    await storage.write(lambda uow: uow.chain.upsert_payments([before, after, native]))

    # when sweeps are recorded in block 12 log 8 (between the two payments of block 12) and in
    # block 14, and of the ETH address in block 12 (log 8, the payment's own block) and 13
    middle, late = sweep(usdt, 12, 8), sweep(usdt, 14, 1)
    eth_same_block, eth_later = sweep(eth, 12, 8, token=None), sweep(eth, 13, 0, token=None)
    await storage.write(lambda uow: record(uow, middle, eth_same_block, eth_later, late))

    # then each payment names the first canonical sweep after it: the orphaned one never; within
    # a block by log index for tokens; a native payment in the sweep's own block waits for the next
    shown = await storage.read(lambda uow: uow.invoices.payments_for([usdt.id, eth.id]))
    names = {
        **{p.tx_hash: n for n, p in [("first", first), ("before", before), ("after", after),
                                     ("native", native)]},
        **{s.tx_hash: n for n, s in [("orphaned", orphaned), ("middle", middle), ("late", late),
                                     ("eth_same_block", eth_same_block), ("eth_later", eth_later)]},
    }  # fmt: skip
    swept_by = {names[p.tx_hash]: names.get(p.swept_by or "") for ps in shown.values() for p in ps}
    assert swept_by == {
        "first": "middle",
        "before": "middle",
        "after": "late",
        "native": "eth_later",
    }
