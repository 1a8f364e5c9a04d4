"""`chainpay backup`, `restore` and `export` on the real command, with a real `chainpay serve`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from indexer.config import ConfigError, load_settings
from indexer.domain.clock import FrozenClock
from indexer.store.duckdb.connection import migrate
from indexer.store.duckdb.database import Database
from indexer.wallet import parse_xpub
from indexer.workers.exporter import PeriodicExporter
from tests.support.api import TEST_XPUB, write_config
from tests.support.process import free_port, http_json, run, start_serve, stop

INVOICE = {"network": "ethereum", "asset": "USDT", "amount": "12.5"}


def chainpay(config: Path, *args: str) -> tuple[int, str, str]:
    result = run("--config", str(config), *args)
    return result.returncode, result.stdout, result.stderr


def test_backup_of_a_running_gateway_restores_every_invoice_and_the_next_hd_index(
    tmp_path: Path,
) -> None:
    live, restored = tmp_path / "live", tmp_path / "restored"
    live.mkdir(), restored.mkdir()
    live_config, restored_config = write_config(live), write_config(restored)
    server = start_serve(live_config, port := free_port(), "--migrate", log=live / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        code, out, err = chainpay(
            live_config, "store", "create", "--name", "Shop", "--evm-xpub", TEST_XPUB, "--json"
        )
        assert code == 0, err
        key = json.loads(out)["api_key"]
        invoices = [http_json("POST", f"{base}/v1/invoices", INVOICE, key)[1] for _ in range(5)]

        code, out, err = chainpay(live_config, "backup", str(tmp_path / "backup.duckdb"), "--json")
        assert code == 0, err
        assert json.loads(out)["tables"]["invoices"] == 5
        # Refused while serving, and the live database is untouched.
        code, _, err = chainpay(live_config, "restore", str(tmp_path / "backup.duckdb"), "--force")
        assert code == 1 and "stop `chainpay serve`" in err
        # The gateway still serves after both; this invoice is not in the backup.
        status, lost = http_json("POST", f"{base}/v1/invoices", INVOICE, key)
        assert status == 201
    finally:
        assert stop(server) == 0

    code, out, err = chainpay(restored_config, "restore", str(tmp_path / "backup.duckdb"))
    assert code == 0, err
    server = start_serve(restored_config, port := free_port(), log=restored / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        for invoice in invoices:
            status, body = http_json("GET", f"{base}/v1/invoices/{invoice['id']}", key=key)
            assert status == 200 and body["address"] == invoice["address"]
        status, fresh = http_json("POST", f"{base}/v1/invoices", INVOICE, key)
        assert status == 201
        # Past the backup's last index by the restore gap: the lost invoice's address (index 5)
        # may be in a customer's hands and is never handed out again.
        assert fresh["address"] == parse_xpub(TEST_XPUB).address(5 + 1000)
        assert fresh["address"] not in {i["address"] for i in [*invoices, lost]}
    finally:
        assert stop(server) == 0


def test_restore_needs_force_to_replace_and_keeps_the_old_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert chainpay(config, "store", "create", "--name", "Old", "--evm-xpub", TEST_XPUB)[0] == 0
    assert chainpay(config, "backup", str(tmp_path / "one.duckdb"))[0] == 0
    database = tmp_path / "chainpay.duckdb"
    with duckdb.connect(str(database)) as conn:
        conn.execute("UPDATE stores SET name = 'Changed after the backup'")

    code, _, err = chainpay(config, "restore", str(tmp_path / "one.duckdb"))
    assert code == 2 and "--force" in err
    code, _, err = chainpay(config, "restore", str(tmp_path / "one.duckdb"), "--force")
    assert code == 0, err

    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("SELECT name FROM stores").fetchall() == [("Old",)]
    with duckdb.connect(str(tmp_path / "chainpay.duckdb.bak"), read_only=True) as conn:
        assert conn.execute("SELECT name FROM stores").fetchall() == [("Changed after the backup",)]


def test_restore_refuses_a_backup_from_a_newer_release(tmp_path: Path) -> None:
    newer = tmp_path / "newer.duckdb"
    with duckdb.connect(str(newer)) as conn:
        migrate(conn)
        conn.execute("INSERT INTO schema_migrations VALUES (999, '999_future', now())")
    config = write_config(tmp_path)

    code, _, err = chainpay(config, "restore", str(newer))

    assert code == 1 and "newer release" in err
    assert not (tmp_path / "chainpay.duckdb").exists()


@pytest.mark.parametrize("content", [b"not a database at all", b""], ids=["garbage", "empty-file"])
def test_restore_refuses_a_file_that_is_not_a_chainpay_database(
    tmp_path: Path, content: bytes
) -> None:
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_bytes(content)
    config = write_config(tmp_path)

    code, _, err = chainpay(config, "restore", str(bogus))

    assert code == 1 and str(bogus) in err
    assert not (tmp_path / "chainpay.duckdb").exists()


def test_backup_refuses_to_overwrite(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert chainpay(config, "migrate")[0] == 0
    (tmp_path / "taken.duckdb").write_text("mine")

    code, _, err = chainpay(config, "backup", str(tmp_path / "taken.duckdb"))

    assert code == 1 and "already exists" in err
    assert (tmp_path / "taken.duckdb").read_text() == "mine"


def test_export_with_the_gateway_stopped_opens_the_file_read_only(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert chainpay(config, "store", "create", "--name", "S", "--evm-xpub", TEST_XPUB)[0] == 0

    code, out, err = chainpay(config, "export", "--out", str(tmp_path / "export"), "--json")

    assert code == 0, err
    assert json.loads(out)["tables"]["invoices"]["rows"] == 0
    assert json.loads((tmp_path / "export" / "snapshot.json").read_text()) == json.loads(out)


def test_export_of_a_running_gateway_goes_through_the_admin_socket(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    server = start_serve(config, port := free_port(), "--migrate", log=tmp_path / "serve.log")
    try:
        code, out, err = chainpay(
            config, "store", "create", "--name", "S", "--evm-xpub", TEST_XPUB, "--json"
        )
        key = json.loads(out)["api_key"]
        for _ in range(3):
            http_json("POST", f"http://127.0.0.1:{port}/v1/invoices", INVOICE, key)

        code, out, err = chainpay(config, "export", "--out", str(tmp_path / "export"), "--json")
        assert code == 0, err
        again = chainpay(config, "export", "--out", str(tmp_path / "export"))
    finally:
        assert stop(server) == 0
    assert json.loads(out)["tables"]["invoices"]["rows"] == 3
    assert again[0] == 2 and "not an empty directory" in again[2]


async def test_periodic_export_keeps_two_snapshots_and_points_latest_at_the_newest(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        write_config(tmp_path, f'\n[analytics]\nexport_dir = "{tmp_path / "exports"}"\n'), env={}
    )
    clock = FrozenClock(datetime(2024, 6, 1, 12, 0, tzinfo=UTC))
    db = Database(settings.database)
    db.migrate()
    exporter = PeriodicExporter(db, settings.analytics, clock)
    try:
        assert exporter.seconds_until_due() == 0
        written = []
        for _ in range(3):
            written.append(await exporter.tick())
            clock.advance(3600)
        clock.advance(-1800)
        assert exporter.seconds_until_due() == 1800
    finally:
        await db.close()

    assert [p.name for p in exporter.snapshots()] == [p.name for p in written[1:]]
    latest = tmp_path / "exports" / "latest"
    assert latest.resolve() == written[-1]
    assert json.loads((latest / "snapshot.json").read_text())["tables"]["invoices"]["rows"] == 0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('export_dri = "x"', "analytics.export_dri: unknown key"),
        ("export_interval = 0", "analytics.export_interval: must be greater than zero"),
        ('export_interval = "hourly"', "analytics.export_interval: expected an integer"),
        ('export_dir = ""', "analytics.export_dir: must not be empty"),
    ],
    ids=["unknown-key", "zero-interval", "string-interval", "empty-dir"],
)
def test_bad_analytics_settings_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write_config(tmp_path, f"\n[analytics]\n{table}\n"), env={})


def test_backup_into_a_missing_directory_fails_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert chainpay(config, "migrate")[0] == 0

    code, _, err = chainpay(config, "backup", str(tmp_path / "no" / "such" / "dir.duckdb"))

    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot create" in err
