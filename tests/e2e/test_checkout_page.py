"""The checkout page in headless Chromium against a gateway served in-process.

No chain here: what the page shows, its QR code, copy button, 404, no-JS rendering, security
headers, and expiry (the real expirer on a frozen clock the test moves). Payments on a real
chain are in test_checkout_live.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from api.app import build_app
from api.bootstrap import Gateway
from indexer.config import Settings
from indexer.domain.clock import FrozenClock
from indexer.domain.network import Asset, Network
from indexer.workers.expirer import Expirer
from tests.support.browser import decode_qr, open_page
from tests.support.process import free_port

pytestmark = pytest.mark.browser

XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3"
    "yZdUsT8ddYM3PwnATt"
)
USDT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@dataclass
class Served:
    """A gateway serving HTTP on a free port, with a frozen clock and a merchant's API key."""

    gateway: Gateway
    url: str
    api_key: str
    clock: FrozenClock

    async def create_invoice(self, **fields: Any) -> dict[str, Any]:
        body = {"network": "ethereum", "asset": "USDT", "amount": "25.5", **fields}
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/v1/invoices", json=body, headers=headers) as r:
                assert r.status == 201, await r.text()
                return dict(await r.json())


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    port = free_port()
    network = Network(
        name="ethereum",
        chain_id=1,
        rpc_url="ws://127.0.0.1:9",  # never dialled: no chain tail runs here
        confirmations=3,
        native=Asset("ETH", 18),
        tokens=(Asset("USDT", 6, USDT),),
        title="Ethereum",
    )
    settings = Settings(
        source="test",
        database=tmp_path / "checkout.duckdb",
        public_url=f"http://127.0.0.1:{port}",
        networks={"ethereum": network},
    )
    clock = FrozenClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    gateway = Gateway(settings, clock=clock)
    gateway.open()
    _, key = await gateway.stores.create_store("Corner Coffee", XPUB)
    gateway.start_workers([Expirer(gateway.db, settings, clock, interval=0.2).run])
    runner = web.AppRunner(build_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(gateway, settings.public_url, key.secret, clock)
    finally:
        await runner.cleanup()
        await gateway.close()


async def test_page_shows_amount_network_address_store_and_order(
    served: Served, browser: Browser
) -> None:
    invoice = await served.create_invoice(order_id="A-1042", metadata={"secret": "no"})
    opened = await open_page(browser, invoice["checkout_url"])
    page = opened.page

    await expect(page.locator("h1[data-when=open]")).to_contain_text("25.5")
    await expect(page.locator("h1[data-when=open]")).to_contain_text("USDT")
    await expect(page.locator("h1[data-when=open]")).to_contain_text("Ethereum")
    await expect(page.locator(".warning")).to_contain_text("Send only USDT on the Ethereum network")
    await expect(page.locator("#address-value")).to_have_text(invoice["address"])
    await expect(page.locator(".store")).to_have_text("Corner Coffee")
    await expect(page.locator(".order")).to_contain_text("A-1042")
    await expect(page.locator("[data-panel=waiting]")).to_be_visible()
    await expect(page.locator("#countdown")).to_have_text("15:00")
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert "secret" not in await page.content()
    await opened.screenshot("checkout-waiting-phone")
    await page.wait_for_timeout(2500)  # at least one status poll
    assert opened.foreign_requests(served.url) == []
    assert any(url.endswith("/status") for url in opened.requests)
    await opened.context.close()


async def test_qr_code_decodes_to_the_invoice_payment_uri(served: Served, browser: Browser) -> None:
    invoice = await served.create_invoice()
    opened = await open_page(browser, invoice["checkout_url"])

    assert await decode_qr(opened.page, "#qr svg") == [invoice["payment_uri"]]
    await opened.context.close()


async def test_copy_button_copies_the_address(served: Served, browser: Browser) -> None:
    invoice = await served.create_invoice()
    opened = await open_page(
        browser, invoice["checkout_url"], permissions=["clipboard-read", "clipboard-write"]
    )
    page = opened.page

    await page.get_by_role("button", name="Copy address").click()

    assert await page.evaluate("navigator.clipboard.readText()") == invoice["address"]
    await expect(page.locator("#copied")).to_have_text("address copied to the clipboard.")
    await page.get_by_role("button", name="Copy amount").click()
    assert await page.evaluate("navigator.clipboard.readText()") == "25.5"
    await opened.context.close()


async def test_expired_invoice_moves_to_expired_without_reload(
    served: Served, browser: Browser
) -> None:
    invoice = await served.create_invoice(expires_in=60)
    opened = await open_page(browser, invoice["checkout_url"])
    page = opened.page
    await expect(page.locator("[data-panel=waiting]")).to_be_visible()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    served.clock.advance(61)  # the expirer runs on this clock

    await expect(page.locator("[data-panel=expired]")).to_be_visible(timeout=10_000)
    await expect(page.locator("[data-panel=expired]")).to_contain_text("Do not send a payment")
    await expect(page.locator("#pay")).to_be_hidden()
    await expect(page.locator("h1[data-when=closed]")).to_contain_text("25.5 USDT")
    assert navigations == []
    await opened.screenshot("checkout-expired-phone")
    await opened.context.close()


async def test_unknown_or_malformed_invoice_gets_a_friendly_404_page(
    served: Served, browser: Browser
) -> None:
    opened = await open_page(browser, f"{served.url}/pay/inv_0000000000000000000000")
    response = await opened.page.reload()

    assert response is not None and response.status == 404
    await expect(opened.page.locator("h1")).to_have_text("Invoice not found")
    await opened.screenshot("checkout-404-phone")
    malformed = await opened.page.goto(f"{served.url}/pay/not-an-id%3Cscript%3E")
    assert malformed is not None and malformed.status == 404
    await expect(opened.page.locator("h1")).to_have_text("Invoice not found")
    await opened.context.close()


async def test_static_part_reads_without_javascript(served: Served, browser: Browser) -> None:
    invoice = await served.create_invoice(order_id="A-7")
    opened = await open_page(browser, invoice["checkout_url"], java_script_enabled=False)
    page = opened.page

    await expect(page.locator("#address-value")).to_have_text(invoice["address"])
    await expect(page.locator("#qr svg")).to_be_visible()
    await expect(page.locator("noscript")).to_have_count(1)
    await expect(page.get_by_role("button", name="Copy address")).to_be_hidden()
    await expect(page.locator("#countdown")).to_have_text("15:00")
    await opened.screenshot("checkout-no-js-phone")
    await opened.context.close()


async def test_pages_carry_security_headers_and_status_reveals_no_metadata(
    served: Served,
) -> None:
    invoice = await served.create_invoice(order_id="A-9", metadata={"customer": "c@example.com"})
    async with aiohttp.ClientSession() as session:
        async with session.get(invoice["checkout_url"]) as page:
            headers = page.headers
        async with session.get(f"{invoice['checkout_url']}/status") as status:
            body = await status.json()
        async with session.get(f"{served.url}/pay/inv_0000000000000000000000/status") as missing:
            missing_status = missing.status

    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "c@example.com" not in json.dumps(body)
    assert set(body) == {
        "id", "state", "status", "exception", "amount", "amount_due", "amount_received",
        "amount_confirmed", "amount_pending", "asset", "network", "address", "payment_uri", "confirmations", "expires_at",
        "expires_in", "order_id", "redirect_url", "price",
    }  # fmt: skip
    assert body["order_id"] == "A-9" and body["redirect_url"] is None
    assert missing_status == 404
