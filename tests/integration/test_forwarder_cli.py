"""The forwarder commands as operators run them: real `chainpay` processes against anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer import forwarder
from tests.support.anvil import Anvil
from tests.support.forwarders import checksum, install_proxy
from tests.support.gateway import Chain, config_file
from tests.support.process import free_port, run

pytestmark = pytest.mark.anvil


def chainpay(config: Path, *args: str) -> tuple[int, str, str]:
    done = run("--config", str(config), *args)
    return done.returncode, done.stdout, done.stderr


def test_deploy_verify_store_and_an_empty_sweep(chain: Chain, tmp_path: Path) -> None:
    # given a chain with the deployer proxy but no factory yet
    anvil: Anvil = chain.anvil
    install_proxy(anvil)
    config = config_file(tmp_path / "c.toml", tmp_path / "db.duckdb", [chain], free_port())
    treasury = checksum(anvil.accounts[5])

    # then verify fails and a forwarder store is refused, with nothing stored
    assert chainpay(config, "contracts", "verify", "--network", "ethereum")[0] == 1
    code, _, err = chainpay(
        config, "store", "create", "--name", "s", "--treasury", f"ethereum={treasury}"
    )
    assert code == 2 and "not deployed" in err

    # when the printed deployment is sent from any account
    code, out, _ = chainpay(config, "contracts", "deploy", "--network", "ethereum", "--json")
    [tx] = json.loads(out)["transactions"]
    assert (tx["to"], tx["value"], tx["chain_id"]) == (
        forwarder.DEPLOYER_PROXY,
        "0",
        anvil.chain_id,
    )
    anvil.send_tx(anvil.accounts[3], tx["to"], data=tx["data"], gas=tx["gas"])

    # then verify passes, a store can be created, and a sweep with nothing to sweep exits 0
    code, out, _ = chainpay(config, "contracts", "verify", "--network", "ethereum", "--json")
    assert code == 0 and json.loads(out)["factory"] == forwarder.deterministic_factory()
    bad = chainpay(
        config, "store", "create", "--name", "s", "--treasury", f"ethereum={treasury.lower()}"
    )
    assert bad[0] == 2 and "checksum" in bad[2]
    code, out, _ = chainpay(
        config, "store", "create", "--name", "s", "--treasury", f"ethereum={treasury}", "--json"
    )
    assert code == 0 and json.loads(out)["api_key"].startswith("cpk_")
    code, out, _ = chainpay(config, "sweep", "--network", "ethereum", "--json")
    assert (code, json.loads(out)) == (0, {"transactions": [], "total": {}})
    assert (
        chainpay(config, "sweep", "--network", "ethereum")[1].strip()
        == "ethereum: nothing to sweep"
    )
