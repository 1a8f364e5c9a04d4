"""Leases: work that one process at a time may do, when several share one database.

Each network's chain tail, and (on a shared store) the webhook dispatcher, the expirer and the
other singleton workers, run only in the process holding their lease. A lease lasts `ttl`
seconds and is renewed every `ttl / 3`; a holder that dies or stalls loses it when it expires,
and another process takes over. The fencing token grows at every change of holder, and every
transaction that moves a chain cursor renews the lease with its token first (`fence`): a holder
that lost its lease — paused, partitioned, or just slow — can never commit a block after it.
On a store only one process can open (DuckDB), leases cost one UPDATE per block and never wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from indexer import metrics
from indexer.domain.clock import Clock
from indexer.domain.errors import ChainpayError
from indexer.store.port import Storage, UnitOfWork

log = logging.getLogger(__name__)


class LeaseLost(ChainpayError):
    """This process no longer holds the lease (another took over): its work is refused."""


def process_identity() -> str:
    """host:pid:random — unique per process, readable in /readyz and the leases table."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leases:
    """This process's leases on a store."""

    def __init__(self, db: Storage, clock: Clock, holder: str, ttl: float, poll: float) -> None:
        self.db = db
        self.clock = clock
        self.holder = holder
        self.ttl = ttl
        self.poll = poll  # seconds between tries while another process holds a lease

    def _until(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.ttl)

    async def acquire(self, name: str) -> int | None:
        now, until = self.clock.now(), self._until()
        return await self.db.write(
            lambda uow: uow.leases.acquire(name, self.holder, now, until), kind="lease"
        )

    async def renew(self, name: str, token: int) -> bool:
        until = self._until()
        return await self.db.write(
            lambda uow: uow.leases.renew(name, self.holder, token, until), kind="lease"
        )

    async def release(self, name: str, token: int) -> None:
        now = self.clock.now()
        await self.db.write(
            lambda uow: uow.leases.release(name, self.holder, token, now), kind="lease"
        )

    async def holder_of(self, name: str) -> str | None:
        now = self.clock.now()
        leases = await self.db.read(lambda uow: uow.leases.all_leases())
        held = [lease for lease in leases if lease.name == name and lease.expires_at > now]
        return held[0].holder if held else None

    def fence(self, name: str, token: int) -> Callable[[UnitOfWork], None]:
        """A check for the start of a transaction: renews the lease with `token`, or raises
        LeaseLost (the transaction then commits nothing)."""

        def check(uow: UnitOfWork) -> None:
            if not uow.leases.renew(name, self.holder, token, self._until()):
                raise LeaseLost(f"lease {name} lost (token {token}): another process took over")

        return check


def leased(
    leases: Leases, name: str, loop: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """`loop`, run only while this process holds the lease `name` (a singleton worker)."""

    async def run() -> None:
        while True:
            token = await leases.acquire(name)
            if token is None:
                metrics.LEASE_HELD.labels(name).set(0)
                await asyncio.sleep(leases.poll)
                continue
            metrics.LEASE_HELD.labels(name).set(1)
            log.info("%s: this process holds the lease (token %d)", name, token)
            task: asyncio.Future[None] = asyncio.ensure_future(loop())
            try:
                while not task.done():
                    await asyncio.wait({task}, timeout=leases.ttl / 3)
                    if not task.done() and not await leases.renew(name, token):
                        log.warning("%s: lease lost; stopping here", name)
                        break
            finally:
                metrics.LEASE_HELD.labels(name).set(0)
                if not task.done():
                    task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            failure = task.exception() if task.done() and not task.cancelled() else None
            if failure is not None:
                raise failure  # the supervisor restarts it

    run.__qualname__ = f"leased({name})"
    return run
