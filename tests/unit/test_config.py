"""Configuration: every mistake is one message naming the source and the key."""

from pathlib import Path

import pytest

from indexer.config import ConfigError, load_settings

GOOD = """
database = "x.duckdb"
public_url = "https://pay.example.com/"

[networks.ethereum]
chain_id = 1
rpc_url = "wss://node.internal:8546"
confirmations = 12
native = { symbol = "ETH", decimals = 18 }
[[networks.ethereum.tokens]]
symbol = "USDT"
contract = "0xdac17f958d2ee523a2206206994597c13d831ec7"
decimals = 6
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_config_builds_networks_with_checksummed_contracts(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), env={})
    eth = settings.networks["ethereum"]
    assert settings.public_url == "https://pay.example.com"
    assert eth.asset("USDT").contract == "0xdAC17F958D2ee523a2206206994597C13D831ec7"  # type: ignore[union-attr]
    assert eth.display_name == "Ethereum"
    assert eth.token_by_contract("0xDAC17F958D2EE523A2206206994597C13D831EC7") is not None


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.database == Path("./chainpay.duckdb")
    assert settings.networks == {}
    assert settings.webhooks.allow_private_targets is False
    assert settings.duckdb_threads == 1


def test_env_overrides_nested_keys(tmp_path: Path) -> None:
    env = {
        "CHAINPAY_DATABASE": "/data/other.duckdb",
        "CHAINPAY_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
        "CHAINPAY_NETWORKS__ETHEREUM__CONFIRMATIONS": "3",
        "CHAINPAY_DUCKDB__THREADS": "2",
    }
    settings = load_settings(write(tmp_path, GOOD), env=env)
    assert settings.database == Path("/data/other.duckdb")
    assert settings.webhooks.allow_private_targets is True
    assert settings.networks["ethereum"].confirmations == 3
    assert settings.duckdb_threads == 2


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_settings(env={"CHAINPAY_CONFIG": str(path)}).source == str(path)


BAD = [
    ("unknown-top-key", "colour = 1\n" + GOOD, "colour", "unknown key"),
    (
        "unknown-network-key",
        GOOD.replace("confirmations = 12", "confirmations = 12\nconfirms = 1"),
        "networks.ethereum.confirms",
        "unknown key",
    ),
    (
        "wrong-type",
        GOOD.replace("confirmations = 12", 'confirmations = "12"'),
        "networks.ethereum.confirmations",
        "expected an integer",
    ),
    (
        "bool-is-not-int",
        GOOD.replace("confirmations = 12", "confirmations = true"),
        "networks.ethereum.confirmations",
        "boolean",
    ),
    (
        "malformed-address",
        GOOD.replace("0xdac17f958d2ee523a2206206994597c13d831ec7", "0x12"),
        "networks.ethereum.tokens[0].contract",
        "not a valid 0x address",
    ),
    (
        "bad-checksum",
        GOOD.replace(
            "0xdac17f958d2ee523a2206206994597c13d831ec7",
            "0xDac17f958d2ee523a2206206994597C13D831ec7",
        ),
        "networks.ethereum.tokens[0].contract",
        "checksum",
    ),
    (
        "duplicate-symbol",
        GOOD + '[[networks.ethereum.tokens]]\nsymbol = "USDT"\n'
        'contract = "0x55d398326f99059fF775485246999027B3197955"\ndecimals = 18\n',
        "networks.ethereum.tokens[1].symbol",
        "duplicate symbol",
    ),
    (
        "native-symbol-reused",
        GOOD.replace('symbol = "USDT"', 'symbol = "ETH"'),
        "networks.ethereum.tokens[0].symbol",
        "duplicate symbol",
    ),
    (
        "bad-rpc-scheme",
        GOOD.replace("wss://node.internal:8546", "ftp://x"),
        "networks.ethereum.rpc_url",
        "ws://",
    ),
    (
        "missing-chain-id",
        GOOD.replace("chain_id = 1\n", ""),
        "networks.ethereum.chain_id",
        "required",
    ),
    (
        "bad-kind",
        GOOD.replace("chain_id = 1", 'chain_id = 1\nkind = "utxo"'),
        "networks.ethereum.kind",
        "evm",
    ),
    (
        "zero-confirmations",
        GOOD.replace("confirmations = 12", "confirmations = 0"),
        "networks.ethereum.confirmations",
        "between",
    ),
    ("bad-public-url", GOOD.replace("https://pay.example.com/", "pay"), "public_url", "http"),
    (
        "duckdb-threads-zero",
        GOOD + "\n[duckdb]\nthreads = 0\n",
        "duckdb.threads",
        "greater than zero",
    ),
    ("duckdb-unknown-key", GOOD + "\n[duckdb]\nmemory = 1\n", "duckdb.memory", "unknown key"),
    (
        "bad-hook-path",
        GOOD + '[hooks]\non_event = "not a path"\n',
        "hooks.on_event",
        "package.module",
    ),
    ("not-toml", "database = ", "-", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "key", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert error.value.source == str(path)
    assert error.value.key == key
    assert words in str(error.value)


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    env = {"CHAINPAY_NETWORKS__ETHEREUM__CONFIRMATIONS": "many"}
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, GOOD), env=env)
    assert error.value.source == "environment variable CHAINPAY_NETWORKS__ETHEREUM__CONFIRMATIONS"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("CHAINPAY_NETWORKS__ETHEREUM__CONFRIMATIONS", "networks.ethereum.confrimations"),
        ("CHAINPAY_NETWORKS__X__CONFRIMATIONS", "networks.x.confrimations"),
        ("CHAINPAY_WEBHOOKS__TIMEOUT", "webhooks.timeout"),
        ("CHAINPAY_SERVER__PROT", "server.prot"),
        ("CHAINPAY_DATABSE", "databse"),
    ],
    ids=["typo-in-a-network", "typo-in-a-new-network", "typo-in-webhooks", "typo-in-server", "top"],
)
def test_a_typo_in_an_environment_override_is_refused_like_in_toml(
    tmp_path: Path, variable: str, key: str
) -> None:
    # given a good file and an override whose key the same file would refuse
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, GOOD), env={variable: "3"})

    # then the error names the variable and the key, like a typo in the file does
    assert str(error.value) == f"environment variable {variable}: {key}: unknown key"


def test_an_override_inside_a_value_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, GOOD), env={"CHAINPAY_DATABASE__PATH": "x"})
    assert (
        str(error.value) == "environment variable CHAINPAY_DATABASE__PATH: database: is not a table"
    )


@pytest.mark.parametrize("value", [20, 59, 2592001])
def test_default_expires_in_outside_the_apis_range_is_refused(tmp_path: Path, value: int) -> None:
    # given a default every invoice relying on it would then be refused for (API: 60..2592000)
    text = GOOD + f"\n[invoices]\ndefault_expires_in = {value}\n"
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text), env={})
    assert error.value.key == "invoices.default_expires_in"
    assert "between 60 and 2592000" in str(error.value)


def test_default_expires_in_at_the_apis_bounds_is_accepted(tmp_path: Path) -> None:
    for value in (60, 2592000):
        text = GOOD + f"\n[invoices]\ndefault_expires_in = {value}\n"
        assert load_settings(write(tmp_path, text), env={}).default_expires_in == value
