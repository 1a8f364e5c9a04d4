"""The expirer works in batches sized to hold the writer for at most its budget (issue 10, 2b).

Expiring 35,000 invoices in one transaction held the writer for over a second; every API write
queued behind it. Batches now adapt to a time budget; these tests pin the adaptation (never a
timing assertion: the budget is set far below or above what a batch costs).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from api.bootstrap import Gateway
from indexer.domain.clock import FrozenClock
from indexer.services.invoices import NewInvoice
from indexer.workers.expirer import Expirer
from tests.support.api import Merchant

COUNT = 1500


async def open_invoices(gateway: Gateway, merchant: Merchant) -> None:
    store = gateway.stores.stores[merchant.store_id]
    command = NewInvoice("ethereum", "USDT", 10**6, None, None, 60, None)
    for _ in range(COUNT // 100):
        await asyncio.gather(
            *(gateway.invoices.create(store, command, None, "h") for _k in range(100))
        )  # fmt: skip


async def statuses(gateway: Gateway) -> dict[str, int]:
    rows = await gateway.db.read_sql(
        lambda c: c.execute("SELECT status, count(*) FROM invoices GROUP BY 1").fetchall()
    )
    return {status: int(n) for status, n in rows}


def later() -> FrozenClock:
    return FrozenClock(datetime.now(UTC) + timedelta(seconds=120))


async def test_batches_shrink_to_the_budget_and_every_due_invoice_expires(
    gateway: Gateway, merchant: Merchant
) -> None:
    # given 1,500 invoices past their expiry, and a budget no batch can meet
    await open_invoices(gateway, merchant)
    expirer = Expirer(gateway.db, gateway.settings, later(), budget=1e-6)

    # when one tick runs
    result = await expirer.tick()

    # then every one expired, in batches that shrank to the smallest size
    assert len(result.invoices) == COUNT
    assert await statuses(gateway) == {"expired": COUNT}
    assert expirer.batch == expirer.min_batch


async def test_batches_grow_while_under_budget_up_to_the_cap(
    gateway: Gateway, merchant: Merchant
) -> None:
    # given 1,500 due invoices and a budget every batch meets
    await open_invoices(gateway, merchant)
    expirer = Expirer(gateway.db, gateway.settings, later(), budget=1e6)

    # when one tick runs
    result = await expirer.tick()

    # then all expired and the batch grew to the cap
    assert len(result.invoices) == COUNT
    assert expirer.batch == expirer.max_batch
    # and a second tick finds nothing more to do
    assert (await expirer.tick()).invoices == []
