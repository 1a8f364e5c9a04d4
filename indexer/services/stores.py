"""Stores and API keys: creation, revocation, and authentication from an in-memory index.

Keys are 256 random bits shown once; only their SHA-256 is stored. Authentication hashes the
presented key and looks the digest up in memory (rebuilt from DuckDB at start), then compares
in constant time, so no request needs a database read to authenticate.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from indexer import deriver
from indexer.domain.clock import Clock
from indexer.domain.errors import ConflictError, NotFoundError, ValidationError
from indexer.domain.ids import looks_like, new_id
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import ApiKeyRow, StoreRow
from indexer.wallet import ExtendedPublicKey, parse_xpub

log = logging.getLogger(__name__)
KEY_PREFIX = "cpk_"
POOL_SIZE = 1024
POOL_LOW = 512


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    xpub: ExtendedPublicKey
    created_at_iso: str


@dataclass(frozen=True)
class NewKey:
    key_id: str
    store_id: str
    secret: str  # shown once, never stored


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class StoreService:
    """Owns the in-memory view of stores, keys and each store's next HD index."""

    def __init__(self, db: Storage, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.stores: dict[str, Store] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # key hash -> (key id, store id)
        self._key_ids: dict[str, str] = {}  # key id -> key hash
        self._next_index: dict[str, int] = {}
        self._pools: dict[str, dict[int, str]] = {}  # store id -> {index: address} derived ahead
        self._refilling: set[str] = set()

    def load(self, uow: UnitOfWork) -> None:
        """Rebuild the in-memory indexes from DuckDB (at start-up)."""
        for row in uow.stores.all_stores():
            self.stores[row.id] = Store(
                row.id, row.name, parse_xpub(row.evm_xpub), row.created_at.isoformat()
            )
        for key in uow.stores.active_api_keys():
            self._keys[key.key_hash] = (key.id, key.store_id)
            self._key_ids[key.id] = key.key_hash
        self._next_index = uow.invoices.next_address_indexes()

    # -- authentication ------------------------------------------------------------------
    def authenticate(self, secret: str) -> Store | None:
        digest = hash_key(secret)
        found = self._keys.get(digest)
        if found is None:
            hmac.compare_digest(digest, digest)  # same work on a miss as on a hit
            return None
        key_id, store_id = found
        if not hmac.compare_digest(self._key_ids.get(key_id, ""), digest):
            return None
        return self.stores.get(store_id)

    def allocate_index(self, store_id: str) -> int:
        """The store's next HD index; the event loop makes this atomic across requests."""
        index = self._next_index.get(store_id, 0)
        self._next_index[store_id] = index + 1
        return index

    def allocate_address(self, store: Store) -> tuple[int, str]:
        """The next HD index and its address, from the pre-derived pool when it has it.

        Derivation costs ~70 us of CPU holding the GIL; a worker process derives ahead
        (`indexer.deriver`), so requests usually only pop a ready address.
        """
        index = self.allocate_index(store.id)
        pool = self._pools.setdefault(store.id, {})
        address = pool.pop(index, None) or store.xpub.address(index)
        if len(pool) < POOL_LOW and store.id not in self._refilling:
            self._refill(store, self._next_index[store.id] + len(pool))
        return index, address

    def prefill(self) -> None:
        """Start deriving every store's next addresses now, so the first invoices find them."""
        for store in self.stores.values():
            pool = self._pools.setdefault(store.id, {})
            if store.id not in self._refilling:
                self._refill(store, self._next_index.get(store.id, 0) + len(pool))

    def _refill(self, store: Store, start: int) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # CLI use: no loop, no pool
        try:
            derived = deriver.submit(store.xpub.original, start, POOL_SIZE)
        except RuntimeError:
            log.warning("address deriver unavailable; deriving in the request", exc_info=True)
            return
        self._refilling.add(store.id)
        asyncio.wrap_future(derived).add_done_callback(
            lambda future: self._refilled(store, start, future)
        )

    def _refilled(self, store: Store, start: int, future: asyncio.Future[list[str]]) -> None:
        self._refilling.discard(store.id)
        if future.cancelled():
            return
        if future.exception() is not None:
            log.warning(
                "address derivation failed; deriving in the request", exc_info=future.exception()
            )
            return
        addresses = future.result()
        # Money goes to these addresses: check the worker against this process's own
        # derivation before any of its output is handed out.
        if not addresses or addresses[0] != store.xpub.address(start):
            log.error("address deriver disagrees with the store's key; pool discarded")
            return
        pool = self._pools[store.id]
        floor = self._next_index.get(store.id, 0)  # requests may have overtaken the worker
        for stale in [i for i in pool if i < floor]:
            del pool[stale]
        for index, address in enumerate(addresses, start):
            if index >= floor:
                pool[index] = address

    # -- commands (also run from the CLI through Database.write_sync) -----------------------
    def prepare_store(self, name: object, evm_xpub: object) -> tuple[StoreRow, ExtendedPublicKey]:
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ValidationError("invalid_name", "name must be 1-200 characters", "name")
        xpub = parse_xpub(evm_xpub)
        row = StoreRow(
            id=new_id("st"),
            name=name.strip(),
            evm_xpub=xpub.original,
            xpub_chain=xpub.fingerprint,
            created_at=self.clock.now(),
        )
        return row, xpub

    def create_store_tx(
        self, uow: UnitOfWork, name: object, evm_xpub: object
    ) -> tuple[Store, NewKey, ApiKeyRow]:
        """Create a store and its first key inside the caller's transaction (no memory change)."""
        row, xpub = self.prepare_store(name, evm_xpub)
        if uow.stores.store_by_chain(row.xpub_chain) is not None:
            raise ConflictError(
                "xpub_in_use",
                "another store already uses this extended public key; two stores on one key "
                "would hand out the same addresses",
            )
        uow.stores.insert_store(row)
        key, key_row = self._insert_key(uow, row.id)
        return Store(row.id, row.name, xpub, row.created_at.isoformat()), key, key_row

    def create_key_tx(self, uow: UnitOfWork, store_id: str) -> tuple[NewKey, ApiKeyRow]:
        if store_id not in self.stores:
            raise NotFoundError(f"no store {store_id}")
        return self._insert_key(uow, store_id)

    def revoke_key_tx(self, uow: UnitOfWork, key_id: str) -> ApiKeyRow:
        row = (
            uow.stores.revoke_api_key(key_id, self.clock.now())
            if looks_like("key", key_id)
            else None
        )
        if row is None:
            raise NotFoundError(f"no API key {key_id}")
        return row

    # -- the same commands from the running server: memory changes only after commit ------
    async def create_store(self, name: object, evm_xpub: object) -> tuple[Store, NewKey]:
        def committed(made: tuple[Store, NewKey, ApiKeyRow]) -> None:  # even on a timeout
            self.remember_store(made[0])
            self.remember_key(made[2])

        store, key, _ = await self.db.write(
            lambda c: self.create_store_tx(c, name, evm_xpub), on_commit=committed
        )
        return store, key

    async def create_key(self, store_id: str) -> NewKey:
        key, _ = await self.db.write(
            lambda c: self.create_key_tx(c, store_id),
            on_commit=lambda made: self.remember_key(made[1]),
        )
        return key

    async def revoke_key(self, key_id: str) -> None:
        # forgotten on commit even if this caller stopped waiting: a revoked key never lingers
        await self.db.write(
            lambda c: self.revoke_key_tx(c, key_id), on_commit=lambda row: self.forget_key(row.id)
        )

    def remember_store(self, store: Store) -> None:
        self.stores[store.id] = store
        self._next_index.setdefault(store.id, 0)

    def remember_key(self, row: ApiKeyRow) -> None:
        self._keys[row.key_hash] = (row.id, row.store_id)
        self._key_ids[row.id] = row.key_hash

    def forget_key(self, key_id: str) -> None:
        digest = self._key_ids.pop(key_id, None)
        if digest is not None:
            self._keys.pop(digest, None)

    def _insert_key(self, uow: UnitOfWork, store_id: str) -> tuple[NewKey, ApiKeyRow]:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=new_id("key"),
            store_id=store_id,
            key_hash=hash_key(secret),
            prefix=secret[:10],
            created_at=self.clock.now(),
            revoked_at=None,
        )
        uow.stores.insert_api_key(row)
        return NewKey(row.id, store_id, secret), row
