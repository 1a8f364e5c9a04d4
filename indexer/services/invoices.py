"""Creating and reading invoices: a fresh HD address each, group-committed with its event.

The create path touches DuckDB once, inside a shared transaction (group commit): the invoice,
its `invoice.created` event and the idempotency record commit together. The HD index comes from
memory, so concurrent requests can never share an address; the address joins the matcher only
after the commit, so the indexer never watches an address that might not exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from indexer import metrics
from indexer.config import Settings
from indexer.domain.clock import Clock
from indexer.domain.errors import ConflictError, NotFoundError, ValidationError
from indexer.domain.ids import looks_like, new_id
from indexer.domain.invoice import EventType, Status
from indexer.domain.money import parse_amount
from indexer.domain.pricing import PriceQuote, PriceUnavailable, parse_price
from indexer.domain.records import Invoice
from indexer.domain.view import invoice_view
from indexer.services.events import invoice_event_from_view
from indexer.services.pagination import own_cursor
from indexer.services.stores import Store, StoreService
from indexer.store.errors import UniqueViolation
from indexer.store.port import Storage, UnitOfWork
from indexer.store.rows import IdempotentResponse

# An Idempotency-Key replays its first response for this long (Stripe's window), and is
# forgotten by the next prune after that (indexer/workers/pruner.py).
IDEMPOTENCY_WINDOW = timedelta(hours=24)
PRUNE_BATCH = 500  # keys per prune transaction: ~17 ms of the writer (docs/discussions.md)


class AddressWatch(Protocol):
    def add(self, address: str) -> None: ...

    def add_many(self, addresses: Iterable[str]) -> int: ...


class PriceQuoter(Protocol):
    async def quote(
        self, network: str, asset: str, currency: str, price_minor: int
    ) -> tuple[int, PriceQuote]: ...


@dataclass(frozen=True)
class FiatPrice:
    """The `price` of a create request: minor units (cents) of an ISO currency."""

    minor: int
    currency: str


@dataclass(frozen=True)
class NewInvoice:
    """A validated create request: `amount` in base units, or a fiat `price` to convert."""

    network: str
    asset: str
    amount: int | None
    order_id: str | None
    metadata: dict[str, Any] | None
    expires_in: int
    redirect_url: str | None
    price: FiatPrice | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    text: str | None = None  # the body already serialised, when the service had to anyway


class InvoiceService:
    def __init__(
        self,
        db: Storage,
        settings: Settings,
        stores: StoreService,
        watch: AddressWatch,
        clock: Clock,
        pricing: PriceQuoter | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.stores = stores
        self.watch = watch
        self.clock = clock
        self.pricing = pricing
        self._idempotent: dict[tuple[str, str], IdempotentResponse] = {}
        self._in_flight: dict[tuple[str, str], asyncio.Future[Reply]] = {}
        self._addresses_seen = clock.now()  # `load` read every address committed before

    def load(self, uow: UnitOfWork) -> None:
        """Rebuild the watched addresses and the idempotency keys from DuckDB.

        Every key in the table is loaded, expired or not: a key still in the table but not in
        memory would let a retry append a second row for it and fail the whole group commit.
        """
        self.watch.add_many(uow.invoices.all_addresses())
        for item in uow.idempotency.all_responses():
            self._idempotent[(item.store_id, item.key)] = item

    # -- create ----------------------------------------------------------------------------
    async def create(
        self, store: Store, command: NewInvoice, idempotency_key: str | None, request_hash: str
    ) -> Reply:
        if idempotency_key is None:
            return await self._create(store, command, None, request_hash)
        slot = (store.id, idempotency_key)
        stored = self._idempotent.get(slot)
        if stored is None and self.db.shared:  # another process may have kept it
            stored = await self.db.read(lambda uow: uow.idempotency.get(*slot))
            if stored is not None:
                self._idempotent[slot] = stored
        if stored is not None:
            return self._replay(stored, request_hash)
        running = self._in_flight.get(slot)
        if running is not None:  # same key racing itself: wait for the first, then replay
            first = await asyncio.shield(running)
            stored = self._idempotent.get(slot)
            if stored is None:
                return first
            return self._replay(stored, request_hash)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._in_flight[slot] = future
        try:
            try:
                reply = await self._create(store, command, idempotency_key, request_hash)
            except UniqueViolation:
                # another process committed this key first (a shared store): replay its answer
                stored = await self.db.read(lambda uow: uow.idempotency.get(*slot))
                if stored is None:
                    raise
                self._idempotent[slot] = stored
                reply = self._replay(stored, request_hash)
            future.set_result(reply)
            return reply
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._in_flight[slot]

    def _replay(self, stored: IdempotentResponse, request_hash: str) -> Reply:
        if stored.request_hash != request_hash:
            raise ConflictError(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body",
            )
        return Reply(
            stored.status, json.loads(stored.response), replayed=True, text=stored.response
        )

    async def _create(
        self, store: Store, cmd: NewInvoice, idempotency_key: str | None, request_hash: str
    ) -> Reply:
        network = self.settings.networks[cmd.network]
        amount, quote = await self._amount(cmd)  # before the address: a refusal spends none
        now = self.clock.now()
        await self.stores.reserve(store.id)  # no await between this and the allocation
        index, address = self.stores.allocate_address(store, cmd.network)
        expires_at = now + timedelta(seconds=cmd.expires_in)
        invoice = Invoice(
            id=new_id("inv"),
            store_id=store.id,
            network=cmd.network,
            asset=cmd.asset,
            amount=amount,
            address=address,
            address_index=index,
            status=Status.NEW,
            exception=None,
            amount_received=0,
            amount_confirmed=0,
            reorg_flagged=False,
            order_id=cmd.order_id,
            metadata=cmd.metadata,
            redirect_url=cmd.redirect_url,
            expires_at=expires_at,
            monitoring_until=expires_at + timedelta(seconds=self.settings.monitoring_window),
            created_at=now,
            updated_at=now,
            paid_at=None,
            paid_tolerance_ppm=self.settings.paid_tolerance_ppm,
            price=quote,
        )
        body = invoice_view(invoice, [], network, self.settings.public_url)
        text = json.dumps(body, separators=(",", ":"))  # serialised once: response, event, replay
        event = invoice_event_from_view(EventType.INVOICE_CREATED.value, invoice, text, now)
        remembered = None
        if idempotency_key is not None:
            remembered = IdempotentResponse(store.id, idempotency_key, request_hash, 201, text, now)

        def write(uow: UnitOfWork) -> None:
            uow.invoices.add(invoice)
            uow.events.add(event)
            if remembered is not None:
                uow.idempotency.add(remembered)

        def committed(_: object) -> None:
            # Runs once the rows are durable, even if this request stopped waiting (a write
            # timeout answers 503 but may still commit): an invoice that exists is always
            # watched, and its key always replays it.
            self.watch.add(address)
            if remembered is not None:
                self._idempotent[(store.id, remembered.key)] = remembered
            metrics.INVOICES_CREATED.labels(cmd.network, cmd.asset).inc()

        await self.db.write(write, on_commit=committed)
        return Reply(201, body, text=text)

    async def _amount(self, cmd: NewInvoice) -> tuple[int, PriceQuote | None]:
        """The invoice's amount in base units: as asked, or converted from its fiat price at the
        rate read now (PriceUnavailable, a 503, when no trustworthy rate can be had)."""
        if cmd.price is None:
            assert cmd.amount is not None  # parse_new_invoice asks for one or the other
            return cmd.amount, None
        if self.pricing is None:
            raise PriceUnavailable("no_route", "this gateway reads no price feeds")
        return await self.pricing.quote(cmd.network, cmd.asset, cmd.price.currency, cmd.price.minor)

    async def prune_idempotency(self, limit: int = PRUNE_BATCH) -> int:
        """Forget up to `limit` keys older than the window; return how many went.

        Rows go first, then the same keys from memory: while a row exists its key stays in
        memory, so a retry replays instead of appending a duplicate (store_id, key) row.
        """
        cutoff = self.clock.now() - IDEMPOTENCY_WINDOW
        deleted = await self.db.write(
            lambda c: c.idempotency.delete_older_than(cutoff, limit), kind="prune"
        )
        for slot in deleted:
            self._idempotent.pop(slot, None)
        return len(deleted)

    def idempotency_keys_held(self) -> int:
        return len(self._idempotent)

    async def refresh_addresses(self) -> None:
        """Watch the addresses other processes issued since the last call (a shared store).

        The chain tail calls this before each run of blocks, so an invoice whose creation
        committed before a block's processing starts is matched in that block. Invoices are
        looked up by creation time with a 2-minute margin: a replica's clock may run behind,
        and a create may commit up to its write timeout after its timestamp.
        """
        now = self.clock.now()
        since = self._addresses_seen - timedelta(seconds=120)
        found = await self.db.read(lambda uow: uow.invoices.addresses_since(since))
        self.watch.add_many(found)
        self._addresses_seen = now

    # -- read ------------------------------------------------------------------------------
    async def get(self, store_id: str | None, invoice_id: str) -> dict[str, Any]:
        """The invoice view; `store_id` None only for the public checkout (id is the secret)."""
        if not looks_like("inv", invoice_id):
            raise NotFoundError(f"no invoice {invoice_id}")

        def read(uow: UnitOfWork) -> tuple[Invoice | None, list[Any]]:
            invoice = uow.invoices.get_invoice(invoice_id)
            if invoice is None:
                return None, []
            return invoice, uow.invoices.payments_for([invoice_id])[invoice_id]

        invoice, payments = await self.db.read(read)
        if invoice is None or (store_id is not None and invoice.store_id != store_id):
            raise NotFoundError(f"no invoice {invoice_id}")
        return self.view(invoice, payments)

    def view(self, invoice: Invoice, payments: list[Any]) -> dict[str, Any]:
        return invoice_view(
            invoice, payments, self.settings.networks[invoice.network], self.settings.public_url
        )

    async def list(
        self,
        store_id: str,
        limit: int,
        status: str | None,
        order_id: str | None,
        starting_after: str | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        def read(uow: UnitOfWork) -> tuple[list[Invoice], bool, dict[str, list[Any]]]:
            cursor = None
            if starting_after is not None:
                found = (
                    uow.invoices.get_invoice(starting_after)
                    if looks_like("inv", starting_after)
                    else None
                )
                cursor = own_cursor(found, store_id, "an invoice")
            items, has_more = uow.invoices.list_invoices(store_id, limit, status, order_id, cursor)
            return items, has_more, uow.invoices.payments_for([i.id for i in items])

        items, has_more, payments = await self.db.read(read)
        return [self.view(i, payments[i.id]) for i in items], has_more


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Same key + same request replays; the body is compared after JSON normalisation."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def parse_new_invoice(payload: object, settings: Settings) -> NewInvoice:
    """Validate a create request body; every error names the field."""
    if not isinstance(payload, dict):
        raise ValidationError("invalid_body", "the request body must be a JSON object", None)
    allowed = {
        "network", "asset", "amount", "price", "order_id", "metadata", "expires_in", "redirect_url",
    }  # fmt: skip
    for name in payload:
        if name not in allowed:
            raise ValidationError("unknown_field", f"unknown field {name!r}", str(name)[:100])
    network_name = payload.get("network")
    if not isinstance(network_name, str):
        raise ValidationError("invalid_network", "network is required (a string)", "network")
    network = settings.network(network_name)
    if network is None:
        known = ", ".join(sorted(settings.networks)) or "none configured"
        raise ValidationError(
            "unknown_network", f"unknown network {network_name[:64]!r} (known: {known})", "network"
        )
    asset_symbol = payload.get("asset")
    if not isinstance(asset_symbol, str):
        raise ValidationError("invalid_asset", "asset is required (a string)", "asset")
    asset = network.asset(asset_symbol)
    if asset is None:
        known = ", ".join(a.symbol for a in network.assets)
        raise ValidationError(
            "unknown_asset",
            f"unknown asset {asset_symbol[:32]!r} on {network_name} (known: {known})",
            "asset",
        )
    amount, price = _amount_or_price(payload, settings, network_name, asset_symbol, asset.decimals)
    order_id = _optional_text(payload, "order_id", 200)
    metadata = payload.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValidationError("invalid_metadata", "metadata must be a JSON object", "metadata")
        if len(json.dumps(metadata)) > 8192:
            raise ValidationError("invalid_metadata", "metadata must be at most 8 KB", "metadata")
    expires_in = payload.get("expires_in", settings.default_expires_in)
    if isinstance(expires_in, float) and expires_in.is_integer():
        expires_in = int(expires_in)  # an integer to JSON Schema (and the OpenAPI document)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise ValidationError("invalid_expires_in", "expires_in must be an integer", "expires_in")
    if not 60 <= expires_in <= 30 * 86400:
        raise ValidationError(
            "invalid_expires_in", "expires_in must be between 60 and 2592000 seconds", "expires_in"
        )
    redirect_url = _optional_text(payload, "redirect_url", 2048)
    if redirect_url is not None and not redirect_url.startswith(("https://", "http://")):
        raise ValidationError(
            "invalid_redirect_url", "redirect_url must be http(s)", "redirect_url"
        )
    return NewInvoice(
        network=network_name,
        asset=asset_symbol,
        amount=amount,
        order_id=order_id,
        metadata=metadata,
        expires_in=expires_in,
        redirect_url=redirect_url,
        price=price,
    )


def _amount_or_price(
    payload: dict[str, Any], settings: Settings, network: str, asset: str, decimals: int
) -> tuple[int | None, FiatPrice | None]:
    """Exactly one of `amount` (the asset's units) and `price` (a fiat amount to convert)."""
    if "amount" in payload and "price" in payload:
        raise ValidationError("amount_and_price", "send either amount or price, not both", "price")
    if "price" not in payload:
        if "amount" not in payload:
            raise ValidationError("invalid_amount", "amount (or price) is required", "amount")
        return parse_amount(payload["amount"], decimals), None
    price = payload["price"]
    if not isinstance(price, dict) or set(price) != {"amount", "currency"}:
        raise ValidationError(
            "invalid_price",
            'price must be an object {"amount": "49.99", "currency": "USD"}',
            "price",
        )
    book = settings.price_books.get(network)
    known = book.currencies() if book is not None else set()
    minor, currency = parse_price(price["amount"], price["currency"], known)
    if book is None or book.route(asset, currency) is None:
        raise ValidationError(
            "unknown_pair",
            f"no price feed or peg gives {asset} in {currency} on {network}",
            "price.currency",
        )
    return None, FiatPrice(minor, currency)


def _optional_text(payload: dict[str, Any], name: str, limit: int) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValidationError(
            f"invalid_{name}", f"{name} must be a string of 1-{limit} characters", name
        )
    return value
