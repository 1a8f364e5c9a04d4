"""Chain presets: the data file's addresses, and `[networks.X] preset = "..."` in a config."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from indexer import preset
from indexer.config import ConfigError, load_settings

NODE = "ws://127.0.0.1:8546"


def _tokens() -> list[tuple[str, dict[str, object]]]:
    return [(name, t) for name, table in preset.presets().items() for t in table["tokens"]]


def test_the_data_file_has_exactly_the_named_presets() -> None:
    assert tuple(preset.presets()) == preset.NAMES


@pytest.mark.parametrize(
    ("name", "token"),
    _tokens(),
    ids=lambda v: str(v.get("symbol", v)) if isinstance(v, dict) else v,
)
def test_every_preset_contract_is_eip55_checksummed(name: str, token: dict[str, object]) -> None:
    contract = str(token["contract"])
    assert contract == to_checksum_address(contract), f"{name} {token['symbol']}"


@pytest.mark.parametrize("name", preset.NAMES)
def test_contracts_and_symbols_are_unique_within_a_network(name: str) -> None:
    tokens = preset.preset(name)["tokens"]  # type: ignore[index]
    contracts = [t["contract"].lower() for t in tokens]
    symbols = [t["symbol"] for t in tokens]
    assert len(set(contracts)) == len(contracts)
    assert len(set(symbols)) == len(symbols)


def test_no_contract_is_listed_on_two_chain_ids() -> None:
    chains: dict[str, set[int]] = {}
    for name, token in _tokens():
        chain_id = preset.preset(name)["chain_id"]  # type: ignore[index]
        chains.setdefault(str(token["contract"]).lower(), set()).add(chain_id)
    assert {c: ids for c, ids in chains.items() if len(ids) > 1} == {}


def test_chain_ids_are_unique_across_presets() -> None:
    ids = [t["chain_id"] for t in preset.presets().values()]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", preset.NAMES)
def test_every_preset_builds_a_valid_network(tmp_path: Path, name: str) -> None:
    # given only a preset and the operator's node
    path = _config(tmp_path, f'[networks.n]\npreset = "{name}"\nrpc_url = "{NODE}"\n')

    # when the config is loaded
    network = load_settings(path, env={}).networks["n"]

    # then every value comes from the preset, tokens checksummed, bridged ones named apart
    table = preset.preset(name)
    assert table is not None
    assert network.chain_id == table["chain_id"] and network.preset == name
    assert network.finality == table["finality"] and network.block_time == table["block_time"]
    assert network.native.symbol == table["native"]["symbol"]
    assert [(t.symbol, t.contract, t.decimals) for t in network.tokens] == [
        (t["symbol"], t["contract"], t["decimals"]) for t in table["tokens"]
    ]
    assert all(t.symbol in ("USDT", "USDC", "USDT.e", "USDC.e") for t in network.tokens)


def test_a_preset_value_can_be_overridden(tmp_path: Path) -> None:
    # given arbitrum-one with faster acceptance, a longer lag allowance and an extra token
    path = _config(
        tmp_path,
        f'[networks.arb]\npreset = "arbitrum-one"\nrpc_url = "{NODE}"\n'
        'finality = "depth"\nconfirmations = 20\nmax_lag_seconds = 300\ntitle = "Arb"\n'
        "[[networks.arb.tokens]]\n"
        'symbol = "DAI"\ncontract = "0xda10009cbd5d07dd0cecc66161fc93d7c9000da1"\ndecimals = 18\n',
    )

    network = load_settings(path, env={}).networks["arb"]

    assert (network.finality, network.confirmations) == ("depth", 20)
    assert (network.max_lag_seconds, network.title, network.block_time) == (300.0, "Arb", 0.25)
    assert [t.symbol for t in network.tokens] == ["USDT", "USDC", "USDC.e", "DAI"]
    assert network.asset("DAI").contract == "0xDA10009cBd5D07dd0CeCc66161FC93D7c9000da1"  # type: ignore[union-attr]


def test_a_configured_token_replaces_the_presets_token_of_the_same_symbol(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        f'[networks.s]\npreset = "sepolia"\nrpc_url = "{NODE}"\n'
        "[[networks.s.tokens]]\n"
        'symbol = "USDC"\ncontract = "0x000000000000000000000000000000000000dEaD"\ndecimals = 6\n',
    )

    tokens = load_settings(path, env={}).networks["s"].tokens

    assert [(t.symbol, t.contract) for t in tokens] == [
        ("USDC", "0x000000000000000000000000000000000000dEaD")
    ]


def test_a_preset_from_an_environment_variable(tmp_path: Path) -> None:
    path = _config(tmp_path, f'[networks.base]\nrpc_url = "{NODE}"\n')

    settings = load_settings(path, env={"CHAINPAY_NETWORKS__BASE__PRESET": "base"})

    assert settings.networks["base"].chain_id == 8453


def test_a_network_without_preset_keeps_defaults_by_chain_id(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        f'[networks.p]\nchain_id = 137\nrpc_url = "{NODE}"\nconfirmations = 5\n'
        'native = { symbol = "POL", decimals = 18 }\n',
    )

    network = load_settings(path, env={}).networks["p"]

    assert (network.title, network.block_time, network.finality) == ("Polygon PoS", 2.0, "depth")
    assert network.tokens == ()


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            f'[networks.x]\npreset = "arbitrum"\nrpc_url = "{NODE}"\n',
            "networks.x.preset",
            "unknown preset 'arbitrum'; known: ethereum, bsc, polygon, arbitrum-one",
        ),
        (
            f'[networks.x]\npreset = "base"\nchain_id = 1\nrpc_url = "{NODE}"\n',
            "networks.x.chain_id",
            "1 contradicts preset 'base' (chain id 8453)",
        ),
        (
            f'[networks.x]\npreset = "ethereum"\nrpc_url = "{NODE}"\n'
            "[[networks.x.tokens]]\n"
            'symbol = "USDC.base"\ncontract = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"\n'
            "decimals = 6\n",
            "networks.x.tokens[0].contract",
            "is USDC on base (chain id 8453), not a token of chain id 1",
        ),
        (
            f'[networks.x]\nchain_id = 56\nrpc_url = "{NODE}"\nconfirmations = 15\n'
            'native = { symbol = "BNB", decimals = 18 }\n[[networks.x.tokens]]\n'
            'symbol = "USDT"\ncontract = "0x55d398326f99059fF775485246999027B3197955"\n'
            "decimals = 6\n",
            "networks.x.tokens[0].contract",
            "is USDT with 18 decimals on bsc, not USDT with 6",
        ),
        (
            f'[networks.a]\npreset = "bsc"\nrpc_url = "{NODE}"\n'
            f'[networks.b]\npreset = "bsc"\nrpc_url = "{NODE}"\n',
            "networks.b.chain_id",
            "chain id 56 is already network 'a'",
        ),
        (
            f'[networks.x]\npreset = "base"\nrpc_url = "{NODE}"\nfinality = "latest"\n',
            "networks.x.finality",
            'expected "depth", "safe" or "finalized"',
        ),
        (
            f'[networks.x]\nrpc_url = "{NODE}"\nconfirmations = 3\n',
            "networks.x.chain_id",
            "is required (or a preset)",
        ),
    ],
    ids=[
        "unknown-preset",
        "chain-id-contradicts-preset",
        "token-of-another-chain",
        "known-token-with-wrong-decimals",
        "two-networks-one-chain-id",
        "unknown-finality-rule",
        "no-chain-id-and-no-preset",
    ],
)
def test_bad_preset_use_is_refused_naming_file_and_key(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = _config(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})

    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def _config(tmp_path: Path, networks: str) -> Path:
    path = tmp_path / "chainpay.toml"
    path.write_text(f'database = "{tmp_path / "db.duckdb"}"\n{networks}')
    return path
