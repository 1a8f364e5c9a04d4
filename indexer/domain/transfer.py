"""A transfer as the indexer stores it: a configured token's Transfer log or native coin moved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Transfer:
    """One row of `transfers`. Addresses and hashes are lowercase hex; amount in base units."""

    network: str
    block_number: int
    block_hash: str
    block_time: datetime
    tx_hash: str
    log_index: int  # -1: a transaction's own value; >= 1_000_000: an internal call
    kind: str  # erc20 | native | internal
    asset: str  # the configured symbol
    token: str | None  # the token contract; None for native coin
    from_address: str
    to_address: str
    amount: int
