"""Forwarder stores: CREATE2 deposit addresses issued, matched and paid like xpub ones, and the
bad input that must change nothing."""

from __future__ import annotations

import pytest

from indexer import forwarder
from indexer.domain.errors import ValidationError
from indexer.services.stores import ForwarderUnavailable, Store
from tests.support.forwarders import checksum, deploy_factory
from tests.support.gateway import Chain, GatewayFactory, GatewayUnderTest

pytestmark = pytest.mark.anvil

USDT6 = 10**6
USDT18 = 10**18
ETHER = 10**18


async def forwarder_store(gw: GatewayUnderTest, chains: list[Chain]) -> Store:
    """A forwarder store with a treasury per chain (anvil account 5), its factories verified."""
    for chain in chains:
        deploy_factory(chain.anvil)
    assert await gw.gateway.stores.verify_factories(gw.gateway.settings.networks) == {}
    treasuries = {c.name: checksum(c.anvil.accounts[5]) for c in chains}
    store, _ = await gw.gateway.stores.create_forwarder_store("shop", treasuries)
    gw.store = store
    return store


async def test_forwarder_addresses_are_matched_and_paid_on_two_networks(
    chain_factory: object, gateway_factory: GatewayFactory
) -> None:
    # given a forwarder store on ethereum (6-decimal USDT) and bsc (18-decimal USDT)
    eth = chain_factory(31337)  # type: ignore[operator]
    bsc = chain_factory(31338, usdt_decimals=18)  # type: ignore[operator]
    gw = await gateway_factory([eth, bsc])
    store = await forwarder_store(gw, [eth, bsc])
    gw.start_tails()
    await gw.wait_processed("ethereum", eth.anvil.head())
    await gw.wait_processed("bsc", bsc.anvil.head())

    # when invoices are created: exact, partial (then completed), over, and native via a contract
    exact = await gw.create_invoice("ethereum", "USDT", 12 * USDT6)
    partial = await gw.create_invoice("bsc", "USDT", 10 * USDT18)
    over = await gw.create_invoice("ethereum", "USDT", 5 * USDT6)
    native = await gw.create_invoice("bsc", "BNB", ETHER // 2)

    # then each address is the CREATE2 address of its index under the store's secret
    for invoice, chain in ((exact, eth), (partial, bsc), (over, eth), (native, bsc)):
        assert store.salt_secret is not None
        salt = forwarder.deposit_salt(store.salt_secret, invoice.address_index)
        treasury = checksum(chain.anvil.accounts[5])
        expected = forwarder.deposit_address(forwarder.deterministic_factory(), treasury, salt)
        assert invoice.address == expected
    assert len({i.address for i in (exact, partial, over, native)}) == 4

    # and payments to them are seen like any others
    eth.pay_usdt(exact.address, 12 * USDT6)
    bsc.pay_usdt(partial.address, 4 * USDT18)
    eth.pay_usdt(over.address, 6 * USDT6)
    bsc.anvil.forward(bsc.forwarder, bsc.payer, native.address.lower(), ETHER // 2)
    assert (await gw.wait_status(partial.id, "pending")).amount_received == 4 * USDT18
    bsc.pay_usdt(partial.address, 6 * USDT18)
    eth.anvil.mine(3)
    bsc.anvil.mine(3)
    assert (await gw.wait_status(exact.id, "paid")).exception is None
    assert (await gw.wait_status(partial.id, "paid")).amount_confirmed == 10 * USDT18
    assert (await gw.wait_status(over.id, "paid")).exception is not None
    assert (await gw.wait_status(native.id, "paid")).amount_received == ETHER // 2


@pytest.mark.parametrize(
    ("treasury", "code"),
    [
        ("0x" + "ab" * 20, "invalid_treasury"),  # all lowercase: no checksum
        ("0x0000000000000000000000000000000000000000", "invalid_treasury"),
        (forwarder.deterministic_factory(), "invalid_treasury"),
        (forwarder.DEPLOYER_PROXY, "invalid_treasury"),
        ("0x1234", "invalid_treasury"),
    ],
    ids=["not-checksummed", "zero", "factory", "deployer-proxy", "short"],
)
async def test_a_bad_treasury_is_refused_and_nothing_is_stored(
    chain: Chain, gateway_factory: GatewayFactory, treasury: str, code: str
) -> None:
    gw = await gateway_factory([chain])
    deploy_factory(chain.anvil)
    await gw.gateway.stores.verify_factories(gw.gateway.settings.networks)
    before = await gw.query("SELECT count(*) FROM stores")
    with pytest.raises(ValidationError) as caught:
        await gw.gateway.stores.create_forwarder_store("shop", {"ethereum": treasury})
    assert caught.value.code == code
    assert await gw.query("SELECT count(*) FROM stores") == before
    assert await gw.query("SELECT count(*) FROM store_treasuries") == [(0,)]


async def test_a_network_without_the_factory_refuses_stores_and_addresses(
    chain: Chain, gateway_factory: GatewayFactory
) -> None:
    # given a chain where the factory's address holds other code
    gw = await gateway_factory([chain])
    chain.anvil.rpc("anvil_setCode", forwarder.deterministic_factory(), "0x6000")
    problems = await gw.gateway.stores.verify_factories(gw.gateway.settings.networks)
    assert list(problems.values()) == [
        f"the code at {forwarder.deterministic_factory()} differs from chainpay's "
        "ForwarderFactory artifact"
    ]
    # when a forwarder store is created there, then it is refused and nothing is stored
    with pytest.raises(ForwarderUnavailable):
        await gw.gateway.stores.create_forwarder_store(
            "shop", {"ethereum": checksum(chain.anvil.accounts[5])}
        )
    assert await gw.query("SELECT count(*) FROM store_treasuries") == [(0,)]

    # and given a store made while the factory was right, once it no longer matches
    deploy_factory(chain.anvil)  # the proxy cannot redeploy over code: put the real one back
    chain.anvil.rpc(
        "anvil_setCode",
        forwarder.deterministic_factory(),
        "0x" + forwarder.artifacts().factory_runtime.hex(),
    )
    await gw.gateway.stores.verify_factories(gw.gateway.settings.networks)
    store, _ = await gw.gateway.stores.create_forwarder_store(
        "shop", {"ethereum": checksum(chain.anvil.accounts[5])}
    )
    gw.gateway.stores.verified.clear()
    chain.anvil.rpc("anvil_setCode", forwarder.deterministic_factory(), "0x6000")
    await gw.gateway.stores.verify_factories(gw.gateway.settings.networks)
    # then no invoice gets a forwarder address there
    gw.store = store
    with pytest.raises(ForwarderUnavailable):
        await gw.create_invoice("ethereum", "USDT", USDT6)
