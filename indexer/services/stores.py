"""Stores and API keys: creation, revocation, authentication, and each store's deposit addresses.

A store issues addresses in one of two modes: `xpub` (BIP32 public derivation) or `forwarder`
(CREATE2 addresses that can only pay the store's treasury on each network, indexer.forwarder).
Both take the next per-store index from memory, so concurrent requests never share an address.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from indexer import deriver, forwarder
from indexer.chain.rpc import JsonRpcClient
from indexer.domain.clock import Clock
from indexer.domain.errors import ConflictError, NotFoundError, ValidationError
from indexer.domain.ids import looks_like, new_id
from indexer.domain.network import Network
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import ApiKeyRow, StoreRow, TreasuryRow
from indexer.wallet import ExtendedPublicKey, parse_xpub

log = logging.getLogger(__name__)
KEY_PREFIX = "cpk_"
POOL_SIZE = 1024
RESERVE = 256  # HD indexes reserved in the database per write
POOL_LOW = 512


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    xpub: ExtendedPublicKey | None  # None for a forwarder store
    created_at_iso: str
    salt_secret: bytes | None = None  # forwarder stores only; never shown
    treasuries: dict[str, TreasuryRow] = field(default_factory=dict)  # by network

    @property
    def mode(self) -> str:
        return "xpub" if self.xpub is not None else "forwarder"


class ForwarderUnavailable(ValidationError):
    """A forwarder address was asked for on a network whose factory is not verified."""


@dataclass(frozen=True)
class NewKey:
    key_id: str
    store_id: str
    secret: str  # shown once, never stored


def store_from_row(row: StoreRow, treasuries: dict[str, TreasuryRow]) -> Store:
    created = row.created_at.isoformat()
    if row.address_mode == "forwarder":
        assert row.salt_secret is not None
        return Store(row.id, row.name, None, created, bytes.fromhex(row.salt_secret), treasuries)
    assert row.evm_xpub is not None
    return Store(row.id, row.name, parse_xpub(row.evm_xpub), created)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class StoreService:
    """Owns the in-memory view of stores, keys and each store's next HD index."""

    def __init__(
        self, db: Storage, clock: Clock, factories: Mapping[str, str] | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        # network -> the factory new forwarder stores derive under (config or deterministic)
        self.factories = dict(factories or {})
        # (network, factory lowercase) whose on-chain code matched the artifact
        self.verified: set[tuple[str, str]] = set()
        self.stores: dict[str, Store] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # key hash -> (key id, store id)
        self._key_ids: dict[str, str] = {}  # key id -> key hash
        self._next_index: dict[str, int] = {}  # the next index to hand out, per store
        self._limit: dict[str, int] = {}  # the end of the block reserved in the database
        self._reserving: dict[str, asyncio.Lock] = {}
        self._pools: dict[str, dict[int, str]] = {}  # store id -> {index: address} derived ahead
        self._refilling: set[str] = set()

    def load(self, uow: UnitOfWork) -> None:
        """Rebuild the in-memory indexes from DuckDB (at start-up)."""
        treasuries: dict[str, dict[str, TreasuryRow]] = {}
        for treasury in uow.stores.all_treasuries():
            treasuries.setdefault(treasury.store_id, {})[treasury.network] = treasury
        for row in uow.stores.all_stores():
            self.stores[row.id] = store_from_row(row, treasuries.get(row.id, {}))
        for key in uow.stores.active_api_keys():
            self._keys[key.key_hash] = (key.id, key.store_id)
            self._key_ids[key.id] = key.key_hash
        self._next_index = uow.invoices.next_address_indexes()

    def refresh(self, uow: UnitOfWork) -> None:
        """Stores and keys anew from the database (a shared store: other processes create and
        revoke them). Keys are replaced as a whole, so a revocation anywhere takes effect here
        at the next refresh. Reserved HD indexes are left as they are."""
        treasuries: dict[str, dict[str, TreasuryRow]] = {}
        for treasury in uow.stores.all_treasuries():
            treasuries.setdefault(treasury.store_id, {})[treasury.network] = treasury
        stores = {
            row.id: store_from_row(row, treasuries.get(row.id, {}))
            for row in uow.stores.all_stores()
        }
        keys = {key.key_hash: (key.id, key.store_id) for key in uow.stores.active_api_keys()}
        self.stores.update(stores)
        self._keys = keys
        self._key_ids = {key_id: digest for digest, (key_id, _) in keys.items()}

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

    async def reserve(self, store_id: str) -> None:
        """Make sure the store has an index reserved in the database for the next invoice.

        Indexes are reserved in blocks of RESERVE (one write per block), so processes sharing
        one database never hand out the same one; a block left unused by a crash or a restart
        is a gap, never a reuse. Await this right before `allocate_address`, with no await in
        between: the event loop then makes the two atomic across requests.
        """
        if self._next_index.get(store_id, 0) < self._limit.get(store_id, 0):
            return
        lock = self._reserving.setdefault(store_id, asyncio.Lock())
        async with lock:
            if self._next_index.get(store_id, 0) < self._limit.get(store_id, 0):
                return
            first = await self.db.write(
                lambda uow: uow.stores.reserve_indexes(store_id, RESERVE), kind="api"
            )
            self._next_index[store_id], self._limit[store_id] = first, first + RESERVE

    async def release(self) -> None:
        """At a clean shutdown: give back what is left of each reserved block, so a restart
        continues without a gap (a block another process reserved after ours stays)."""
        for store_id, limit in list(self._limit.items()):
            unused = self._next_index.get(store_id, limit)
            if unused < limit:
                await self.db.write(
                    partial(_release, store_id=store_id, unused=unused, limit=limit)
                )
                self._limit[store_id] = unused

    def allocate_index(self, store_id: str) -> int:
        """The store's next reserved HD index (`reserve` first)."""
        index = self._next_index.get(store_id, 0)
        if index >= self._limit.get(store_id, 0):
            raise RuntimeError(f"no HD index reserved for store {store_id}: await reserve()")
        self._next_index[store_id] = index + 1
        return index

    def allocate_address(self, store: Store, network: str) -> tuple[int, str]:
        """The next index and its address on `network`.

        xpub: from the pre-derived pool when it has it (derivation costs ~70 us of CPU holding
        the GIL; a worker process derives ahead, `indexer.deriver`). forwarder: two keccaks.
        """
        if store.xpub is None:
            return self._forwarder_address(store, network)
        index = self.allocate_index(store.id)
        pool = self._pools.setdefault(store.id, {})
        address = pool.pop(index, None) or store.xpub.address(index)
        if len(pool) < POOL_LOW and store.id not in self._refilling:
            self._refill(store, self._next_index[store.id] + len(pool))
        return index, address

    def _forwarder_address(self, store: Store, network: str) -> tuple[int, str]:
        treasury = store.treasuries.get(network)
        if treasury is None:
            raise ValidationError(
                "no_treasury", f"this store has no treasury on {network}", "network"
            )
        if (network, treasury.factory.lower()) not in self.verified:
            raise ForwarderUnavailable(
                "forwarder_unavailable",
                f"the forwarder factory {treasury.factory} on {network} is not verified (its "
                "code is missing or differs from chainpay's artifact, or the node did not "
                "answer): no deposit address is issued there until `chainpay contracts verify` "
                "passes",
                "network",
            )
        assert store.salt_secret is not None
        index = self.allocate_index(store.id)
        salt = forwarder.deposit_salt(store.salt_secret, index)
        return index, forwarder.deposit_address(treasury.factory, treasury.treasury, salt)

    def mark_verified(self, network: str, factory: str) -> None:
        self.verified.add((network, factory.lower()))

    async def verify_factories(self, networks: Mapping[str, Network]) -> dict[str, str]:
        """Check every factory in use against the chain; problems by "network factory".

        Only a factory whose code matches byte for byte is marked verified: forwarder addresses
        are issued on a network only then (a missing or different factory could never sweep
        them, or might sweep them somewhere else).
        """

        async def check(name: str, factory: str) -> str | None:
            network = networks.get(name)
            if network is None:
                return "the network is not configured"
            # a node that is down must not hold up start-up: the same bound as its probe
            async with JsonRpcClient(network.rpc_url, name, timeout=5.0) as client:
                return await forwarder.factory_problem(client, factory)

        pairs = sorted(self.forwarder_factories())
        found = await asyncio.gather(*(check(name, factory) for name, factory in pairs))
        problems: dict[str, str] = {}
        for (name, factory), problem in zip(pairs, found, strict=True):
            if problem is None:
                self.mark_verified(name, factory)
            else:
                problems[f"{name} {factory}"] = problem
        return problems

    def forwarder_factories(self) -> set[tuple[str, str]]:
        """(network, factory) pairs the stores and the config use, to verify at start."""
        pairs = {(n, f) for n, f in self.factories.items()}
        for store in self.stores.values():
            pairs.update((n, t.factory) for n, t in store.treasuries.items())
        return pairs

    def prefill(self) -> None:
        """Start deriving every store's next addresses now, so the first invoices find them."""
        for store in self.stores.values():
            if store.xpub is None:
                continue
            pool = self._pools.setdefault(store.id, {})
            if store.id not in self._refilling:
                self._refill(store, self._next_index.get(store.id, 0) + len(pool))

    def _refill(self, store: Store, start: int) -> None:
        assert store.xpub is not None
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
        assert store.xpub is not None
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
        if uow.stores.store_by_chain(xpub.fingerprint) is not None:
            raise ConflictError(
                "xpub_in_use",
                "another store already uses this extended public key; two stores on one key "
                "would hand out the same addresses",
            )
        uow.stores.insert_store(row)
        key, key_row = self._insert_key(uow, row.id)
        return Store(row.id, row.name, xpub, row.created_at.isoformat()), key, key_row

    def create_forwarder_store_tx(
        self, uow: UnitOfWork, name: object, treasuries: object
    ) -> tuple[Store, NewKey, ApiKeyRow]:
        """A forwarder store with its treasuries (network -> EIP-55 address) and first key.

        Each network must have a verified factory: an address chainpay issues there must be
        one the factory can later sweep, byte for byte the contract this code derives for.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ValidationError("invalid_name", "name must be 1-200 characters", "name")
        if not isinstance(treasuries, dict) or not treasuries:
            raise ValidationError(
                "invalid_treasury", "a forwarder store needs a treasury on a network", "treasury"
            )
        now = self.clock.now()
        row = StoreRow(
            id=new_id("st"),
            name=name.strip(),
            evm_xpub=None,
            xpub_chain=None,
            created_at=now,
            address_mode="forwarder",
            salt_secret=forwarder.new_salt_secret().hex(),
        )
        rows = []
        for network, address in sorted(treasuries.items()):
            factory = self.factories.get(network)
            if factory is None:
                known = ", ".join(sorted(self.factories)) or "none configured"
                raise ValidationError(
                    "unknown_network", f"unknown network {network!r} (known: {known})", "treasury"
                )
            treasury = forwarder.check_treasury(address, network, factory)
            if (network, factory.lower()) not in self.verified:
                raise ForwarderUnavailable(
                    "forwarder_unavailable",
                    f"the forwarder factory {factory} on {network} is not deployed or does not "
                    "match chainpay's artifact: run `chainpay contracts deploy --network "
                    f"{network}`, send its transaction, then `chainpay contracts verify`",
                    f"treasury.{network}",
                )
            rows.append(TreasuryRow(row.id, network, treasury, factory, now))
        uow.stores.insert_store(row)
        uow.stores.insert_treasuries(rows)
        key, key_row = self._insert_key(uow, row.id)
        return store_from_row(row, {t.network: t for t in rows}), key, key_row

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

    async def create_forwarder_store(
        self, name: object, treasuries: object
    ) -> tuple[Store, NewKey]:
        def committed(made: tuple[Store, NewKey, ApiKeyRow]) -> None:
            self.remember_store(made[0])
            self.remember_key(made[2])

        store, key, _ = await self.db.write(
            lambda c: self.create_forwarder_store_tx(c, name, treasuries), on_commit=committed
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


def _release(uow: UnitOfWork, store_id: str, unused: int, limit: int) -> bool:
    return uow.stores.release_indexes(store_id, unused, limit)
