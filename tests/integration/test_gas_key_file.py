"""`[sweep] gas_key_file`: a key file that is missing, not private, unreadable or malformed stops
`chainpay serve` with one config error naming the file (exit 2) and never shows the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from api.bootstrap import Gateway, background_loops
from indexer.chain.gas_key import load_gas_key
from indexer.config import load_settings
from tests.support.process import free_port, run

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # a well-known test key
KEY_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"


def write_config(tmp_path: Path, key_file: Path) -> Path:
    config = tmp_path / "chainpay.toml"
    config.write_text(
        f'database = "{tmp_path / "chainpay.duckdb"}"\n'
        f'public_url = "http://127.0.0.1:8080"\n'
        f"[server]\nport = {free_port()}\n"
        "[networks.ethereum]\nchain_id = 1\nconfirmations = 12\n"
        f'rpc_url = "ws://127.0.0.1:{free_port()}"\n'  # nobody listens: never reached
        'native = { symbol = "ETH", decimals = 18 }\n'
        f'[sweep]\ngas_key_file = "{key_file}"\n'
    )
    return config


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def missing(tmp_path: Path) -> Path:
    return tmp_path / "no-such.key"


def group_readable(tmp_path: Path) -> Path:
    path = private(tmp_path / "gas.key", KEY + "\n")
    path.chmod(0o640)
    return path


def world_readable(tmp_path: Path) -> Path:
    path = private(tmp_path / "gas.key", KEY + "\n")
    path.chmod(0o604)
    return path


def a_directory(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.mkdir(mode=0o700)
    return path


def too_short(tmp_path: Path) -> Path:
    return private(tmp_path / "gas.key", KEY[:-2] + "\n")


def two_lines(tmp_path: Path) -> Path:
    return private(tmp_path / "gas.key", KEY + "\n" + KEY + "\n")


def not_hex(tmp_path: Path) -> Path:
    return private(tmp_path / "gas.key", KEY[:-1] + "g\n")


def zero(tmp_path: Path) -> Path:
    return private(tmp_path / "gas.key", "0x" + "0" * 64 + "\n")


def binary(tmp_path: Path) -> Path:
    path = tmp_path / "gas.key"
    path.write_bytes(bytes.fromhex(KEY))
    path.chmod(0o600)
    return path


CASES: list[tuple[Callable[[Path], Path], str]] = [
    (missing, "no such file"),
    (group_readable, "mode 0640"),
    (world_readable, "mode 0604"),
    (a_directory, "not a regular file"),
    (too_short, "not a hex private key"),
    (two_lines, "not a hex private key"),
    (not_hex, "not a hex private key"),
    (zero, "not a hex private key"),
    (binary, "not a hex private key"),
]


@pytest.mark.parametrize(("make", "words"), CASES, ids=[c[0].__name__ for c in CASES])
def test_a_bad_gas_key_file_stops_serve_with_one_line_naming_it(
    tmp_path: Path, make: Callable[[Path], Path], words: str
) -> None:
    key_file = make(tmp_path)
    config = write_config(tmp_path, key_file)

    done = run("--config", str(config), "serve")

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"chainpay: config error: {config}: sweep.gas_key_file: {key_file}")
    assert words in lines[-1]
    assert len(lines) == 1, lines  # one line, nothing else
    assert KEY[:16] not in done.stderr + done.stdout  # not even a malformed key is echoed
    assert not (tmp_path / "chainpay.duckdb").exists()  # refused before opening anything


def test_a_private_key_file_gives_the_key_and_its_address_only(tmp_path: Path) -> None:
    key_file = private(tmp_path / "gas.key", "0x" + KEY + "\n")
    settings = load_settings(write_config(tmp_path, key_file), env={})

    key = load_gas_key(settings)

    assert key.address == KEY_ADDRESS
    assert KEY not in repr(key) and KEY not in str(key)


async def test_serve_runs_one_sweeper_per_network_with_a_gas_key(tmp_path: Path) -> None:
    key_file = private(tmp_path / "gas.key", KEY)
    gateway = Gateway(load_settings(write_config(tmp_path, key_file), env={}))
    gateway.open()
    try:
        names = [getattr(loop, "__qualname__", "") for loop in background_loops(gateway)]
        assert names.count("Sweeper.run") == 1  # one network configured
        assert gateway.gas_key is not None and gateway.gas_key.address == KEY_ADDRESS
    finally:
        await gateway.close()
