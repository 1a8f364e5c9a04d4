"""A real Gateway on a temporary DuckDB file, an aiohttp test client, and a store with a key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from api.bootstrap import Gateway
from indexer.config import load_settings
from tests.support.postgres import Backend

# The account xpub of the public BIP39 test mnemonic "abandon ×11 about": never for real funds.
TEST_XPUB = "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3yZdUsT8ddYM3PwnATt"
# "legal winner thank year wave sausage worth useful legal winner thank yellow" (public too)
OTHER_XPUB = "xpub6Bh6Cg7bvjFdW6VEAaZmsyhZh86WdJ9Kr5aqqY5LN7UFLpxTrxsiys213UCu8MAYjcq5JhF7jzZXvruGfWfPbxqsByNNhwWaNQRuhP3JcC3"
USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
BUSDT = "0x55d398326f99059fF775485246999027B3197955"

CONFIG = """
database = "{db}"
public_url = "https://pay.example.com"

[networks.ethereum]
chain_id = 1
rpc_url = "ws://127.0.0.1:1"
confirmations = 12
native = {{ symbol = "ETH", decimals = 18 }}
[[networks.ethereum.tokens]]
symbol = "USDT"
contract = "{usdt}"
decimals = 6

[networks.bsc]
chain_id = 56
rpc_url = "ws://127.0.0.1:2"
confirmations = 15
native = {{ symbol = "BNB", decimals = 18 }}
[[networks.bsc.tokens]]
symbol = "USDT"
contract = "{busdt}"
decimals = 18
"""


def write_config(tmp_path: Path, extra: str = "", database: str | None = None) -> Path:
    path = tmp_path / "chainpay.toml"
    path.write_text(
        CONFIG.format(db=database or tmp_path / "chainpay.duckdb", usdt=USDT, busdt=BUSDT) + extra,
        encoding="utf-8",
    )
    return path


@dataclass
class Merchant:
    store_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


@pytest.fixture
def config_path(tmp_path: Path, backend: Backend) -> Path:
    return write_config(tmp_path, database=backend.url_for(tmp_path / "chainpay.duckdb"))


@pytest_asyncio.fixture
async def gateway(config_path: Path) -> AsyncIterator[Gateway]:
    """A Gateway with no chain workers: the API and the store only."""
    gw = Gateway(load_settings(config_path, env={}))
    gw.open()
    yield gw
    await gw.close()


@pytest_asyncio.fixture
async def client(gateway: Gateway) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(build_app(gateway))) as test_client:
        yield test_client


async def make_merchant(gateway: Gateway, name: str = "shop", xpub: str = TEST_XPUB) -> Merchant:
    store, key = await gateway.stores.create_store(name, xpub)
    return Merchant(store.id, key.secret)


@pytest_asyncio.fixture
async def merchant(gateway: Gateway) -> Merchant:
    return await make_merchant(gateway)
