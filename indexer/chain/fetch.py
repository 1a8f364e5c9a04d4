"""Fetching what the indexer needs of a range of blocks, before any database work.

For blocks `first..last` this reads the bodies (one batch), the Transfer logs of the configured
token contracts (one `eth_getLogs`, split by the reader when refused), receipts of native
transactions to issued addresses, and native coin moved by internal calls: from call traces
when the node offers them, else by reconciling balances of open native invoices, and, on a
network with forwarder stores, the `NativeSwept` logs of swept deposit addresses (one more
`eth_getLogs`, by topic, split by the reader like the first). The result is
a list of `FetchedBlock`s whose hashes link parent to child; every log is checked against its
block's hash so a reorg during the fetch can never mix two branches.

Real nodes keep only recent state (geth and BSC: 128 blocks). Logs, bodies and receipts need
none, so a range whose state is pruned is still fetched in full, except internal transfers:
the fetcher marks itself unreconciled, and at the first range whose parent state exists it
credits each open native invoice's balance beyond what was credited (`RECONCILED_LOG_INDEX`,
kind "reconciled", flagged for review). It also reconciles once after every start, which
covers a gap that a crash or restart interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from indexer import metrics
from indexer.chain.decode import (
    TRANSFER_TOPIC,
    Block,
    InternalTransfer,
    Transaction,
    address_topic,
    bloom_bits,
    bloom_has,
    decode_transfer_log,
)
from indexer.chain.errors import MethodNotFound, MissingState, RpcError
from indexer.chain.parity import parity_internal_transfers
from indexer.chain.reader import ChainReader
from indexer.domain.network import Network
from indexer.domain.sweep import Sweep
from indexer.domain.transfer import Transfer
from indexer.forwarder import NATIVE_SWEPT_TOPIC

log = logging.getLogger(__name__)

INTERNAL_LOG_INDEX = 1_000_000  # + trace position; the payments table reserves this range
NATIVE_LOG_INDEX = -1  # a transaction's own value
BALANCE_LOG_INDEX = -2  # an unexplained balance increase (nodes without traces)
RECONCILED_LOG_INDEX = -3  # a balance beyond all credits, found after a window without state
_TRACE_CONCURRENCY = 16
_TRACERS = ("trace_block", "debug_traceBlockByNumber")  # fastest first; then balances
TRACER_REPROBE_SECONDS = 600.0  # a tracer the node said it lacks is tried again after this
_TRANSFER_BITS = bloom_bits(bytes.fromhex(TRANSFER_TOPIC[2:]))

Screen = Callable[[Iterable[str]], set[str]]
OpenNativeAddresses = Callable[[], Awaitable[list[str]]]
OpenAddresses = Callable[[], Awaitable[list[str]]]
# (addresses, through block) -> native coin credited to each address up to that block
NativeCredited = Callable[[Sequence[str], int], Awaitable[dict[str, int]]]
# whether the network has forwarder stores (their sweeps are worth fetching)
HasForwarders = Callable[[], Awaitable[bool]]


class InconsistentChain(RpcError):
    """The node answered from two branches at once (a reorg mid-fetch); fetch again."""

    kind = "inconsistent"
    transient = True


@dataclass(frozen=True, slots=True)
class FetchedBlock:
    block: Block
    transfers: tuple[Transfer, ...]  # in chain order
    # NativeSwept logs of the block, not yet screened: any contract can emit the same event,
    # only those whose address is an issued forwarder deposit are sweeps (indexer.services.blocks)
    native_sweeps: tuple[Sweep, ...] = ()

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.block.timestamp, UTC)


class BlockFetcher:
    """Reads ranges of one network's blocks into `FetchedBlock`s.

    `native_credited` (native coin credited per address up to a block) enables the
    reconciliation after a window without state; `open_addresses` (every open invoice's
    address) enables the logsBloom cross-check of empty `eth_getLogs` answers; `has_forwarders`
    (whether the network has forwarder stores) enables the sweeps' logs.
    """

    def __init__(
        self,
        reader: ChainReader,
        network: Network,
        screen: Screen,
        open_native_addresses: OpenNativeAddresses,
        *,
        native_credited: NativeCredited | None = None,
        open_addresses: OpenAddresses | None = None,
        has_forwarders: HasForwarders | None = None,
        refetch_pause: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.network = network
        self.screen = screen
        self.open_native_addresses = open_native_addresses
        self.native_credited = native_credited
        self.open_addresses = open_addresses
        self.has_forwarders = has_forwarders
        # True once the network has a forwarder store: stores are never deleted, so it stays
        self.watches_sweeps = False
        self.refetch_pause = refetch_pause
        self._monotonic = monotonic
        self._contracts = [t.contract.lower() for t in network.tokens if t.contract]
        self._contract_bits = {c: bloom_bits(bytes.fromhex(c[2:])) for c in self._contracts}
        self._address_bits: dict[str, tuple[int, int, int]] = {}
        self._refused: dict[str, float] = {}  # tracer -> when the node said method-not-found
        self._unreconciled = True  # reconcile once after every start (a gap may precede it)
        self._missing_since: int | None = None  # first block of the current window without state

    @property
    def tracer(self) -> str:
        """The tracer the next range will try first ("balance" when the node offers none)."""
        return next((t for t in _TRACERS if self._usable(t)), "balance")

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
        swept: dict[int, list[Sweep]] = {b.number: [] for b in blocks}
        for sweep in await self._native_sweeps(first, last, by_number):
            swept[sweep.block_number].append(sweep)
        return [FetchedBlock(b, tuple(found[b.number]), tuple(swept[b.number])) for b in blocks]

    async def _native_sweeps(self, first: int, last: int, blocks: dict[int, Block]) -> list[Sweep]:
        """Every `NativeSwept` log of the range, on a network with forwarder stores."""
        if not self.watches_sweeps:
            if self.has_forwarders is None or not await self.has_forwarders():
                return []
            self.watches_sweeps = True
        logs = await self.reader.get_logs(first, last, None, [NATIVE_SWEPT_TOPIC])
        sweeps: list[Sweep] = []
        for raw in logs:
            decoded = _native_swept(raw)
            if decoded is None:
                continue
            number, block_hash, tx_hash, log_index, address, treasury, amount = decoded
            block = blocks.get(number)
            if block is None:
                continue
            if block_hash != block.hash:
                raise InconsistentChain(None, f"log of block {block.number} from another branch")
            sweeps.append(
                Sweep(self.network.name, number, block.hash,
                      datetime.fromtimestamp(block.timestamp, UTC), tx_hash, log_index, address,
                      treasury, self.network.native.symbol, None, amount)
            )  # fmt: skip
        return sweeps

    async def _token_transfers(
        self, first: int, last: int, blocks: dict[int, Block]
    ) -> list[Transfer]:
        if not self._contracts:
            return []
        logs = await self.reader.get_logs(first, last, self._contracts, [TRANSFER_TOPIC])
        logs += await self._refetched_logs(logs, blocks)
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

    async def _refetched_logs(
        self, logs: Sequence[dict[str, object]], blocks: dict[int, Block]
    ) -> list[dict[str, object]]:
        """Logs of blocks the node answered empty although their bloom says they may hold some.

        A node answering `[]` for a block whose logsBloom holds a watched token, the Transfer
        topic and an open invoice's address is lying or broken: ask it again after a pause,
        before the cursor moves past the block. A bloom has false positives, so a block
        still empty after the second answer is accepted (and counted, and logged).
        """
        if self.open_addresses is None:
            return []
        answered = {_log_block(raw) for raw in logs}
        silent = [b for n, b in blocks.items() if n not in answered and b.logs_bloom]
        if not silent:
            return []
        suspects = [b for b in silent if self._bloom_suspects(b, await self._open_bits())]
        if not suspects:
            return []
        await asyncio.sleep(self.refetch_pause)
        refetched: list[dict[str, object]] = []
        for block in suspects:
            again = await self.reader.get_logs(
                block.number, block.number, self._contracts, [TRANSFER_TOPIC]
            )
            outcome = "found" if again else "still_empty"
            metrics.EMPTY_LOGS_REFETCHED.labels(self.network.name, outcome).inc()
            log.warning(
                "%s: node answered no logs for block %d although its logsBloom holds a watched "
                "Transfer to an open invoice; asked again: %s",
                self.network.name, block.number, outcome.replace("_", " "),
            )  # fmt: skip
            refetched += again
        return refetched

    async def _open_bits(self) -> list[tuple[int, int, int]]:
        assert self.open_addresses is not None
        bits = []
        for address in await self.open_addresses():
            cached = self._address_bits.get(address)
            if cached is None:
                cached = self._address_bits[address] = bloom_bits(address_topic(address))
            bits.append(cached)
        return bits

    def _bloom_suspects(self, block: Block, open_bits: Sequence[tuple[int, int, int]]) -> bool:
        bloom = block.logs_bloom
        if bloom is None or not open_bits or not bloom_has(bloom, _TRANSFER_BITS):
            return False
        if not any(bloom_has(bloom, bits) for bits in self._contract_bits.values()):
            return False
        return any(bloom_has(bloom, bits) for bits in open_bits)

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
        """Internal native transfers; never fails for a pruned state (see the module doc)."""
        reconciled: list[Transfer] = []
        if self._unreconciled:
            found = await self._reconcile(blocks[0])
            if found is None:
                self._state_missing(blocks)
                return []
            reconciled = found
        busy = [b for b in blocks if b.transactions]
        if not busy:
            return reconciled
        try:
            moves = await self._moves(busy, native)
        except MissingState:
            self._state_missing(blocks)
            return reconciled
        self._state_present(blocks[0].number)
        return reconciled + moves

    async def _moves(self, busy: Sequence[Block], native: Sequence[Transfer]) -> list[Transfer]:
        for tracer in _TRACERS:
            if not self._usable(tracer):
                continue
            try:
                return await self._traced(busy, tracer)
            except MethodNotFound as exc:
                self._refused[tracer] = self._monotonic()
                metrics.TRACER_UNSUPPORTED.labels(self.network.name, tracer).set(1)
                log.warning(
                    "node for %s lacks %s (%s); internal native transfers come from %s until "
                    "it is asked again in %.0fs",
                    self.network.name, tracer, exc.message, self.tracer, TRACER_REPROBE_SECONDS,
                )  # fmt: skip
        return await self._reconciled(busy, native)

    def _usable(self, tracer: str) -> bool:
        refused = self._refused.get(tracer)
        if refused is None:
            return True
        if self._monotonic() - refused < TRACER_REPROBE_SECONDS:
            return False
        del self._refused[tracer]  # ask again: the API may have been enabled since
        metrics.TRACER_UNSUPPORTED.labels(self.network.name, tracer).set(0)
        return True

    def _state_missing(self, blocks: Sequence[Block]) -> None:
        self._unreconciled = True
        metrics.STATE_MISSING_BLOCKS.labels(self.network.name).inc(len(blocks))
        metrics.STATE_MISSING.labels(self.network.name).set(1)
        if self._missing_since is None:
            self._missing_since = blocks[0].number
            log.warning(
                "%s: node has no state for blocks from %d (pruned); crediting token and direct "
                "native payments, and internal native transfers later by balance "
                "reconciliation", self.network.name, blocks[0].number,
            )  # fmt: skip

    def _state_present(self, number: int) -> None:
        if self._missing_since is None:
            return
        log.warning(
            "%s: node has state again from block %d; blocks %d..%d were processed without it",
            self.network.name, number, self._missing_since, number - 1,
        )  # fmt: skip
        self._missing_since = None
        metrics.STATE_MISSING.labels(self.network.name).set(0)

    async def _reconcile(self, block: Block) -> list[Transfer] | None:
        """Credits for open native invoices whose balance before `block` exceeds their credits.

        None when the node has no state there either. The key, ("reconciled:" + block hash +
        ":" + address, -3), is the same on every replay of the block, and the amount is the
        balance at a fixed block minus credits up to it: a replay finds the same, a later
        reconciliation counts this one as credited, and a reorg of `block` orphans it.
        """
        if self.native_credited is None:
            self._unreconciled = False
            return []
        addresses = sorted(self.screen(await self.open_native_addresses()))
        if not addresses:
            self._unreconciled = False
            return []
        try:
            balances = await self.reader.get_balances(addresses, block.number - 1)
        except MissingState:
            return None
        credited = await self.native_credited(addresses, block.number - 1)
        self._unreconciled = False
        self._state_present(block.number)
        transfers: list[Transfer] = []
        for address in addresses:
            surplus = balances[address] - credited.get(address, 0)
            if surplus <= 0:
                continue
            transfers.append(
                _transfer(self.network.name, block, f"reconciled:{block.hash}:{address}",
                          RECONCILED_LOG_INDEX, "reconciled", self.network.native.symbol,
                          None, "", address, surplus)
            )  # fmt: skip
            metrics.RECONCILED_CREDITS.labels(self.network.name).inc()
            log.error(
                "%s: %d %s at %s arrived unseen before block %d (no state to trace it); "
                "credited from its balance and flagged for review",
                self.network.name, surplus, self.network.native.symbol, address, block.number,
            )  # fmt: skip
        return transfers

    async def _traced(self, blocks: Sequence[Block], tracer: str) -> list[Transfer]:
        """Internal transfers from `tracer`; `MethodNotFound` if the node lacks it."""
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
            raise MethodNotFound(None, f"{tracer} is not available")
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


def _native_swept(
    raw: dict[str, object],
) -> tuple[int, str, str, int, str, str, int] | None:
    """(block, block hash, tx, log index, address, treasury, amount) of a `NativeSwept` log."""
    topics = raw.get("topics")
    if raw.get("removed") or not isinstance(topics, list) or len(topics) != 2:
        return None
    if str(topics[0]).lower() != NATIVE_SWEPT_TOPIC:
        return None
    fields = (raw.get(k) for k in ("blockNumber", "blockHash", "transactionHash", "logIndex"))
    number, block_hash, tx_hash, log_index = fields
    address, data, treasury = raw.get("address"), raw.get("data"), str(topics[1])
    texts = (number, block_hash, tx_hash, log_index, address, data)
    if not all(isinstance(t, str) for t in texts):
        return None
    assert isinstance(data, str) and isinstance(address, str)
    body = data.removeprefix("0x")
    if len(body) != 64 or len(treasury) != 66 or treasury[2:26] != "0" * 24:
        return None
    try:
        amount = int(body, 16)
    except ValueError:
        return None
    return (
        int(str(number), 16), str(block_hash).lower(), str(tx_hash).lower(),
        int(str(log_index), 16), address.lower(), "0x" + treasury[26:].lower(), amount,
    )  # fmt: skip


def _log_block(raw: dict[str, object]) -> int | None:
    number = raw.get("blockNumber")
    return int(number, 16) if isinstance(number, str) else None


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
