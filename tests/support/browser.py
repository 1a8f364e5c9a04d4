"""Headless Chromium for the checkout tests: Debian's /usr/bin/chromium driven by Playwright.

Playwright never downloads a browser here: it launches the system Chromium by path. Tests get
a `browser`, open pages with `open_page` (which records every request, so a test can prove
nothing left for another host), decode QR codes from screenshots and save screenshots of each
state under artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}  # a common phone width in CSS pixels


@dataclass
class OpenedPage:
    """A page in its own context, with every request it made."""

    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)

    def foreign_requests(self, origin: str) -> list[str]:
        """Requests to anything but `origin` (data: URLs never leave the browser)."""
        return [
            url
            for url in self.requests
            if not url.startswith("data:") and _origin(url) != _origin(origin)
        ]

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `.ci/setup --test` (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(
    browser: Browser, url: str, phone: bool = True, **context_options: Any
) -> OpenedPage:
    """A fresh context (phone-sized unless told) and a page at `url`, its requests recorded."""
    options: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 2} if phone else {}
    options.update(context_options)
    context = await browser.new_context(**options)
    page = await context.new_page()
    opened = OpenedPage(context, page)
    page.on("request", lambda request: opened.requests.append(request.url))
    await page.goto(url)
    return opened


async def decode_qr(page: Page, selector: str) -> list[str]:
    """The texts of the QR codes in a screenshot of the element at `selector`."""
    png = await page.locator(selector).screenshot()
    image = Image.open(io.BytesIO(png)).convert("L")
    return [result.text for result in zxingcpp.read_barcodes(image)]
