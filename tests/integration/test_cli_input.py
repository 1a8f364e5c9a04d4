"""The `chainpay` command on bad input: one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.process import run


@pytest.mark.parametrize("command", [["store"], ["key"]], ids=["store", "key"])
def test_a_group_without_its_subcommand_prints_usage_and_exits_2(
    tmp_path: Path, command: list[str]
) -> None:
    result = run(*command)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage: chainpay" in result.stderr and "required" in result.stderr


def test_serve_on_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # given a port some other process holds
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = tmp_path / "chainpay.toml"
        config.write_text(f'database = "{tmp_path / "c.duckdb"}"\n[server]\nport = {port}\n')

        # when chainpay serves on it
        result = run("--config", str(config), "serve", timeout=60)

    # then it says so in its last line, names the address, and exits 1 without a traceback
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"chainpay: cannot listen on 127.0.0.1:{port}: "), last
    assert "in use" in last.lower()


def test_a_typo_in_an_environment_override_stops_serve_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "chainpay.toml"
    config.write_text(f'database = "{tmp_path / "c.duckdb"}"\n')
    variable = "CHAINPAY_NETWORKS__X__CONFRIMATIONS"
    result = run("--config", str(config), "migrate", env={variable: "3"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"chainpay: config error: environment variable {variable}: "
        "networks.x.confrimations: unknown key"
    ]
