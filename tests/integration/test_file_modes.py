"""Everything chainpay writes is private to its user, whatever the umask (issue 10, item 14).

The database and its WAL, backups and exports hold xpubs, webhook secrets and API key hashes;
under the default umask they were written 0644.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.api import TEST_XPUB, write_config

ROOT = Path(__file__).resolve().parents[2]


def chainpay(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, started under the permissive umask 022."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_backups_and_exports_are_created_private(tmp_path: Path) -> None:
    # given a config whose database lives in a directory that does not exist yet
    data = tmp_path / "data"
    config = write_config(tmp_path)
    text = config.read_text().replace(str(tmp_path / "chainpay.duckdb"), str(data / "cp.duckdb"))
    config.write_text(text)

    # when the CLI creates the database, a store, a backup and an export under umask 022
    for args in (
        ("migrate",),
        ("store", "create", "--name", "s", "--evm-xpub", TEST_XPUB, "--json"),
        ("backup", str(tmp_path / "copy.duckdb")),
        ("export", "--out", str(tmp_path / "export")),
    ):
        result = chainpay("--config", str(config), *args)
        assert result.returncode == 0, result.stderr

    # then every file is 0600 and every directory it made 0700
    assert mode(data) == 0o700
    assert mode(data / "cp.duckdb") == 0o600
    wal = data / "cp.duckdb.wal"
    assert not wal.exists() or mode(wal) == 0o600
    assert mode(tmp_path / "copy.duckdb") == 0o600
    made = [p for p in (tmp_path / "export").rglob("*")]
    assert made
    for path in made:
        assert mode(path) == (0o700 if path.is_dir() and not path.is_symlink() else 0o600), path


def test_an_existing_database_written_0644_is_made_private_when_opened(tmp_path: Path) -> None:
    # given a database an earlier release left 0644
    config = write_config(tmp_path)
    assert chainpay("--config", str(config), "migrate").returncode == 0
    database = tmp_path / "chainpay.duckdb"
    database.chmod(0o644)

    # when chainpay opens it again
    assert chainpay("--config", str(config), "migrate").returncode == 0

    # then it is 0600
    assert mode(database) == 0o600
