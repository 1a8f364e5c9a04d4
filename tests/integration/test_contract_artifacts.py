"""The committed contract artifacts are exactly what the pinned compiler makes of the sources."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = REPO_ROOT / "indexer" / "chain" / "contracts"
ARTIFACTS = [
    "TestToken.json",
    "Forwarder.json",
    "AwkwardToken.json",
    "DepositForwarder.json",
    "ForwarderFactory.json",
    "TestAggregator.json",
]


def test_rebuilding_from_source_reproduces_committed_artifacts_byte_for_byte(
    tmp_path: Path,
) -> None:
    # given the pinned solc from node_modules
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("node or node_modules/solc is missing: run .ci/setup (it runs `npm ci`)")
    # when the build script compiles into a scratch directory
    subprocess.run(
        [node, str(CONTRACTS / "build.mjs"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # then every artifact is identical to the committed one
    for name in ARTIFACTS:
        assert (tmp_path / name).read_bytes() == (CONTRACTS / name).read_bytes(), name


@pytest.mark.parametrize(
    ("artifact", "functions", "events"),
    [
        (
            "TestToken.json",
            {"mint", "transfer", "transferFrom", "approve", "allowance", "balanceOf",
             "totalSupply", "decimals", "name", "symbol"},
            {"Transfer", "Approval"},
        ),
        ("Forwarder.json", {"forward", "split"}, set()),
        ("AwkwardToken.json", {"mint", "transfer", "balanceOf", "decimals", "mode", "setMode"},
         {"Transfer"}),
        ("DepositForwarder.json", set(), {"NativeSwept"}),
        ("ForwarderFactory.json", {"sweep", "sweepTokens", "depositAddress"}, set()),
        ("TestAggregator.json", {"decimals", "description", "version", "reverts", "setAnswer",
                                 "setRound", "setReverts", "latestRoundData", "getRoundData"},
         set()),
    ],
)  # fmt: skip
def test_artifacts_expose_the_interface_tests_rely_on(
    artifact: str, functions: set[str], events: set[str]
) -> None:
    compiled = json.loads((CONTRACTS / artifact).read_text())
    abi = compiled["abi"]
    assert {item["name"] for item in abi if item["type"] == "function"} == functions
    assert {item["name"] for item in abi if item["type"] == "event"} == events
    assert compiled["bytecode"].startswith("0x") and len(compiled["bytecode"]) > 100


def test_deposit_contracts_carry_the_runtime_code_that_verify_compares() -> None:
    # the factory's runtime is what `chainpay contracts verify` compares with eth_getCode
    factory = json.loads((CONTRACTS / "ForwarderFactory.json").read_text())
    assert factory["deployedBytecode"].startswith("0x") and len(factory["deployedBytecode"]) > 100
    # the forwarder self-destructs in its constructor: nothing of it is ever deployed
    forwarder = json.loads((CONTRACTS / "DepositForwarder.json").read_text())
    assert forwarder["bytecode"][2:] in factory["bytecode"]
