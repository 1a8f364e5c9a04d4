"""Public derivation from an xpub: published vectors, both accepted depths, refusals."""

import pytest

from indexer.domain.errors import ValidationError
from indexer.wallet import parse_xpub
from tests.support.api import OTHER_XPUB, TEST_XPUB

# m/44'/60'/0'/0 of "abandon ×11 about", as wallets export it (depth 4)
TEST_EXTERNAL_CHAIN = "xpub6EF8jXqFeFEW5bwMU7RpQtHkzE4KJxcqJtvkCjJumzW8CPpacXkb92ek4WzLQXjL93HycJwTPUAcuNxCqFPKKU5m5Z2Vq4nCyh5CyPeBFFr"
# Published first addresses of "abandon ×11 about" on m/44'/60'/0'/0/i (MetaMask, Ledger, iancoleman)
VECTORS = [
    (0, "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"),
    (1, "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0"),
    (2, "0xb6716976A3ebe8D39aCEB04372f22Ff8e6802D7A"),
]


@pytest.mark.parametrize(("index", "address"), VECTORS)
def test_account_xpub_derives_published_addresses(index: int, address: str) -> None:
    assert parse_xpub(TEST_XPUB).address(index) == address


def test_external_chain_key_gives_the_same_addresses() -> None:
    account, chain = parse_xpub(TEST_XPUB), parse_xpub(TEST_EXTERNAL_CHAIN)
    assert [chain.address(i) for i in range(5)] == [account.address(i) for i in range(5)]
    assert chain.fingerprint == account.fingerprint


def test_different_wallets_have_different_fingerprints() -> None:
    assert parse_xpub(TEST_XPUB).fingerprint != parse_xpub(OTHER_XPUB).fingerprint


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "invalid_xpub"),
        (None, "invalid_xpub"),
        ("xpub123", "invalid_xpub"),
        (TEST_XPUB[:-1] + "x", "invalid_xpub"),
        (
            "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
            "private_key_refused",
        ),
        # the BIP32 master public key (depth 0) is not an account key
        (
            "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8",
            "invalid_xpub_depth",
        ),
    ],
    ids=["empty", "none", "short", "bad-checksum", "private-key", "master-depth-0"],
)
def test_bad_keys_are_refused_with_a_code(text: object, code: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_xpub(text)
    assert error.value.code == code
