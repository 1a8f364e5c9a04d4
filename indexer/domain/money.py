"""Money: amounts are ints in an asset's base units; decimal strings only at the edge."""

from __future__ import annotations

import re

from indexer.domain.errors import ValidationError

UINT256_MAX = 2**256 - 1

# [0-9], not \d: in Python \d also matches "١" or "１", and int() accepts them.
_DECIMAL = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")


def parse_amount(text: object, decimals: int, field: str = "amount") -> int:
    """Parse a positive decimal string like "12.5" into base units, exactly.

    Rejects non-strings (a JSON number may already have lost precision), signs, exponents,
    more fractional digits than the asset has, zero, and values above uint256.
    """
    if not isinstance(text, str):
        raise ValidationError(
            "invalid_amount", 'amount must be a decimal string, e.g. "12.50"', field
        )
    match = _DECIMAL.match(text.strip()) if len(text) <= 200 else None
    if match is None or text != text.strip():
        raise ValidationError(
            "invalid_amount", 'amount must be a plain decimal string, e.g. "12.50"', field
        )
    frac = match.group("frac") or ""
    if len(frac) > decimals:
        raise ValidationError(
            "too_many_decimals", f"amount has more than {decimals} decimal places", field
        )
    units = int(match.group("int") + frac.ljust(decimals, "0"))
    if units == 0:
        raise ValidationError("amount_not_positive", "amount must be greater than zero", field)
    if units > UINT256_MAX:
        raise ValidationError("amount_too_large", "amount is larger than uint256 allows", field)
    return units


def format_amount(units: int, decimals: int) -> str:
    """Format base units as a decimal string without trailing zeros ("12.5", "3", "0")."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    text = str(whole)
    if decimals and frac:
        text += "." + str(frac).rjust(decimals, "0").rstrip("0")
    return sign + text
