"""Reading Chainlink-style price feeds (`AggregatorV3Interface`) through the operator's node.

Every feed of a network is read at one block: the head's number is asked first, then each feed's
`decimals()` and `latestRoundData()` at that number, so the readings of a cross rate come from
one state. A feed that reverts, answers garbage or times out fails alone; the others still read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from indexer.chain.errors import RpcError
from indexer.chain.rpc import JsonRpcClient
from indexer.domain.errors import ChainpayError
from indexer.domain.pricing import FeedReading, PriceFeed

# keccak256("decimals()")[:4] and keccak256("latestRoundData()")[:4]
DECIMALS = "0x313ce567"
LATEST_ROUND_DATA = "0xfeaf968c"
_ROUND_TYPES = ("uint80", "int256", "uint256", "uint256", "uint80")


class FeedUnreadable(ChainpayError):
    """A feed's call failed (reverted, not a contract, undecodable answer, node error)."""


@dataclass(frozen=True)
class FeedResult:
    feed: PriceFeed
    reading: FeedReading | None
    error: FeedUnreadable | None


async def read_feeds(client: JsonRpcClient, feeds: Sequence[PriceFeed]) -> list[FeedResult]:
    """One reading per feed at the node's current head (a node error fails them all)."""
    try:
        block = int(await client.call("eth_blockNumber"), 16)
    except RpcError as exc:
        error = FeedUnreadable(f"node did not answer eth_blockNumber: {exc.kind}: {exc}")
        return [FeedResult(feed, None, error) for feed in feeds]
    return list(await asyncio.gather(*(_read(client, feed, block) for feed in feeds)))


async def _read(client: JsonRpcClient, feed: PriceFeed, block: int) -> FeedResult:
    try:
        decimals_raw, round_raw = await asyncio.gather(
            _call(client, feed.address, DECIMALS, block),
            _call(client, feed.address, LATEST_ROUND_DATA, block),
        )
        (decimals,) = abi_decode(["uint8"], decimals_raw)
        round_id, answer, started, updated, answered = abi_decode(list(_ROUND_TYPES), round_raw)
    except RpcError as exc:
        return FeedResult(feed, None, FeedUnreadable(f"{exc.kind}: {exc}"))
    except (DecodingError, ValueError, OverflowError) as exc:
        return FeedResult(feed, None, FeedUnreadable(f"not an aggregator answer: {exc}"))
    reading = FeedReading(
        pair=feed.pair,
        feed=feed.address,
        decimals=int(decimals),
        round_id=int(round_id),
        answer=int(answer),
        started_at=int(started),
        updated_at=int(updated),
        answered_in_round=int(answered),
        block=block,
    )
    return FeedResult(feed, reading, None)


async def _call(client: JsonRpcClient, to: str, data: str, block: int) -> bytes:
    result = await client.call("eth_call", [{"to": to, "data": data}, hex(block)])
    if not isinstance(result, str) or not result.startswith("0x"):
        raise ValueError(f"eth_call returned {result!r}")
    raw = bytes.fromhex(result[2:])
    if not raw:  # no code at the address: geth answers 0x
        raise ValueError("empty answer (no contract at this address?)")
    return raw
