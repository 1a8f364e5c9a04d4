"""`chainpay serve` start-up: the per-network banner, the chain id check, a gateway watching nothing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.gateway import Chain, config_file
from tests.support.process import CHAINPAY, free_port, http_json, start_serve, stop

pytestmark = pytest.mark.anvil


def logged(log: Path, text: str, within: float = 10.0) -> str:
    """The log once it contains `text` (lines are flushed every 0.25 s)."""
    deadline = time.monotonic() + within
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the log:\n{log.read_text()}")
        time.sleep(0.05)
    return log.read_text()


def test_serve_prints_each_network_with_its_chain_id_node_head_and_cursor(
    chain: Chain, tmp_path: Path
) -> None:
    # given a config for one anvil chain and no cursor yet
    port = free_port()
    config = config_file(tmp_path / "c.toml", tmp_path / "db.duckdb", [chain], port)
    head = chain.anvil.head()

    # when serve starts
    log = tmp_path / "serve.log"
    server = start_serve(config, port, "--migrate", log=log)
    try:
        # then it names the network, its chain id, its node, the head and the first cursor
        text = logged(log, "network ethereum")
        start = head - chain.confirmations + 1
        assert (
            f"network ethereum (chain id 31337) node ws://127.0.0.1:{chain.anvil.port}: "
            f"head {head}, no cursor yet: first start, watching from block {start}"
        ) in text
        assert text.index("listening on") < text.index("network ethereum")
    finally:
        assert stop(server) == 0


def test_serve_stops_on_a_wrong_chain_id_before_binding_the_port(
    chain: Chain, tmp_path: Path
) -> None:
    # given a config that says chain id 1 for an anvil node (31337)
    port = free_port()
    text = config_file(tmp_path / "c.toml", tmp_path / "db.duckdb", [chain], port).read_text()
    config = tmp_path / "wrong.toml"
    config.write_text(text.replace("chain_id = 31337", "chain_id = 1"))

    # when serve starts
    result = subprocess.run(
        [CHAINPAY, "--config", str(config), "serve", "--port", str(port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    # then it exits 2 naming the key, and never listened
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("networks.ethereum.chain_id: node reports chain id 31337, not 1")
    )
    assert "listening on" not in result.stderr + result.stdout


def test_serve_with_no_config_and_no_network_refuses_to_start(tmp_path: Path) -> None:
    # given an empty directory, no --config and no CHAINPAY_* variable
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")}

    # when serve starts
    result = subprocess.run(
        [CHAINPAY, "serve", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip

    # then it refuses with exit 2, and creates no database
    assert result.returncode == 2, result.stderr
    assert "no network to watch: refusing to start" in result.stderr
    assert "listening on" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_serve_with_a_config_but_no_network_says_so_and_is_not_ready(tmp_path: Path) -> None:
    # given a config file with a database and no [networks.*]
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'database = "{tmp_path / "db.duckdb"}"\n')

    # when serve starts
    log = tmp_path / "serve.log"
    server = start_serve(config, port, "--migrate", log=log)
    try:
        # then it warns that it watches no chain, and /readyz says why it is not ready
        assert "chainpay watches NO chain" in logged(log, "watches NO chain")
        status, body = http_json("GET", f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body["networks"] == {}
        assert body["reason"] == "no networks configured: chainpay watches no chain"
    finally:
        assert stop(server) == 0
