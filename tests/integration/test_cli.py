"""The real `chainpay` command: stores and keys, migrations, config errors, serve + admin socket."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from indexer.wallet import parse_xpub
from tests.support.api import OTHER_XPUB, TEST_XPUB, write_config
from tests.support.process import free_port, http_json, run, start_serve, stop


def test_store_create_json_prints_exactly_one_object(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run(
        "--config",
        str(config),
        "store",
        "create",
        "--name",
        "Shop",
        "--evm-xpub",
        TEST_XPUB,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"store_id", "api_key"}
    assert created["store_id"].startswith("st_") and created["api_key"].startswith("cpk_")
    with duckdb.connect(str(tmp_path / "chainpay.duckdb"), read_only=True) as conn:
        hashes = [r[0] for r in conn.execute("SELECT key_hash FROM api_keys").fetchall()]
    assert created["api_key"] not in hashes and len(hashes) == 1  # stored only as a hash


def test_bad_xpub_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run(
        "--config", str(config), "store", "create", "--name", "Shop", "--evm-xpub", "xpubnope"
    )
    assert result.returncode == 2
    assert "extended public key" in result.stderr
    with duckdb.connect(str(tmp_path / "chainpay.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM stores").fetchone() == (0,)


def test_bad_config_is_one_line_naming_file_and_key_with_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, '\n[webhooks]\nallow_private_targets = "yes"\n')
    result = run("--config", str(config), "migrate")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(config) in lines[0] and "webhooks.allow_private_targets" in lines[0]


def test_migrate_applies_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = run("--config", str(config), "migrate")
    second = run("--config", str(config), "migrate")
    assert first.returncode == 0 and "001_core" in first.stdout
    assert second.returncode == 0 and "applied 0 migration" in second.stdout


def test_keys_are_managed_through_the_running_gateway(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    server = start_serve(config, port, "--migrate", log=tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        created = run(
            "--config",
            str(config),
            "store",
            "create",
            "--name",
            "Live",
            "--evm-xpub",
            OTHER_XPUB,
            "--json",
        )
        assert created.returncode == 0, created.stderr
        store = json.loads(created.stdout)
        status, body = http_json(
            "POST",
            f"{base}/v1/invoices",
            {"network": "bsc", "asset": "USDT", "amount": "1"},
            store["api_key"],
        )
        assert status == 201 and body["address"] == parse_xpub(OTHER_XPUB).address(0)

        extra = run("--config", str(config), "key", "create", store["store_id"], "--json")
        second = json.loads(extra.stdout)
        assert http_json("GET", f"{base}/v1/store", key=second["api_key"])[0] == 200

        revoked = run("--config", str(config), "key", "revoke", second["key_id"])
        assert revoked.returncode == 0, revoked.stderr
        assert http_json("GET", f"{base}/v1/store", key=second["api_key"])[0] == 401
        assert http_json("GET", f"{base}/v1/store", key=store["api_key"])[0] == 200
        unknown = run("--config", str(config), "key", "revoke", "key_doesnotexist")
        assert unknown.returncode == 2
    finally:
        assert stop(server) == 0
    log = (tmp_path / "serve.log").read_text()
    assert store["api_key"] not in log and second["api_key"] not in log


def test_serve_answers_health_ready_metrics_and_openapi(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    server = start_serve(config, port, "--migrate")
    base = f"http://127.0.0.1:{port}"
    try:
        assert http_json("GET", f"{base}/healthz") == (200, {"status": "ok"})
        status, ready = http_json("GET", f"{base}/readyz")
        # the config's nodes (ports 1 and 2) never answer: the store is ready, the chains not
        assert (
            status == 503
            and ready["store"] == "ok"
            and set(ready["networks"]) == {"ethereum", "bsc"}
            and set(ready["behind"]) == {"ethereum", "bsc"}
        )
        status, spec = http_json("GET", f"{base}/openapi.json")
        assert status == 200 and "/v1/invoices" in spec["paths"]
        import urllib.request

        with urllib.request.urlopen(f"{base}/metrics") as response:
            text = response.read().decode()
        assert "chainpay_api_requests_total" in text and "process_resident_memory_bytes" in text
    finally:
        stop(server)


def test_serve_refuses_an_unmigrated_configured_database(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    duckdb.connect(str(tmp_path / "chainpay.duckdb")).close()  # exists, but empty
    result = run("--config", str(config), "serve", "--port", str(free_port()), timeout=30)
    assert result.returncode == 1
    assert "chainpay migrate" in result.stderr
