"""The deposit contracts on anvil: whoever calls the factory, with whatever arguments and token
behaviours, funds only ever reach the treasury, and nothing stays behind after a sweep but what
a broken token refuses to move."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer import forwarder
from tests.support.anvil import Anvil, calldata
from tests.support.forwarders import (
    checksum,
    deploy_awkward,
    deploy_factory,
    sweep,
    token_balance,
)

pytestmark = pytest.mark.anvil

# AwkwardToken modes: 0 standard, 1 no return value, 2 returns false, 3 reverts, 4 burns gas
MOVES = {0: True, 1: True, 2: False, 3: False, 4: False}


@dataclass
class Setup:
    anvil: Anvil
    factory: str
    tokens: dict[int, str]  # mode -> token
    treasury: str
    secret: bytes


@pytest.fixture
def setup(anvil: Anvil) -> Setup:
    factory = deploy_factory(anvil)
    tokens = {mode: deploy_awkward(anvil, mode) for mode in MOVES}
    return Setup(anvil, factory, tokens, checksum(anvil.accounts[5]), forwarder.new_salt_secret())


def test_the_factory_lands_at_its_deterministic_address_with_the_artifact_runtime(
    setup: Setup,
) -> None:
    code = setup.anvil.rpc("eth_getCode", setup.factory, "latest")
    assert setup.factory == forwarder.deterministic_factory()
    assert forwarder.runtime_matches(code)
    assert not forwarder.runtime_matches(code[:-2] + "00")


def test_python_and_the_factory_agree_on_deposit_addresses(setup: Setup) -> None:
    for index in (0, 1, 2**40):
        salt = forwarder.deposit_salt(setup.secret, index)
        data = calldata("depositAddress(address,bytes32)", setup.treasury, salt)
        onchain = setup.anvil.rpc("eth_call", {"to": setup.factory, "data": data}, "latest")
        assert (
            "0x" + onchain[-40:]
            == forwarder.deposit_address(setup.factory, setup.treasury, salt).lower()
        )


def test_native_coin_before_and_after_a_sweep_and_through_a_contract_reaches_the_treasury(
    setup: Setup,
) -> None:
    # given a deposit address paid directly and through a contract (an internal transfer)
    a = setup.anvil
    salt = forwarder.deposit_salt(setup.secret, 1)
    address = forwarder.deposit_address(setup.factory, setup.treasury, salt)
    relay = a.deploy("Forwarder")
    a.send_eth(a.accounts[1], address, 3 * 10**17)
    a.forward(relay, a.accounts[1], address, 2 * 10**17)
    before = a.balance(setup.treasury)

    # when anyone sweeps it
    sweep(a, setup.factory, setup.treasury, [salt], [])

    # then the treasury has it all and the address holds nothing, not even code
    assert a.balance(address) == 0
    assert a.balance(setup.treasury) - before == 5 * 10**17
    assert a.rpc("eth_getCode", address, "latest") == "0x"

    # and when it is paid again after its sweep, a second sweep collects that too
    a.send_eth(a.accounts[1], address, 10**17)
    sweep(a, setup.factory, setup.treasury, [salt], [])
    assert a.balance(address) == 0
    assert a.balance(setup.treasury) - before == 6 * 10**17


def test_a_sweep_naming_another_treasury_touches_nothing(setup: Setup) -> None:
    # given a paid deposit address
    a = setup.anvil
    token = setup.tokens[0]
    salt = forwarder.deposit_salt(setup.secret, 2)
    address = forwarder.deposit_address(setup.factory, setup.treasury, salt)
    a.send_tx(a.accounts[0], token, calldata("mint(address,uint256)", address, 7))
    a.send_eth(a.accounts[1], address, 10**15)
    thief = checksum(a.accounts[8])

    # when an attacker sweeps its salt to their own address
    sweep(a, setup.factory, thief, [salt], [token], sender=a.accounts[8])

    # then the deposit is still where it was, and the attacker got nothing
    assert token_balance(a, token, address) == 7
    assert a.balance(address) == 10**15
    assert token_balance(a, token, thief) == 0


deposits = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(sorted(MOVES)), st.integers(1, 10**24), max_size=5),
        st.integers(0, 10**18),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    deposits=deposits,
    listed=st.lists(st.sampled_from(sorted(MOVES)), max_size=7),
    junk_token=st.booleans(),
    caller=st.integers(0, 9),
    honest=st.booleans(),
    extra_salts=st.lists(st.binary(min_size=32, max_size=32), max_size=2),
    index_base=st.integers(10, 2**60),
)
def test_funds_only_ever_reach_the_treasury(
    setup: Setup,
    deposits: list[tuple[dict[int, int], int]],
    listed: list[int],
    junk_token: bool,
    caller: int,
    honest: bool,
    extra_salts: list[bytes],
    index_base: int,
) -> None:
    # given deposit addresses holding random tokens of every behaviour, and native coin
    a = setup.anvil
    salts = [forwarder.deposit_salt(setup.secret, index_base + i) for i in range(len(deposits))]
    addresses = [forwarder.deposit_address(setup.factory, setup.treasury, s) for s in salts]
    for address, (held, native) in zip(addresses, deposits, strict=True):
        for mode, amount in held.items():
            a.send_tx(
                a.accounts[0],
                setup.tokens[mode],
                calldata("mint(address,uint256)", address, amount),
            )
        if native:
            a.send_eth(a.accounts[1], address, native)
    tokens = [setup.tokens[m] for m in listed] + ([a.accounts[7]] if junk_token else [])
    destination = setup.treasury if honest else checksum(a.accounts[caller])
    honest = destination == setup.treasury  # the caller may be the treasury's own account
    watched = list(dict.fromkeys([setup.treasury, checksum(a.accounts[caller]), *addresses]))
    tokens_before = {(t, h): token_balance(a, t, h) for t in setup.tokens.values() for h in watched}
    native_before = {h: a.balance(h) for h in [setup.treasury, *addresses]}

    # when a random caller sweeps, to the treasury or to itself, with whatever arguments
    receipt = sweep(
        a, setup.factory, destination, salts + extra_salts, tokens, sender=a.accounts[caller]
    )
    assert int(receipt["status"], 16) == 1

    # then every token unit is where it was or at the treasury, nowhere else
    for mode, token in setup.tokens.items():
        total_before = sum(tokens_before[(token, h)] for h in watched)
        assert sum(token_balance(a, token, h) for h in watched) == total_before
        for address in addresses:
            had = tokens_before[(token, address)]  # examples may reuse an address
            swept = honest and MOVES[mode] and mode in listed
            assert token_balance(a, token, address) == (0 if swept else had)
        if not honest:
            assert token_balance(a, token, destination) == tokens_before[(token, destination)]
    # and native coin left every deposit address for the treasury on an honest sweep only
    moved = sum(native_before[h] - a.balance(h) for h in addresses)
    if honest:
        assert all(a.balance(h) == 0 for h in addresses)
        treasury_gain = a.balance(setup.treasury) - native_before[setup.treasury]
        gas_paid = 0
        if checksum(a.accounts[caller]) == setup.treasury:
            gas_paid = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        assert treasury_gain == moved - gas_paid
    else:
        assert moved == 0
