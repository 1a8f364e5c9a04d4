"""Every Grafana panel's PromQL returns data from a real Prometheus scraping a real gateway.

A `chainpay serve` subprocess follows an anvil chain; the test creates invoices, pays one with
the configured USDT on chain, confirms it, and lets the dispatcher deliver the webhooks to a
loopback receiver. Debian's `prometheus` scrapes the gateway every second. Then each panel's
query, with the dashboard variables filled in, goes through Prometheus's HTTP API: it must
parse and return at least one series, and no value may be NaN (a histogram quantile with
nothing observed, i.e. a dead panel).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_utils.address import to_checksum_address as checksum

from tests.support.anvil import calldata
from tests.support.gateway import Chain, config_file
from tests.support.process import free_port, run, start_serve, stop
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.prometheus, pytest.mark.anvil, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"
PROMETHEUS = "/usr/bin/prometheus"
TEST_XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3"
    "yZdUsT8ddYM3PwnATt"
)


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every target of every non-row panel."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((path.stem, panel["title"], target["expr"]))
    return found


def fill_variables(expr: str, networks: list[str]) -> str:
    """What Grafana sends: `$network` as the regex of all values; built-in intervals."""
    values = {
        "network": "|".join(networks),
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": "5m",
    }
    filled = re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), expr)
    assert "$" not in filled, f"unknown dashboard variable in {expr}"
    return filled


# --- processes -----------------------------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path, served: dict[str, Any]) -> Iterator[str]:
    """Prometheus on a free loopback port scraping the served gateway every second."""
    if shutil.which(PROMETHEUS) is None:
        pytest.fail(f"{PROMETHEUS} is missing: run .ci/setup --test")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: chainpay\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{served['port']}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def wait_until(check: Any, within: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def served(tmp_path: Path, chain: Chain, receiver: Receiver) -> AsyncIterator[dict[str, Any]]:
    port = free_port()
    config = config_file(tmp_path / "chainpay.toml", tmp_path / "chainpay.duckdb", [chain], port)
    feed = chain.anvil.deploy("TestAggregator", 8, "ETH/USD test feed")  # the price panels
    chain.anvil.send_tx(chain.anvil.accounts[0], feed, calldata("setAnswer(int256)", 3 * 10**11))
    with config.open("a") as f:
        f.write("[webhooks]\nallow_private_targets = true\n")
        f.write(f'[[networks.ethereum.prices]]\npair = "ETH/USD"\nfeed = "{checksum(feed)}"\n')
        f.write("heartbeat = 3600\n")
        f.write('[sweep]\nalert_above = { USDT = "1000" }\n')  # the unswept panel's threshold
    server = await asyncio.to_thread(
        start_serve, config, port, "--migrate", log=tmp_path / "serve.log"
    )
    try:
        yield {"config": config, "base": f"http://127.0.0.1:{port}", "port": port}
    finally:
        await asyncio.to_thread(stop, server)


# --- the test ------------------------------------------------------------------------------------


async def make_traffic(
    served: dict[str, Any], chain: Chain, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Invoices, a webhook endpoint, an on-chain USDT payment confirmed, deliveries received."""
    created = await asyncio.to_thread(
        run, "--config", str(served["config"]), "store", "create", "--name", "Shop",
        "--evm-xpub", TEST_XPUB, "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    auth = {"Authorization": f"Bearer {json.loads(created.stdout)['api_key']}"}
    base = served["base"]
    async with http.post(
        f"{base}/v1/webhook-endpoints", json={"url": receiver.url}, headers=auth
    ) as response:
        assert response.status == 201, await response.text()
    invoices = []
    for amount in ("5", "7", "9"):
        body = {"network": chain.name, "asset": "USDT", "amount": amount}
        async with http.post(f"{base}/v1/invoices", json=body, headers=auth) as response:
            assert response.status == 201, await response.text()
            invoices.append(await response.json())
    async with http.get(f"{base}/v1/invoices/nope", headers=auth) as response:
        assert response.status == 404

    paid = invoices[0]
    units = 5 * 10**chain.usdt_decimals
    await asyncio.to_thread(chain.pay_usdt, paid["address"], units)
    await asyncio.to_thread(chain.anvil.mine, chain.confirmations + 1)

    async def is_paid() -> bool:
        async with http.get(f"{base}/v1/invoices/{paid['id']}", headers=auth) as response:
            return (await response.json())["status"] == "paid"

    await wait_until(is_paid, 30, "the invoice to be paid")

    async def paid_webhook() -> bool:
        return any(b'"invoice.paid"' in r.body for r in receiver.requests)

    await wait_until(paid_webhook, 30, "the invoice.paid webhook")


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> dict[str, Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response:
        body: dict[str, Any] = await response.json()
    return body


async def test_every_dashboard_panel_returns_data(
    served: dict[str, Any],
    chain: Chain,
    receiver: Receiver,
    prometheus: str,
) -> None:
    prom = prometheus
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            try:
                async with http.get(f"{prom}/-/ready") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(ready, 30, "prometheus to start")

        async def scraping() -> bool:
            result = (await query(http, prom, 'up{job="chainpay"} == 1'))["data"]["result"]
            return bool(result)

        await wait_until(scraping, 30, "prometheus to scrape the gateway")

        await make_traffic(served, chain, receiver, http)

        async def scraped_after_traffic() -> bool:
            expr = "count_over_time(chainpay_webhook_deliveries_total[1m])"
            result = (await query(http, prom, expr))["data"]["result"]
            return bool(result) and min(int(r["value"][1]) for r in result) >= 3

        await wait_until(scraped_after_traffic, 30, "scrapes after the traffic")

        dead = []
        for board, title, expr in panel_queries():
            filled = fill_variables(expr, [chain.name])
            answer = await query(http, prom, filled)
            if answer.get("status") != "success":
                dead.append(f"{board} / {title}: {answer.get('error')} in {filled}")
                continue
            series = answer["data"]["result"]
            values = [s["value"][1] for s in series]
            if not series:
                dead.append(f"{board} / {title}: no series for {filled}")
            elif any(v.lower() == "nan" for v in values):
                nan = [s["metric"] for s in series if s["value"][1].lower() == "nan"]
                dead.append(f"{board} / {title}: NaN for {nan} in {filled}")
    assert not dead, "dead panels:\n" + "\n".join(dead)
