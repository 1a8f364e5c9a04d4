"""`python -m api.cli`: every subcommand is registered when the module runs as __main__."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api import write_config
from tests.support.process import run


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as `python -m api.cli`: api.cli is then __main__, not the module api.cli."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.parametrize("command", ["export", "backup", "restore", "dev", "serve"])
def test_python_m_api_cli_knows_every_subcommand(command: str) -> None:
    result = run_module(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: chainpay {command}" in result.stdout


def test_python_m_api_cli_backs_up_exports_and_restores(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run("--config", str(config), "migrate").returncode == 0
    backup = tmp_path / "copy.duckdb"

    backed_up = run_module("--config", str(config), "backup", str(backup), "--json")
    exported = run_module("--config", str(config), "export", "--out", str(tmp_path / "x"), "--json")
    (tmp_path / "chainpay.duckdb").unlink()
    restored = run_module("--config", str(config), "restore", str(backup))

    assert backed_up.returncode == 0, backed_up.stderr
    assert json.loads(backed_up.stdout)["schema_version"] >= 1
    assert exported.returncode == 0, exported.stderr
    assert "invoices" in json.loads(exported.stdout)["tables"]
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "chainpay.duckdb").exists()
