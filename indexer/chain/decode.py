"""Typed chain data and the pure decoding of raw JSON-RPC objects into it.

Addresses are lowercase hex `0x…` strings everywhere inside the indexer (the matcher and the
store compare them as strings); EIP-55 checksums appear only at the API edge. Amounts and values
are Python ints in base units, never floats; uint256 values round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

# Call types that move native coin to `to`. DELEGATECALL and CALLCODE report the parent's value
# but transfer nothing; STATICCALL cannot carry value.
_VALUE_CALL_TYPES = frozenset({"CALL", "CREATE", "CREATE2", "SELFDESTRUCT"})


@dataclass(frozen=True, slots=True)
class Transaction:
    """A transaction as listed in a block body: its top-level native-coin movement."""

    hash: str
    from_address: str
    to_address: str | None  # None for a contract creation
    value: int
    index: int


@dataclass(frozen=True, slots=True)
class Block:
    """A block header with, when fetched with bodies, its transactions."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int
    transactions: tuple[Transaction, ...] | None  # None when fetched without bodies
    logs_bloom: bytes | None = None  # the header's 2048-bit logsBloom; None if absent


@dataclass(frozen=True, slots=True)
class TokenTransfer:
    """One ERC20 `Transfer` log."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    contract: str
    from_address: str
    to_address: str
    amount: int


@dataclass(frozen=True, slots=True)
class InternalTransfer:
    """Native coin moved by a call below a transaction's top level, found only in traces.

    `position` is the pre-order index of the call frame within its transaction's call tree
    (the top-level call is 0), stable for the same block, so (tx_hash, position) identifies it.
    """

    block_number: int
    tx_hash: str
    position: int
    from_address: str
    to_address: str
    value: int
    call_type: str


def _int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16)


def _address(value: str | None) -> str | None:
    return None if value is None else value.lower()


def decode_transaction(raw: Mapping[str, Any]) -> Transaction:
    """Decode a full transaction object from `eth_getBlockByNumber(n, true)`."""
    return Transaction(
        hash=raw["hash"].lower(),
        from_address=raw["from"].lower(),
        to_address=_address(raw.get("to")),
        value=_int(raw["value"]),
        index=_int(raw["transactionIndex"]),
    )


def decode_block(raw: Mapping[str, Any]) -> Block:
    """Decode a block object; transactions are decoded only when they are full objects."""
    txs = raw.get("transactions")
    transactions: tuple[Transaction, ...] | None = None
    if txs is not None and all(isinstance(tx, Mapping) for tx in txs):
        transactions = tuple(decode_transaction(tx) for tx in txs)
    return Block(
        number=_int(raw["number"]),
        hash=raw["hash"].lower(),
        parent_hash=raw["parentHash"].lower(),
        timestamp=_int(raw["timestamp"]),
        transactions=transactions,
        logs_bloom=_bloom(raw.get("logsBloom")),
    )


def _bloom(value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        return None
    return raw if len(raw) == 256 else None


def bloom_bits(item: bytes) -> tuple[int, int, int]:
    """The three bit positions (0..2047) an item sets in a logsBloom (yellow paper, M3:2048)."""
    digest = keccak(item)
    return tuple(((digest[i] << 8) | digest[i + 1]) & 2047 for i in (0, 2, 4))  # type: ignore[return-value]


def bloom_has(bloom: bytes, bits: tuple[int, int, int]) -> bool:
    """Whether every bit is set: the item *may* be among the block's log addresses and topics.

    Bit 0 is the lowest bit of the last byte (the bloom is a big-endian 2048-bit number).
    """
    return all(bloom[255 - bit // 8] & (1 << (bit % 8)) for bit in bits)


def address_topic(address: str) -> bytes:
    """An address as an indexed topic: 32 bytes, zero-padded on the left."""
    return bytes(12) + bytes.fromhex(address.lower().removeprefix("0x"))


def _topic_address(topic: str) -> str | None:
    """The address in an indexed-address topic, or None if the topic is not one."""
    body = topic.lower().removeprefix("0x")
    if len(body) != 64 or body[:24] != "0" * 24:
        return None
    return "0x" + body[24:]


def decode_transfer_log(log: Mapping[str, Any]) -> TokenTransfer | None:
    """Decode an ERC20 `Transfer` log; None for anything else.

    Rejected: removed (reorged-out) logs, other events, ERC721 transfers (four topics, the
    token id indexed), topics that are not zero-padded addresses, data that is not exactly one
    uint256 word, and logs still pending (no block number).
    """
    topics = log.get("topics") or []
    if log.get("removed") or len(topics) != 3 or topics[0].lower() != TRANSFER_TOPIC:
        return None
    if log.get("blockNumber") is None or log.get("logIndex") is None:
        return None
    sender, recipient = _topic_address(topics[1]), _topic_address(topics[2])
    if sender is None or recipient is None:
        return None
    data = log.get("data") or "0x"
    try:
        raw = bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return None
    if len(raw) != 32:
        return None
    try:
        (amount,) = abi_decode(["uint256"], raw)
    except DecodingError:
        return None
    return TokenTransfer(
        block_number=_int(log["blockNumber"]),
        block_hash=log["blockHash"].lower(),
        tx_hash=log["transactionHash"].lower(),
        log_index=_int(log["logIndex"]),
        contract=log["address"].lower(),
        from_address=sender,
        to_address=recipient,
        amount=amount,
    )


def _walk_frames(frame: Mapping[str, Any]) -> Iterable[tuple[int, int, Mapping[str, Any]]]:
    """Yield (position, depth, frame) for every frame of a call tree, in pre-order."""
    position = 0
    stack: list[tuple[int, Mapping[str, Any]]] = [(0, frame)]
    while stack:
        depth, current = stack.pop()
        yield position, depth, current
        position += 1
        children = current.get("calls") or []
        stack.extend((depth + 1, child) for child in reversed(children))


def _reverted_positions(frame: Mapping[str, Any]) -> set[int]:
    """Positions of frames that reverted themselves or sit below a frame that reverted.

    Reverted frames still take positions, so a position does not depend on which calls failed.
    """
    reverted: set[int] = set()
    failed_depth: int | None = None
    for position, depth, current in _walk_frames(frame):
        if failed_depth is not None and depth <= failed_depth:
            failed_depth = None
        if failed_depth is None and current.get("error"):
            failed_depth = depth
        if failed_depth is not None:
            reverted.add(position)
    return reverted


def decode_internal_transfers(
    block_number: int, traces: Iterable[Mapping[str, Any]]
) -> list[InternalTransfer]:
    """Internal native-coin transfers in a `debug_traceBlockByNumber` callTracer result.

    Only calls below the top level that carry value, move it (see `_VALUE_CALL_TYPES`) and did
    not revert (themselves or through an ancestor) count; the top-level call is the
    transaction itself, already visible in the block body.
    """
    transfers: list[InternalTransfer] = []
    for trace in traces:
        root = trace.get("result")
        tx_hash = trace.get("txHash")
        if not isinstance(root, Mapping) or tx_hash is None:
            continue
        reverted = _reverted_positions(root)
        for position, depth, frame in _walk_frames(root):
            if depth == 0 or position in reverted:
                continue
            call_type = str(frame.get("type", "")).upper()
            value = _int(frame.get("value") or "0x0")
            if value <= 0 or call_type not in _VALUE_CALL_TYPES or not frame.get("to"):
                continue
            transfers.append(
                InternalTransfer(
                    block_number=block_number,
                    tx_hash=tx_hash.lower(),
                    position=position,
                    from_address=frame["from"].lower(),
                    to_address=frame["to"].lower(),
                    value=value,
                    call_type=call_type,
                )
            )
    return transfers
