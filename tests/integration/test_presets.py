"""Every chain preset through the real tail: anvil with the preset's chain id, test tokens placed
at the preset's official contract addresses with its decimals, and an exact and a partial payment
in each token and in the native coin, confirmed by the preset's own finality rule.

anvil answers `safe` with head - 32 and `finalized` with head - 64, so mining 70 blocks after
the payments lets every preset's tag reach them. A node that does not answer the tag (the fault
proxy refuses it like a pre-merge geth) is confirmed by depth, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.bootstrap import Gateway
from indexer import preset
from indexer.config import load_settings
from indexer.domain.network import Asset
from tests.support.anvil import Anvil
from tests.support.gateway import TEST_XPUB, GatewayUnderTest, ShiftedClock
from tests.support.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil

DECIMALS_SLOT = "0x2"  # TestToken.sol: name, symbol, decimals
PAST_EVERY_TAG = 70  # anvil's `finalized` trails the head by 64 blocks


@dataclass
class PresetChain:
    """An anvil posing as the preset's chain, its official token contracts in place."""

    name: str
    anvil: Anvil

    @property
    def payer(self) -> str:
        return self.anvil.accounts[1]

    def pay(self, asset: Asset, to: str, amount: int) -> None:
        if asset.contract is None:
            self.anvil.send_eth(self.payer, to.lower(), amount)
            return
        self.anvil.token_mint(asset.contract, self.payer, amount)
        self.anvil.token_transfer(asset.contract, self.payer, to.lower(), amount)


def place_preset_tokens(anvil: Anvil, name: str) -> None:
    """The test token's runtime code at each official address, its decimals in storage."""
    table = preset.preset(name)
    assert table is not None
    for token in table["tokens"]:
        deployed = anvil.deploy_token(token["symbol"], token["decimals"])
        anvil.rpc("anvil_setCode", token["contract"], anvil.rpc("eth_getCode", deployed, "latest"))
        anvil.rpc("anvil_setStorageAt", token["contract"], DECIMALS_SLOT, _word(token["decimals"]))


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


GatewayFor = Callable[..., Awaitable[GatewayUnderTest]]


@pytest.fixture
async def gateway_for(tmp_path: Path) -> AsyncIterator[GatewayFor]:
    """`await gateway_for(name, preset_name, rpc_url)`: a gateway configured only by preset."""
    opened: list[GatewayUnderTest] = []

    async def make(name: str, preset_name: str, rpc_url: str, extra: str = "") -> GatewayUnderTest:
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'database = "{tmp_path / name}.duckdb"\n'
            f'[networks.{name}]\npreset = "{preset_name}"\nrpc_url = "{rpc_url}"\n{extra}'
        )
        clock = ShiftedClock()
        gateway = Gateway(load_settings(path, env={}), clock=clock)
        gateway.open()
        store = (await gateway.stores.create_store("test", TEST_XPUB))[0]
        under_test = GatewayUnderTest(gateway, store, clock)
        opened.append(under_test)
        return under_test

    yield make
    for item in opened:
        await item.close()


@pytest.mark.parametrize("preset_name", preset.NAMES)
async def test_a_preset_takes_exact_and_partial_payments_in_every_asset(
    tmp_path: Path, gateway_for: GatewayFor, preset_name: str
) -> None:
    # given anvil with the preset's chain id and the preset's token contracts in place
    table = preset.preset(preset_name)
    assert table is not None
    anvil = Anvil(chain_id=table["chain_id"], workdir=tmp_path).start()
    try:
        place_preset_tokens(anvil, preset_name)
        chain = PresetChain("net", anvil)
        gw = await gateway_for("net", preset_name, anvil.ws_url)
        network = gw.gateway.settings.networks["net"]
        gw.start_tails()

        # when each asset pays one invoice in part and another exactly
        invoices = []
        for asset in network.assets:
            price = 25 * 10**asset.decimals
            partial = await gw.create_invoice("net", asset.symbol, price)
            exact = await gw.create_invoice("net", asset.symbol, price)
            chain.pay(asset, partial.address, price * 2 // 5)
            chain.pay(asset, exact.address, price)
            invoices.append((asset, partial, exact, price))
        anvil.mine(PAST_EVERY_TAG)

        # then each exact invoice is paid in the asset's own units, each partial one holds 2/5
        for asset, partial, exact, price in invoices:
            paid = await gw.wait_status(exact.id, "paid")
            assert (paid.asset, paid.amount_confirmed) == (asset.symbol, price)
            held = await gw.invoice(partial.id)
            assert (held.status.value, held.amount_confirmed) == ("pending", price * 2 // 5)
            assert [p.state.value for p in await gw.payments(partial.id)] == ["confirmed"]
    finally:
        anvil.stop()


async def test_a_node_without_the_finality_tag_confirms_by_depth_with_a_warning(
    tmp_path: Path, gateway_for: GatewayFor, caplog: pytest.LogCaptureFixture
) -> None:
    # given base (finality "safe", 30 confirmations) behind a node that refuses the `safe` tag
    anvil = Anvil(chain_id=8453, workdir=tmp_path).start()
    try:
        place_preset_tokens(anvil, "base")
        async with RpcProxy(anvil.http_url) as proxy:
            proxy.missing_tags = {"safe"}
            gw = await gateway_for("base", "base", proxy.ws_url)
            usdc = gw.gateway.settings.networks["base"].asset("USDC")
            assert usdc is not None
            invoice = await gw.create_invoice("base", "USDC", 5 * 10**6)
            caplog.set_level(logging.WARNING, logger="indexer.chain.reader")
            gw.start_tails()

            # when it is paid and buried 30 blocks deep
            PresetChain("base", anvil).pay(usdc, invoice.address, 5 * 10**6)
            anvil.mine(29)

            # then it is paid by depth at once (not after the 30-minute wait for `safe`)
            paid = await gw.wait_status(invoice.id, "paid")
            assert paid.amount_confirmed == 5 * 10**6
            warnings = [
                r.getMessage() for r in caplog.records if "'safe' block tag" in r.getMessage()
            ]
            assert len(warnings) == 1
            assert "confirmed by depth" in warnings[0]
    finally:
        anvil.stop()
