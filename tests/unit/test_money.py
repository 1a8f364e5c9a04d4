"""Amounts: decimal strings at the edge, exact ints in base units inside."""

import pytest

from indexer.domain.errors import ValidationError
from indexer.domain.money import UINT256_MAX, format_amount, parse_amount


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("12.5", 6, 12_500_000),
        ("12.500000", 6, 12_500_000),
        ("0.000001", 6, 1),
        ("1", 18, 10**18),
        ("7", 0, 7),
        ("0.1", 18, 10**17),
        (str(UINT256_MAX), 0, UINT256_MAX),
    ],
    ids=["half", "trailing-zeros", "smallest", "one-ether", "no-decimals", "tenth", "uint256-max"],
)
def test_parse_amount_gives_exact_base_units(text: str, decimals: int, units: int) -> None:
    assert parse_amount(text, decimals) == units


@pytest.mark.parametrize(
    ("value", "decimals", "code"),
    [
        ("0", 6, "amount_not_positive"),
        ("0.000", 6, "amount_not_positive"),
        ("-1", 6, "invalid_amount"),
        ("+1", 6, "invalid_amount"),
        ("1e3", 6, "invalid_amount"),
        ("1.", 6, "invalid_amount"),
        (".5", 6, "invalid_amount"),
        (" 1", 6, "invalid_amount"),
        ("1,5", 6, "invalid_amount"),
        ("NaN", 6, "invalid_amount"),
        ("", 6, "invalid_amount"),
        (12.5, 6, "invalid_amount"),
        (12, 6, "invalid_amount"),
        (None, 6, "invalid_amount"),
        ("0.0000001", 6, "too_many_decimals"),
        ("1.5", 0, "too_many_decimals"),
        (str(UINT256_MAX + 1), 0, "amount_too_large"),
        ("9" * 300, 0, "invalid_amount"),
    ],
)
def test_parse_amount_rejects_with_a_code_naming_the_field(
    value: object, decimals: int, code: str
) -> None:
    with pytest.raises(ValidationError) as error:
        parse_amount(value, decimals)
    assert error.value.code == code
    assert error.value.field == "amount"


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [(12_500_000, 6, "12.5"), (0, 6, "0"), (1, 6, "0.000001"), (10**18, 18, "1"), (5, 0, "5")],
)
def test_format_amount_drops_trailing_zeros(units: int, decimals: int, text: str) -> None:
    assert format_amount(units, decimals) == text


def test_amounts_round_trip_at_uint256_max() -> None:
    assert parse_amount(format_amount(UINT256_MAX, 18), 18) == UINT256_MAX
