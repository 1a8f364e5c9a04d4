"""The checkout page while a late payment confirms: real anvil, real tail, headless Chromium.

Issue 10, item 10: the page told the customer "0 USDT is missing, contact the merchant" while
their full, late payment was waiting for confirmations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from api.app import build_app
from indexer.workers.expirer import Expirer
from tests.support.browser import open_page
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest
from tests.support.process import free_port

pytestmark = [pytest.mark.anvil, pytest.mark.browser]

USDT = 10**6
Serve = Callable[[GatewayUnderTest], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """`await serve(gw)`: the gateway's HTTP app on a free port; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(gw: GatewayUnderTest) -> str:
        port = free_port()
        runner = web.AppRunner(build_app(gw.gateway), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_late_payment_confirming_says_so_then_paid_late_without_reload(
    chain: Chain, gateway_factory: GatewayFactory, serve: Serve, browser: Browser
) -> None:
    # given an expired 10 USDT invoice whose full payment arrived late and is confirming
    gw = await gateway_factory([chain])
    gw.start_tails()
    url = await serve(gw)
    invoice = await gw.create_invoice("ethereum", "USDT", 10 * USDT, expires_in=60)
    chain.anvil.rpc("evm_increaseTime", 120)
    gw.clock.advance(120)
    await Expirer(gw.gateway.db, gw.gateway.settings, gw.clock).tick()
    receipt = chain.pay_usdt(invoice.address, 10 * USDT)
    await gw.wait_processed("ethereum", int(receipt["blockNumber"], 16))

    # when the customer opens the checkout page
    opened = await open_page(browser, f"{url}/pay/{invoice.id}")
    page = opened.page

    # then it says the payment is confirming, never that anything is missing
    confirming = page.locator("[data-panel=confirming]")
    await expect(confirming).to_be_visible()
    await expect(confirming).to_contain_text("10 USDT waiting for confirmations: 1 of 3")
    await expect(page.locator("[data-panel=underpaid]")).to_be_hidden()
    await expect(page.locator("#pay")).to_be_hidden()
    assert "missing" not in await page.locator("#status").inner_text()
    await opened.screenshot("checkout-confirming-phone")

    # and when the payment is confirmed, the page moves to paid late by itself
    chain.anvil.mine(2)
    await expect(page.locator("[data-panel=paid_late]")).to_be_visible(timeout=15_000)
    await expect(confirming).to_be_hidden()
    assert opened.foreign_requests(url) == []
    await opened.context.close()
