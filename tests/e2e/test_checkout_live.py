"""The checkout page against a real `chainpay dev` (gateway, chain tail and anvil) in Chromium.

This is what the README tells a newcomer to run. Payments are real on-chain transfers made by
`chainpay dev pay`; the page must follow them without a reload.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import decode_qr, open_page
from tests.support.process import CHAINPAY, free_port, http_json

pytestmark = [pytest.mark.browser, pytest.mark.anvil, pytest.mark.slow]


@dataclass
class DevGateway:
    """A running `chainpay dev` and what its dev directory says."""

    process: subprocess.Popen[bytes]
    directory: Path
    url: str
    api_key: str
    anvil_url: str
    output: Path

    def create_invoice(self, **fields: Any) -> dict[str, Any]:
        body = {"network": "devnet", "asset": "USDT", **fields}
        status, invoice = http_json("POST", f"{self.url}/v1/invoices", body, self.api_key)
        assert status == 201, invoice
        return dict(invoice)

    def pay(self, invoice_id: str, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [CHAINPAY, "dev", "pay", invoice_id, "--dir", str(self.directory), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def chain(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.anvil_url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["result"]


def start_dev(directory: Path) -> DevGateway:
    port = free_port()
    output = directory.parent / f"{directory.name}.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [CHAINPAY, "dev", "--port", str(port), "--dir", str(directory)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while b"Ctrl-C stops" not in output.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"chainpay dev did not start:\n{output.read_text()}")
        time.sleep(0.1)
    state = json.loads((directory / "dev.json").read_text())
    return DevGateway(
        process, directory, state["gateway_url"], state["api_key"], state["anvil_url"], output
    )


def stop_dev(dev: DevGateway) -> int:
    dev.process.send_signal(signal.SIGINT)  # what Ctrl-C does
    try:
        return dev.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        dev.process.kill()
        dev.process.wait()
        raise


def listening(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevGateway]:
    running = start_dev(tmp_path_factory.mktemp("chainpay-dev") / "dev")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            stop_dev(running)


async def test_real_payment_moves_page_to_detected_then_paid_then_redirects(
    dev: DevGateway, browser: Browser
) -> None:
    redirect_url = f"{dev.url}/healthz?order=A-2001"
    invoice = dev.create_invoice(amount="12.5", order_id="A-2001", redirect_url=redirect_url)
    opened = await open_page(browser, invoice["checkout_url"])
    page = opened.page
    await expect(page.locator("[data-panel=waiting]")).to_be_visible()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    # Hold the chain at the payment's block so the page can be seen at 1 of 3 confirmations.
    dev.chain("evm_setIntervalMining", 0)
    try:
        payer = dev.pay(invoice["id"])
        while int(dev.chain("txpool_status")["pending"], 16) == 0:
            assert payer.poll() is None, payer.communicate()
            await asyncio.sleep(0.05)
        dev.chain("evm_mine")
        out = (await asyncio.to_thread(payer.communicate, timeout=30))[0]
        assert payer.returncode == 0, out

        detected = page.locator("[data-panel=detected]")
        await expect(detected).to_be_visible(timeout=15_000)
        await expect(detected).to_contain_text("Waiting for confirmations: 1 of 3")
        await expect(page.locator("#pay")).to_be_hidden()  # nothing more to pay
        await expect(page.locator("h1[data-when=closed]")).to_contain_text("12.5 USDT")
        await opened.screenshot("checkout-detected-phone")
    finally:
        dev.chain("evm_setIntervalMining", 1)

    paid = page.locator("[data-panel=paid]")
    await expect(paid).to_be_visible(timeout=15_000)
    await expect(paid.get_by_role("link", name="Return to Demo shop")).to_have_attribute(
        "href", redirect_url
    )
    await opened.screenshot("checkout-paid-phone")
    assert navigations == []  # everything so far happened without a reload
    await page.wait_for_url(redirect_url, timeout=15_000)
    assert navigations == [redirect_url]
    assert opened.foreign_requests(dev.url) == []
    await opened.context.close()


async def test_partial_payment_shows_what_is_still_missing(
    dev: DevGateway, browser: Browser
) -> None:
    invoice = dev.create_invoice(amount="25.5", order_id="A-2002")
    opened = await open_page(browser, invoice["checkout_url"])
    page = opened.page

    payer = dev.pay(invoice["id"], "--amount", "10")
    out = (await asyncio.to_thread(payer.communicate, timeout=30))[0]
    assert payer.returncode == 0, out

    partial = page.locator("[data-panel=partial]")
    await expect(partial).to_be_visible(timeout=15_000)
    await expect(partial).to_contain_text("We received 10 USDT")
    await expect(partial).to_contain_text("15.5 USDT is still missing")
    await expect(page.locator("h1[data-when=open] [data-field=amount_due]")).to_have_text("15.5")
    await expect(page.locator("#amount-value")).to_have_text("15.5")
    # The QR now asks only for the rest.
    await expect(page.locator("#qr img")).to_be_visible()
    await page.wait_for_function("document.querySelector('#qr img').naturalWidth > 0")
    rest = invoice["payment_uri"].replace("uint256=25500000", "uint256=15500000")
    assert await decode_qr(page, "#qr img") == [rest]
    await opened.screenshot("checkout-partial-phone")
    assert opened.foreign_requests(dev.url) == []
    await opened.context.close()


def test_dev_pay_refuses_an_unknown_invoice(dev: DevGateway) -> None:
    payer = dev.pay("inv_0000000000000000000000")
    output = payer.communicate(timeout=30)[0].decode()

    assert payer.returncode == 2
    assert "no invoice inv_0000000000000000000000" in output


def test_ctrl_c_stops_the_gateway_and_the_dev_chain_and_a_restart_reuses_the_store(
    tmp_path: Path,
) -> None:
    first = start_dev(tmp_path / "dev")
    assert "NEVER use this mnemonic for real funds" in first.output.read_text()
    assert stop_dev(first) == 0
    assert not listening(first.anvil_url)
    assert not listening(first.url)

    again = start_dev(tmp_path / "dev")
    try:
        assert again.api_key == first.api_key
        assert f"API key      {again.api_key}" in again.output.read_text()
        assert again.create_invoice(amount="1")["status"] == "new"
    finally:
        assert stop_dev(again) == 0
    assert not listening(again.anvil_url)
