"""Fetching what the indexer needs of a range of blocks, before any database work.

For blocks `first..last` this reads the bodies (one batch), the Transfer logs of the configured
token contracts (one `eth_getLogs`, split by the reader when refused), receipts of native
transactions to issued addresses, and native coin moved by internal calls: from call traces
when the node offers them, else by reconciling balances of open native invoices. The result is
a list of `FetchedBlock`s whose hashes link parent to child; every log is checked against its
block's hash so a reorg during the fetch can never mix two branches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from indexer.chain.decode import (
    TRANSFER_TOPIC,
    Block,
    InternalTransfer,
    Transaction,
    decode_transfer_log,
)
from indexer.chain.errors import RpcError
from indexer.chain.parity import parity_internal_transfers
from indexer.chain.reader import ChainReader
from indexer.domain.network import Network
from indexer.domain.transfer import Transfer

log = logging.getLogger(__name__)

INTERNAL_LOG_INDEX = 1_000_000  # + trace position; the payments table reserves this range
NATIVE_LOG_INDEX = -1  # a transaction's own value
BALANCE_LOG_INDEX = -2  # an unexplained balance increase (nodes without traces)
_TRACE_CONCURRENCY = 16
_FALLBACK = {"trace_block": "debug_traceBlockByNumber", "debug_traceBlockByNumber": "balance"}

Screen = Callable[[Iterable[str]], set[str]]
OpenNativeAddresses = Callable[[], Awaitable[list[str]]]


class InconsistentChain(RpcError):
    """The node answered from two branches at once (a reorg mid-fetch); fetch again."""

    kind = "inconsistent"
    transient = True


@dataclass(frozen=True, slots=True)
class FetchedBlock:
    block: Block
    transfers: tuple[Transfer, ...]  # in chain order

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.block.timestamp, UTC)


class BlockFetcher:
    """Reads ranges of one network's blocks into `FetchedBlock`s."""

    def __init__(
        self,
        reader: ChainReader,
        network: Network,
        screen: Screen,
        open_native_addresses: OpenNativeAddresses,
    ) -> None:
        self.reader = reader
        self.network = network
        self.screen = screen
        self.open_native_addresses = open_native_addresses
        self.tracer = "trace_block"  # then debug_traceBlockByNumber, then balance
        self._contracts = [t.contract.lower() for t in network.tokens if t.contract]

    async def fetch(self, first: int, last: int) -> list[FetchedBlock]:
        """Blocks `first..last` (fewer if the node's chain changed within the range)."""
        blocks = _linked(await self.reader.get_blocks(list(range(first, last + 1))))
        if not blocks:
            return []
        last = blocks[-1].number
        by_number = {b.number: b for b in blocks}
        found: dict[int, list[Transfer]] = {b.number: [] for b in blocks}
        for transfer in await self._token_transfers(first, last, by_number):
            found[transfer.block_number].append(transfer)
        native = await self._native_transfers(blocks)
        for transfer in native:
            found[transfer.block_number].append(transfer)
        for transfer in await self._internal_transfers(blocks, native):
            found[transfer.block_number].append(transfer)
        return [FetchedBlock(b, tuple(found[b.number])) for b in blocks]

    async def _token_transfers(
        self, first: int, last: int, blocks: dict[int, Block]
    ) -> list[Transfer]:
        if not self._contracts:
            return []
        logs = await self.reader.get_logs(first, last, self._contracts, [TRANSFER_TOPIC])
        transfers: list[Transfer] = []
        for raw in logs:
            decoded = decode_transfer_log(raw)
            if decoded is None:
                continue
            block = blocks.get(decoded.block_number)
            if block is None:
                continue
            if decoded.block_hash != block.hash:
                raise InconsistentChain(None, f"log of block {block.number} from another branch")
            token = self.network.token_by_contract(decoded.contract)
            if token is None:  # the node ignored the address filter; never trust a spoof
                continue
            transfers.append(
                _transfer(self.network.name, block, decoded.tx_hash, decoded.log_index, "erc20",
                          token.symbol, decoded.contract, decoded.from_address,
                          decoded.to_address, decoded.amount)
            )  # fmt: skip
        return transfers

    async def _native_transfers(self, blocks: Sequence[Block]) -> list[Transfer]:
        candidates: list[tuple[Block, Transaction]] = []
        for block in blocks:
            for tx in block.transactions or ():
                if tx.value > 0 and tx.to_address is not None:
                    candidates.append((block, tx))
        hits = self.screen(tx.to_address for _, tx in candidates if tx.to_address)
        paying = [(b, tx) for b, tx in candidates if tx.to_address in hits]
        if not paying:
            return []
        succeeded = await self.reader.get_receipts_status([tx.hash for _, tx in paying])
        return [
            _transfer(self.network.name, block, tx.hash, NATIVE_LOG_INDEX, "native",
                      self.network.native.symbol, None, tx.from_address, tx.to_address or "",
                      tx.value)
            for block, tx in paying
            if succeeded.get(tx.hash)
        ]  # fmt: skip

    async def _internal_transfers(
        self, blocks: Sequence[Block], native: Sequence[Transfer]
    ) -> list[Transfer]:
        busy = [b for b in blocks if b.transactions]
        if not busy:
            return []
        while self.tracer != "balance":
            traced = await self._traced(busy, self.tracer)
            if traced is not None:
                return traced
            self.tracer = _FALLBACK[self.tracer]
            log.warning(
                "node for %s does not answer this tracer; internal native transfers now come "
                "from %s", self.network.name, self.tracer,
            )  # fmt: skip
        return await self._reconciled(busy, native)

    async def _traced(self, blocks: Sequence[Block], tracer: str) -> list[Transfer] | None:
        client = self.reader.client

        async def one(number: int) -> list[InternalTransfer] | None:
            if tracer == "trace_block":
                return await parity_internal_transfers(client, number)
            return await self.reader.internal_transfers(number)

        results: list[list[InternalTransfer] | None] = []
        for start in range(0, len(blocks), _TRACE_CONCURRENCY):
            chunk = blocks[start : start + _TRACE_CONCURRENCY]
            results += await asyncio.gather(*(one(b.number) for b in chunk))
        if any(r is None for r in results):
            return None
        moves = [move for r in results if r for move in r]
        hits = self.screen(m.to_address for m in moves)
        by_number = {b.number: b for b in blocks}
        return [
            _transfer(self.network.name, by_number[m.block_number], m.tx_hash,
                      INTERNAL_LOG_INDEX + m.position, "internal", self.network.native.symbol,
                      None, m.from_address, m.to_address, m.value)
            for m in moves
            if m.to_address in hits
        ]  # fmt: skip

    async def _reconciled(
        self, blocks: Sequence[Block], native: Sequence[Transfer]
    ) -> list[Transfer]:
        """Credit balance increases of open native invoices that no transaction explains."""
        addresses = sorted(self.screen(await self.open_native_addresses()))
        if not addresses:
            return []
        numbers = sorted({n for b in blocks for n in (b.number - 1, b.number)})
        balances = dict(
            zip(
                numbers,
                await asyncio.gather(*(self.reader.get_balances(addresses, n) for n in numbers)),
                strict=True,
            )
        )
        transfers: list[Transfer] = []
        for block in blocks:
            for address in addresses:
                increase = balances[block.number][address] - balances[block.number - 1][address]
                credit = _unexplained(address, block, increase, native)
                if credit > 0:
                    transfers.append(
                        _transfer(self.network.name, block, f"balance:{block.hash}:{address}",
                                  BALANCE_LOG_INDEX, "internal", self.network.native.symbol,
                                  None, "", address, credit)
                    )  # fmt: skip
        return transfers


def _unexplained(address: str, block: Block, increase: int, native: Sequence[Transfer]) -> int:
    """The part of a balance increase that the block's credited direct transfers do not explain.

    A block where the address itself sends is skipped: its gas cost hides what arrived.
    """
    if any(tx.from_address == address for tx in block.transactions or ()):
        return 0
    explained = sum(
        t.amount for t in native if t.block_number == block.number and t.to_address == address
    )
    return max(increase - explained, 0)


def _linked(blocks: Sequence[Block]) -> list[Block]:
    """The longest prefix of `blocks` in which each block is its predecessor's child."""
    linked: list[Block] = []
    for block in blocks:
        if linked and block.parent_hash != linked[-1].hash:
            break
        linked.append(block)
    return linked


def _transfer(
    network: str,
    block: Block,
    tx_hash: str,
    log_index: int,
    kind: str,
    asset: str,
    token: str | None,
    from_address: str,
    to_address: str,
    amount: int,
) -> Transfer:
    return Transfer(
        network=network,
        block_number=block.number,
        block_hash=block.hash,
        block_time=datetime.fromtimestamp(block.timestamp, UTC),
        tx_hash=tx_hash,
        log_index=log_index,
        kind=kind,
        asset=asset,
        token=token,
        from_address=from_address,
        to_address=to_address,
        amount=amount,
    )
