"""A real Gateway on a temporary DuckDB file, wired to anvil chains with deployed test tokens.

`chain` gives one anvil (chain id 31337) with a USDT TestToken (6 decimals), a same-symbol
spoof at another contract and the Forwarder; `chain_factory` makes more (e.g. 31338 with an
18-decimal USDT). `gateway_factory(chains)` opens a Gateway with a store on the public test
xpub; `tail(gateway)` starts the chain tails in-process. Everything is torn down afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.bootstrap import Gateway
from indexer.config import Settings
from indexer.domain.network import Asset, Network
from indexer.domain.records import Invoice, Payment
from indexer.services.invoices import NewInvoice
from indexer.services.stores import Store
from indexer.workers.tail import TailWorker
from tests.support.anvil import Anvil
from tests.support.postgres import Backend

TEST_XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3"
    "yZdUsT8ddYM3PwnATt"
)
CHAIN_NAMES = {31337: "ethereum", 31338: "bsc"}
NATIVE_SYMBOLS = {31337: "ETH", 31338: "BNB"}


class ShiftedClock:
    """Wall-clock UTC plus an offset the test moves, in step with anvil's `evm_increaseTime`."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Chain:
    """One anvil node with its configured USDT, a same-symbol spoof and the Forwarder."""

    anvil: Anvil
    name: str
    usdt: str
    usdt_decimals: int
    spoof: str
    forwarder: str
    confirmations: int = 3
    rpc_url: str | None = None  # default: the node's websocket; a proxy's URL to inject faults

    @property
    def payer(self) -> str:
        return self.anvil.accounts[1]

    def network(self) -> Network:
        from eth_utils import to_checksum_address

        return Network(
            name=self.name,
            chain_id=self.anvil.chain_id,
            rpc_url=self.rpc_url or self.anvil.ws_url,
            confirmations=self.confirmations,
            native=Asset(NATIVE_SYMBOLS.get(self.anvil.chain_id, "ETH"), 18),
            tokens=(Asset("USDT", self.usdt_decimals, to_checksum_address(self.usdt)),),
        )

    def toml(self) -> str:
        """This chain's `[networks.NAME]` table for a config file."""
        network = self.network()
        token = network.tokens[0]
        return (
            f"[networks.{self.name}]\nchain_id = {network.chain_id}\n"
            f'rpc_url = "{network.rpc_url}"\nconfirmations = {self.confirmations}\n'
            f'native = {{ symbol = "{network.native.symbol}", decimals = 18 }}\n'
            f"[[networks.{self.name}.tokens]]\n"
            f'symbol = "USDT"\ncontract = "{token.contract}"\ndecimals = {token.decimals}\n'
        )

    def pay_usdt(self, to: str, amount: int, token: str | None = None) -> dict[str, Any]:
        """Mint to the payer and transfer (two blocks; the transfer is the second)."""
        contract = token or self.usdt
        self.anvil.token_mint(contract, self.payer, amount)
        return self.anvil.token_transfer(contract, self.payer, to.lower(), amount)


def make_chain(anvil: Anvil, usdt_decimals: int = 6) -> Chain:
    usdt = anvil.deploy_token("USDT", usdt_decimals)
    spoof = anvil.deploy_token("USDT", usdt_decimals)
    forwarder = anvil.deploy("Forwarder")
    name = CHAIN_NAMES.get(anvil.chain_id, f"chain{anvil.chain_id}")
    return Chain(anvil, name, usdt, usdt_decimals, spoof, forwarder)


@pytest.fixture
def chain(anvil: Anvil) -> Chain:
    return make_chain(anvil)


@pytest.fixture
def chain_factory(anvil_factory: Callable[..., Anvil]) -> Callable[..., Chain]:
    def make(chain_id: int = 31337, usdt_decimals: int = 6) -> Chain:
        return make_chain(anvil_factory(chain_id=chain_id), usdt_decimals)

    return make


def settings_for(
    database: Path,
    chains: list[Chain],
    monitoring_window: int = 86400,
    postgres_url: str | None = None,
) -> Settings:
    return Settings(
        source=str(database.with_suffix(".toml")),
        database=database,
        postgres_url=postgres_url,
        public_url="http://127.0.0.1:8080",
        networks={c.name: c.network() for c in chains},
        monitoring_window=monitoring_window,
    )


def config_file(path: Path, database: Path | str, chains: list[Chain], port: int) -> Path:
    """A TOML config for a `chainpay serve` subprocess on these chains."""
    text = (
        f'database = "{database}"\npublic_url = "http://127.0.0.1:{port}"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n' + "".join(c.toml() for c in chains)
    )
    path.write_text(text)
    return path


@dataclass
class GatewayUnderTest:
    """A Gateway with its store, clock and (once started) chain tails."""

    gateway: Gateway
    store: Store
    clock: ShiftedClock
    tails: list[TailWorker] = field(default_factory=list)
    closed: bool = False

    async def close(self) -> None:
        """Stop the tails and release the DuckDB file (a second Gateway may then open it)."""
        if not self.closed:
            self.closed = True
            await self.gateway.close()

    async def create_invoice(
        self, network: str, asset: str, amount: int, expires_in: int = 900
    ) -> Invoice:
        """Create through the invoice service (as the API does); `amount` in base units."""
        command = NewInvoice(network, asset, amount, None, None, expires_in, None)
        reply = await self.gateway.invoices.create(self.store, command, None, "test")
        invoice = await self.invoice(reply.body["id"])
        return invoice

    async def invoice(self, invoice_id: str) -> Invoice:
        found = await self.gateway.db.read(lambda uow: uow.invoices.get_invoice(invoice_id))
        assert found is not None
        return found

    async def payments(self, invoice_id: str) -> list[Payment]:
        return (await self.gateway.db.read(lambda uow: uow.invoices.payments_for([invoice_id])))[
            invoice_id
        ]

    async def events(self, invoice_id: str) -> list[str]:
        rows = await self.gateway.db.read_sql(
            lambda c: c.execute(
                "SELECT type FROM events WHERE invoice_id = ? ORDER BY seq", [invoice_id]
            ).fetchall()
        )
        return [row[0] for row in rows]

    async def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return await self.gateway.db.read_sql(lambda c: c.execute(sql, params or []).fetchall())

    def start_tails(self, **options: Any) -> list[TailWorker]:
        """Run a chain tail per network in this event loop (stopped with the gateway)."""
        options.setdefault("poll_interval", 0.5)
        options.setdefault("max_backoff", 1.0)
        options.setdefault("rpc_timeout", 2.0)
        g = self.gateway
        for name, network in g.settings.networks.items():
            tail = TailWorker(
                g.db, g.settings, network, g.matcher, g.clock, g.network_status[name], **options
            )
            self.tails.append(tail)
        g.start_workers([t.run for t in self.tails])
        return self.tails

    async def processed(self, network: str) -> int:
        rows = await self.query(
            "SELECT block_number FROM chain_cursors WHERE network = ?", [network]
        )
        return int(rows[0][0]) if rows else -1

    async def wait_processed(self, network: str, number: int, within: float = 20.0) -> None:
        await eventually(lambda: self._reached(network, number), within)

    async def _reached(self, network: str, number: int) -> bool:
        return await self.processed(network) >= number

    async def wait_status(self, invoice_id: str, status: str, within: float = 20.0) -> Invoice:
        async def reached() -> bool:
            return (await self.invoice(invoice_id)).status.value == status

        await eventually(reached, within)
        return await self.invoice(invoice_id)


async def eventually(
    condition: Callable[[], Awaitable[bool]], within: float = 20.0, every: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(every)


GatewayFactory = Callable[..., Awaitable[GatewayUnderTest]]


@pytest.fixture
async def gateway_factory(tmp_path: Path, backend: Backend) -> AsyncIterator[GatewayFactory]:
    """`await gateway_factory([chain, ...])`: a Gateway on `tmp_path`, closed afterwards."""
    opened: list[GatewayUnderTest] = []

    async def make(
        chains: list[Chain], database: Path | None = None, monitoring_window: int = 86400
    ) -> GatewayUnderTest:
        path = database or tmp_path / f"chainpay-{len(opened)}.duckdb"
        clock = ShiftedClock()
        settings = settings_for(path, chains, monitoring_window, backend.url_for(path))
        gateway = Gateway(settings, clock=clock)
        gateway.open()
        stores = list(gateway.stores.stores.values())
        store = stores[0] if stores else (await gateway.stores.create_store("test", TEST_XPUB))[0]
        result = GatewayUnderTest(gateway, store, clock)
        opened.append(result)
        return result

    yield make
    for item in opened:
        await item.close()
