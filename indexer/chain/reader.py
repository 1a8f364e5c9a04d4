"""Typed reads of one chain through a `JsonRpcClient`: heads, blocks, logs, receipts, traces.

The reader classifies and shapes; it never sleeps or retries (the caller owns the policy) with
one exception that is not a retry: an `eth_getLogs` range the node refuses is split in halves
until it passes, down to single blocks, so no block is ever skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from indexer.chain.decode import (
    Block,
    InternalTransfer,
    decode_block,
    decode_internal_transfers,
)
from indexer.chain.errors import (
    MethodNotFound,
    RangeTooLarge,
    ResponseTooLarge,
    RpcResponseError,
    UnknownBlock,
)
from indexer.chain.rpc import JsonRpcClient

log = logging.getLogger(__name__)


class ChainReader:
    """Reads one chain's data; every method may raise an `indexer.chain.errors.RpcError`."""

    def __init__(self, client: JsonRpcClient) -> None:
        self.client = client
        self._missing_tags: set[str] = set()  # block tags the node did not answer, warned once

    async def chain_id(self) -> int:
        return int(await self.client.call("eth_chainId"), 16)

    async def head_number(self) -> int:
        return int(await self.client.call("eth_blockNumber"), 16)

    async def finalized_number(self, tag: str = "finalized") -> int | None:
        """The number of the node's block with `tag` ("finalized" or "safe"); None without one.

        anvil 1.7.1 answers `safe` with head - 32 and `finalized` with head - 64 (0 while the
        chain is shorter); geth after the merge, BSC with fast finality, Bor with milestones,
        AvalancheGo, op-geth and Nitro (with their L1 connection) answer; a pre-merge geth
        answers an error ("'finalized' tag not supported on pre-merge network"), others null.
        The first time the node has no such block, a warning says confirmations fall back to
        depth; an info line says when the tag is back.
        """
        try:
            block = await self.client.call("eth_getBlockByNumber", [tag, False])
        except UnknownBlock as exc:
            self._tag_missing(tag, str(exc))
            return None
        except RpcResponseError as exc:
            if type(exc) is not RpcResponseError:  # a range refusal, not an invalid-tag error
                raise
            self._tag_missing(tag, str(exc))
            return None
        if block is None:
            self._tag_missing(tag, "no such block")
            return None
        if tag in self._missing_tags:
            self._missing_tags.discard(tag)
            log.info("%s: the node answers the %r tag again", self.client.network, tag)
        return int(block["number"], 16)

    def _tag_missing(self, tag: str, reason: str) -> None:
        if tag not in self._missing_tags:
            self._missing_tags.add(tag)
            log.warning(
                "%s: the node does not answer the %r block tag (%s); payments are confirmed "
                "by depth until it does",
                self.client.network, tag, reason, extra={"network": self.client.network},
            )  # fmt: skip

    async def get_block(self, number: int, full_transactions: bool = True) -> Block | None:
        """Block `number`, or None when the node does not have it (yet)."""
        raw = await self.client.call("eth_getBlockByNumber", [hex(number), full_transactions])
        return None if raw is None else decode_block(raw)

    async def get_blocks(
        self, numbers: Sequence[int], full_transactions: bool = True
    ) -> list[Block]:
        """Blocks `numbers` in one batch, in the same order; `UnknownBlock` if any is missing."""
        raws = await self.client.batch(
            [("eth_getBlockByNumber", [hex(n), full_transactions]) for n in numbers]
        )
        blocks: list[Block] = []
        for number, raw in zip(numbers, raws, strict=True):
            if raw is None:
                raise UnknownBlock(None, f"node returned no block {number}")
            blocks.append(decode_block(raw))
        return blocks

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[str] | None = None,
        topics: Sequence[str | Sequence[str] | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Raw logs of blocks `from_block..to_block` inclusive, in chain order.

        A `RangeTooLarge` or `ResponseTooLarge` refusal splits the range in halves, recursively;
        a single block the node still refuses raises (it cannot be split, nor be skipped).
        """
        logs: list[dict[str, Any]] = []
        pending = [(from_block, to_block)]  # a stack, popped lowest range first
        while pending:
            low, high = pending.pop()
            try:
                logs.extend(await self._logs(low, high, addresses, topics))
            except (RangeTooLarge, ResponseTooLarge):
                if low >= high:
                    raise
                middle = (low + high) // 2
                pending.extend([(middle + 1, high), (low, middle)])
        return logs

    async def _logs(
        self,
        low: int,
        high: int,
        addresses: Sequence[str] | None,
        topics: Sequence[str | Sequence[str] | None] | None,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"fromBlock": hex(low), "toBlock": hex(high)}
        if addresses:
            query["address"] = list(addresses)
        if topics:
            query["topics"] = [t if t is None or isinstance(t, str) else list(t) for t in topics]
        result = await self.client.call("eth_getLogs", [query])
        return list(result or [])

    async def get_receipts_status(self, tx_hashes: Sequence[str]) -> dict[str, bool]:
        """Whether each transaction succeeded (receipt status 1), keyed by lowercase hash.

        A missing receipt raises `UnknownBlock`: the transaction's block is not on this node.
        """
        receipts = await self.client.batch(
            [("eth_getTransactionReceipt", [tx_hash]) for tx_hash in tx_hashes]
        )
        statuses: dict[str, bool] = {}
        for tx_hash, receipt in zip(tx_hashes, receipts, strict=True):
            if receipt is None:
                raise UnknownBlock(None, f"node has no receipt for {tx_hash}")
            statuses[tx_hash.lower()] = int(receipt.get("status", "0x0"), 16) == 1
        return statuses

    async def get_balances(self, addresses: Sequence[str], block_number: int) -> dict[str, int]:
        """Native-coin balance of each address at `block_number`, keyed by lowercase address."""
        balances = await self.client.batch(
            [("eth_getBalance", [address, hex(block_number)]) for address in addresses]
        )
        return {
            address.lower(): int(balance, 16)
            for address, balance in zip(addresses, balances, strict=True)
        }

    async def internal_transfers(self, block_number: int) -> list[InternalTransfer] | None:
        """Native coin moved by internal calls in block `block_number`; None if untraceable.

        Uses `debug_traceBlockByNumber` with `{"tracer": "callTracer"}` (geth's format: one
        `{"txHash", "result": call frame}` per transaction). anvil 1.7.1 supports it, and also
        the parity-style `trace_block`; geth needs the `debug` API enabled and an archive or
        recent-state node. A node without the method, or without the tracer, gives None;
        a block the node does not have raises `UnknownBlock` (anvil: -32001 "Resource not found"),
        a block whose state the node pruned raises `MissingState`.
        """
        traces = await call_tracer(
            self.client, "debug_traceBlockByNumber", block_number, {"tracer": "callTracer"}
        )
        return None if traces is None else decode_internal_transfers(block_number, traces)


async def call_tracer(
    client: JsonRpcClient, method: str, block_number: int, *options: Any
) -> Any | None:
    """A block-trace call; None only when the node says it lacks the method or the tracer.

    Every other refusal is raised as classified: a pruned state (`MissingState`) says nothing
    about the node's abilities, and holds for older blocks only.
    """
    try:
        traces = await client.call(method, [hex(block_number), *options])
    except MethodNotFound:
        return None
    if traces is None:
        raise UnknownBlock(None, f"node returned no trace for block {block_number}")
    return traces
