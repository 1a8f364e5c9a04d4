"""Chain presets: the reviewed data file `indexer/presets.toml`, read once, and lookups into it.

A preset is a plain `[networks.NAME]` table (chain id, native coin, tokens, confirmations,
finality, block time) that the config starts from; see `indexer.config`. The file is package
data so an installed chainpay carries the same addresses the tests checked.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

NAMES = (
    "ethereum", "bsc", "polygon", "arbitrum-one", "base", "optimism", "avalanche",
    "sepolia", "bsc-testnet",
)  # fmt: skip
FINALITY_RULES = ("depth", "safe", "finalized")


@dataclass(frozen=True, slots=True)
class KnownToken:
    """A token contract some preset lists: where, and as what."""

    preset: str
    chain_id: int
    symbol: str
    decimals: int


@cache
def presets() -> dict[str, dict[str, Any]]:
    """Every preset's table by name, as parsed from the data file (do not mutate)."""
    text = resources.files("indexer").joinpath("presets.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def preset(name: str) -> dict[str, Any] | None:
    return presets().get(name)


@cache
def known_tokens() -> dict[str, KnownToken]:
    """Every preset token by lowercase contract address."""
    found: dict[str, KnownToken] = {}
    for name, table in presets().items():
        for token in table.get("tokens", []):
            found[token["contract"].lower()] = KnownToken(
                name, table["chain_id"], token["symbol"], token["decimals"]
            )
    return found


def by_chain_id(chain_id: int) -> dict[str, Any] | None:
    """The first preset for this chain id, for defaults of networks configured by hand."""
    return next((t for t in presets().values() if t["chain_id"] == chain_id), None)
