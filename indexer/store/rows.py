"""The store's records: what repositories take and return, whichever adapter stores them.

Driver-neutral (no SQL, no driver types): services, workers and the API use these with the
port (indexer.store.port); each adapter maps them to its tables.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BLOCKS_KEPT = 256  # recent canonical blocks per network; a reorg deeper than this is unrecoverable


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last block of a network that is fully processed and committed."""

    number: int
    hash: str


@dataclass(frozen=True, slots=True)
class StoredBlock:
    number: int
    hash: str
    parent_hash: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class PendingPayment:
    tx_hash: str
    log_index: int
    invoice_id: str
    block_number: int
    block_time: datetime


@dataclass(frozen=True)
class StoreRow:
    id: str
    name: str
    evm_xpub: str | None  # None for a forwarder store
    xpub_chain: str | None
    created_at: datetime
    address_mode: str = "xpub"  # xpub | forwarder
    salt_secret: str | None = None  # forwarder: hex of the 32-byte deposit-salt secret


@dataclass(frozen=True, slots=True)
class DepositRow:
    """A forwarder store's deposit address that has received a confirmed payment."""

    store_id: str
    address: str  # EIP-55, as issued
    address_index: int


@dataclass(frozen=True)
class TreasuryRow:
    """Where a forwarder store's deposit addresses on one network send their funds."""

    store_id: str
    network: str
    treasury: str  # EIP-55
    factory: str  # EIP-55: the ForwarderFactory the addresses were derived under
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    store_id: str
    key_hash: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


HOOK_ENDPOINT = "hook"  # deliveries to the in-process [hooks] on_event callable


PING = "ping"  # sent to one endpoint by /test, never fanned out


def new_delivery_id() -> str:
    return "dlv_" + uuid.uuid4().hex


def new_attempt_id() -> str:
    return "att_" + uuid.uuid4().hex


@dataclass(frozen=True)
class EndpointRow:
    id: str
    store_id: str
    url: str
    description: str | None
    events: tuple[str, ...] | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    status: str
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    def wants(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return f"EndpointRow(id={self.id!r}, store_id={self.store_id!r}, status={self.status!r})"


@dataclass(frozen=True)
class NewDelivery:
    id: str
    event_id: str
    endpoint_id: str
    store_id: str
    created_at: datetime


@dataclass(frozen=True)
class FanOut:
    """What one fan-out transaction did: the cursor it reached, how many events it passed, the
    deliveries it made and the payloads of the events those deliveries carry."""

    last_seq: int
    events: int
    deliveries: list[NewDelivery]
    payloads: dict[str, str]


@dataclass(frozen=True)
class PendingDelivery:
    id: str
    event_id: str
    endpoint_id: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class AttemptRow:
    id: str
    delivery_id: str
    event_id: str
    endpoint_id: str
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


@dataclass(frozen=True)
class DeliveryUpdate:
    id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    event_id: str
    endpoint_id: str
    store_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    event_type: str | None = None


@dataclass(frozen=True)
class EventRow:
    id: str
    store_id: str
    type: str
    invoice_id: str | None
    payload: str  # the exact JSON body endpoints receive
    created_at: datetime
    seq: int | None = None

    def payload_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload)
        return result


@dataclass(frozen=True)
class IdempotentResponse:
    store_id: str
    key: str
    request_hash: str
    status: int
    response: str
    created_at: datetime


@dataclass(frozen=True)
class MissingPayment:
    """A transfer to an issued address of its network without a payment row."""

    network: str
    tx_hash: str
    log_index: int
    block_number: int
    to_address: str
    invoice_id: str


@dataclass(frozen=True)
class Lease:
    """Who holds a lease, with which fencing token, until when."""

    name: str
    holder: str
    token: int
    expires_at: datetime
