"""Fees of a sweep replacing a stuck one: geth, BSC, Erigon and Nethermind accept a replacement
only when both its fee cap and its tip exceed the pending one's by 10%."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from indexer.workers.sweeper import Fees, replacement_fees

WEI = st.integers(min_value=0, max_value=10**24)


def geth_accepts(new: Fees, old: Fees) -> bool:
    """geth's rule (core/txpool/legacypool/list.go, price bump 10): strictly above both
    thresholds, each old fee x 110 / 100 rounded down."""
    cap, tip = old.max_fee * 110 // 100, old.tip * 110 // 100
    return new.max_fee > cap and new.tip > tip and new.max_fee > old.max_fee and new.tip > old.tip


@given(WEI, WEI, WEI, WEI)
def test_a_replacement_clears_the_pools_bump_and_never_offers_less_than_planned(
    planned_cap: int, planned_tip: int, stuck_cap: int, stuck_tip: int
) -> None:
    planned = Fees(max(planned_cap, planned_tip), planned_tip)
    stuck = Fees(max(stuck_cap, stuck_tip), stuck_tip)
    fees = replacement_fees(planned, stuck)
    assert geth_accepts(fees, stuck)
    assert fees.max_fee >= planned.max_fee and fees.tip >= planned.tip
    assert fees.tip <= fees.max_fee  # a valid EIP-1559 transaction


def test_unknown_stuck_fees_keep_the_plan_and_each_bump_adds_an_eighth() -> None:
    planned = Fees(30 * 10**9, 10**9)
    assert replacement_fees(planned, None) == planned
    assert planned.bumped() == Fees(33_750_000_001, 1_125_000_001)
    assert geth_accepts(planned.bumped(), planned)
    # zero fees (a dev chain) still rise
    assert Fees(0, 0).bumped() == Fees(1, 1)


def test_a_plan_already_above_the_bump_is_sent_as_planned() -> None:
    stuck = Fees(10 * 10**9, 10**9)
    planned = Fees(40 * 10**9, 2 * 10**9)  # the base fee doubled twice since
    assert replacement_fees(planned, stuck) == planned
