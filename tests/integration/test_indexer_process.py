"""The indexer inside a real `chainpay serve` process: SIGKILLed mid-stream, and misconfigured."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.anvil import REPO_ROOT
from tests.support.gateway import Chain, GatewayFactory, config_file
from tests.support.process import free_port

pytestmark = pytest.mark.anvil

USDT = 10**6


class Server:
    """`chainpay serve --no-api` on a config file, restartable, its output kept in a log."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "--config", str(self.config), "serve",
                 "--no-api"],
                cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def network(self, name: str) -> dict[str, Any] | None:
        try:
            url = f"http://127.0.0.1:{self.port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return dict(json.loads(response.read())["networks"][name])
        except OSError:
            return None

    def wait_processed(self, name: str, number: int, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            status = self.network(name)
            if status is not None and (status["processed"] or -1) >= number:
                return
            time.sleep(0.05)
        raise AssertionError(f"serve did not reach block {number}:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.mark.slow
async def test_sigkill_mid_processing_then_restart_credits_each_payment_exactly_once(
    chain: Chain, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    # given six invoices and a cursor at the head, then a `chainpay serve` on that database
    database = tmp_path / "chainpay.duckdb"
    gw = await gateway_factory([chain], database=database)
    invoices = [await gw.create_invoice("ethereum", "USDT", 3 * USDT) for _ in range(6)]
    gw.start_tails()
    await gw.wait_processed("ethereum", chain.anvil.head())
    await gw.close()
    port = free_port()
    store = gw.gateway.settings.postgres_url or database  # the same store, on either backend
    server = Server(config_file(tmp_path / "c.toml", store, [chain], port), port,
                    tmp_path / "serve.log")  # fmt: skip
    server.start()
    server.wait_processed("ethereum", chain.anvil.head())

    # when 18 payments stream in, one per block, while the process is SIGKILLed three times
    def pay() -> None:
        for _ in range(3):
            for invoice in invoices:
                chain.anvil.token_mint(chain.usdt, chain.payer, USDT)
                chain.anvil.token_transfer(chain.usdt, chain.payer, invoice.address.lower(), USDT)
                time.sleep(0.15)

    payer = threading.Thread(target=pay)
    payer.start()
    rng = random.Random(7)
    killed_while_paying = 0
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.2, 0.6))
        killed_while_paying += payer.is_alive()
        server.kill()
        server.start()
        server.wait_processed("ethereum", 0)
    payer.join()
    assert killed_while_paying >= 2
    chain.anvil.mine(3)
    server.wait_processed("ethereum", chain.anvil.head())
    assert server.stop() == 0

    # then every payment is on the books exactly once and every invoice is paid
    books = await gateway_factory([chain], database=database)
    for invoice in invoices:
        paid = await books.invoice(invoice.id)
        payments = await books.payments(invoice.id)
        assert len(payments) == 3
        assert len({(p.tx_hash, p.log_index) for p in payments}) == 3
        assert (paid.status.value, paid.amount_received) == ("paid", 3 * USDT)
    duplicates = await books.query(
        "SELECT tx_hash, log_index, count(*) FROM transfers WHERE NOT orphaned "
        "GROUP BY tx_hash, log_index HAVING count(*) > 1"
    )
    assert duplicates == []
    events = await books.query(
        "SELECT invoice_id, count(*) FROM events WHERE type = 'invoice.paid' GROUP BY invoice_id"
    )
    assert sorted(n for _, n in events) == [1] * 6


def test_serve_exits_2_when_the_node_reports_another_chain_id(chain: Chain, tmp_path: Path) -> None:
    # given a config that says chain id 31338 for a node that is 31337
    port = free_port()
    text = config_file(tmp_path / "c.toml", tmp_path / "db.duckdb", [chain], port).read_text()
    config = tmp_path / "wrong.toml"
    config.write_text(text.replace("chain_id = 31337", "chain_id = 31338"))

    # when serve starts
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "--config", str(config), "serve", "--no-api"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    # then it stops with exit code 2 and one line naming the file, the key and the node's id
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"chainpay: config error: {config}: networks.ethereum.chain_id: "
        "node reports chain id 31337, not 31338"
    )
