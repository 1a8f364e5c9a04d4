"""When a payment counts as confirmed: depth, or the node's `safe`/`finalized` tag, bounded.

Pure policy, no I/O. Depth is `head - block + 1` (a payment in the head block has one
confirmation). With a finality tag, a payment is confirmed as soon as its block is at or below
the node's block with that tag; while the tag lags (Ethereum's finality has stalled for an hour,
a rollup's batcher can stop posting), a payment that is deep enough and older than
`finality_wait_seconds` falls back to the depth rule. A node that does not answer the tag at
all (`finalized` None) gets the depth rule at once: the reader logged a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from indexer.domain.network import Network


@dataclass(frozen=True, slots=True)
class ChainPosition:
    """What the indexer knows of the chain when it judges confirmations."""

    head: int  # the block just processed (the indexer's view of the head)
    finalized: (
        int | None
    )  # the node's block with the network's tag; None: no such tag, or not asked
    now: datetime


def confirmations(block_number: int, head: int) -> int:
    """How many blocks bury `block_number`, itself included; 0 once above the head."""
    return max(head - block_number + 1, 0)


def is_confirmed(
    network: Network, block_number: int, block_time: datetime, position: ChainPosition
) -> bool:
    """Whether a payment in `block_number` (mined at `block_time`) is confirmed now."""
    deep = confirmations(block_number, position.head) >= network.confirmations
    if network.finality_tag is None or position.finalized is None:
        return deep
    if block_number <= position.finalized:
        return True
    waited = (position.now - block_time).total_seconds()
    return deep and waited >= network.finality_wait_seconds
