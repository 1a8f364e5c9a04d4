"""The confirmation policy: depth, and a finality tag with a bounded wait falling back to depth."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from indexer.domain.confirmation import ChainPosition, confirmations, is_confirmed
from indexer.domain.network import Asset, Network

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEPTH = Network("eth", 1, "ws://node", 12, Asset("ETH", 18))
FINALITY = replace(DEPTH, finality="finalized", finality_wait_seconds=900)
SAFE = replace(DEPTH, finality="safe", finality_wait_seconds=1800)


@pytest.mark.parametrize(
    ("block", "head", "expected"),
    [(100, 100, 1), (100, 111, 12), (100, 99, 0)],
    ids=["head-block-has-one", "twelve-deep", "above-head-has-none"],
)
def test_confirmations_count_the_block_itself(block: int, head: int, expected: int) -> None:
    assert confirmations(block, head) == expected


@pytest.mark.parametrize(
    ("network", "head", "finalized", "age", "expected"),
    [
        (DEPTH, 110, None, 0, False),
        (DEPTH, 111, None, 0, True),
        (FINALITY, 101, 100, 0, True),
        (FINALITY, 111, 90, 60, False),
        (FINALITY, 111, 90, 901, True),
        (FINALITY, 105, 90, 3600, False),
        (FINALITY, 111, None, 0, True),
        (FINALITY, 110, None, 0, False),
        (SAFE, 101, 100, 0, True),
        (SAFE, 111, 99, 1799, False),
        (SAFE, 111, 99, 1800, True),
    ],
    ids=[
        "depth-11-of-12",
        "depth-12-of-12",
        "finalized-before-depth",
        "deep-but-waiting-for-finality",
        "finality-stalled-falls-back-to-depth",
        "fallback-still-needs-depth",
        "node-without-the-tag-gets-depth-at-once",
        "node-without-the-tag-still-needs-depth",
        "safe-tag-before-depth",
        "safe-tag-lagging-waits",
        "safe-tag-stalled-falls-back-to-depth",
    ],
)
def test_is_confirmed(
    network: Network, head: int, finalized: int | None, age: int, expected: bool
) -> None:
    position = ChainPosition(head=head, finalized=finalized, now=NOW)
    assert is_confirmed(network, 100, NOW - timedelta(seconds=age), position) is expected
