"""A sweep as the books keep it: what a forwarder deposit address sent to its store's treasury."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Sweep:
    """One row of `sweeps`. Addresses and hashes are lowercase hex; amount in base units.

    An ERC20 sweep is the token's Transfer log (deposit address -> treasury); a native sweep is
    the DepositForwarder's `NativeSwept(treasury, amount)` log, emitted from the deposit
    address itself right before its selfdestruct moves the coin.
    """

    network: str
    block_number: int
    block_hash: str
    block_time: datetime
    tx_hash: str
    log_index: int
    address: str  # the deposit address
    treasury: str
    asset: str  # the configured symbol
    token: str | None  # the token contract; None for native coin
    amount: int
    orphaned: bool = False
