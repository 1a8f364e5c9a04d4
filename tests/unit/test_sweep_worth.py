"""worth_sending: a batch is sent when it moves at least `multiple` times its gas cost, exactly."""

from __future__ import annotations

import pytest

from indexer.domain.network import Asset
from indexer.domain.pricing import Rate
from indexer.sweep import worth_sending

ETH = Asset("ETH", 18)
DECIMALS = {"ETH": 18, "USDT": 6, "DAI": 18}
RATES = {"ETH": Rate(300000000000, 8), "USDT": Rate(1, 0), "DAI": Rate(1000100000000000000, 18)}
GWEI = 10**9
COST = 100_000 * 3 * GWEI  # 3e14 wei: $0.90 at $3,000 an ETH; 10x is $9.00


@pytest.mark.parametrize(
    ("held", "worth"),
    [
        pytest.param({"ETH": 10 * COST}, True, id="native-exactly-10x"),
        pytest.param({"ETH": 10 * COST - 1}, False, id="native-one-wei-short"),
        pytest.param({"USDT": 9_000_000}, True, id="usdt-exactly-9-dollars"),
        pytest.param({"USDT": 8_999_999}, False, id="usdt-one-unit-short"),
        pytest.param({"USDT": 4_500_000, "ETH": 15 * 10**14}, True, id="usdt-and-eth-add-up"),
        pytest.param({"DAI": 8_999_100_089_991_000_900}, True, id="dai-at-1.0001-just-enough"),
        pytest.param({"DAI": 8_999_100_089_991_000_899}, False, id="dai-one-wei-short"),
    ],
)
def test_a_batch_is_worth_sending_from_exactly_the_multiple(
    held: dict[str, int], worth: bool
) -> None:
    assert worth_sending(held, ETH, COST, 10, RATES, DECIMALS) is worth


def test_native_alone_needs_no_price() -> None:
    assert worth_sending({"ETH": 10 * COST}, ETH, COST, 10, {}, DECIMALS)
