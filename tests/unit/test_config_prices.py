"""[[networks.N.prices]], [prices] and [invoices] paid_tolerance: one line per mistake."""

from pathlib import Path

import pytest

from indexer.config import ConfigError, load_settings
from indexer.domain.pricing import PriceFeed, PricePeg
from tests.unit.test_config import GOOD, write

FEEDS = """
[[networks.ethereum.prices]]
pair = "ETH/USD"
feed = "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"
heartbeat = 3600
[[networks.ethereum.prices]]
pair = "EUR/USD"
feed = "0xb49f677943BC038e9857d61E7d053CaA2C1734C1"
heartbeat = 86400
[[networks.ethereum.prices]]
asset = "USDT"
peg = "USD"
"""


def test_feeds_and_pegs_build_a_price_book_with_checksummed_feeds(tmp_path: Path) -> None:
    text = GOOD + FEEDS + '[invoices]\npaid_tolerance = "0.5%"\n[prices]\ncache_seconds = 2\n'
    settings = load_settings(write(tmp_path, text), env={})
    book = settings.price_books["ethereum"]
    assert book.feeds[0] == PriceFeed("ETH/USD", "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", 3600)
    assert book.pegs == (PricePeg("USDT", "USD"),)
    assert book.currencies() == {"USD", "EUR"}
    assert settings.paid_tolerance_ppm == 5000
    assert settings.prices.cache_seconds == 2


def test_no_prices_means_no_price_book_and_no_tolerance(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), env={})
    assert (settings.price_books, settings.paid_tolerance_ppm) == ({}, 0)


ENTRY = "[[networks.ethereum.prices]]\n"
FEED = 'feed = "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"\nheartbeat = 3600\n'


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        pytest.param(ENTRY + 'pair = "ETH-USD"\n' + FEED, "networks.ethereum.prices[0].pair",
                     "ASSET/CURRENCY", id="malformed-pair"),
        pytest.param(ENTRY + 'pair = "ETH/BTC"\n' + FEED, "networks.ethereum.prices[0].pair",
                     "ASSET/CURRENCY", id="quote-not-a-currency"),
        pytest.param(ENTRY + 'pair = "DOGE/USD"\n' + FEED, "networks.ethereum.prices[0].pair",
                     "neither an asset", id="unknown-base"),
        pytest.param(ENTRY + 'pair = "ETH/USD"\nfeed = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8418"'
                     '\nheartbeat = 3600\n', "networks.ethereum.prices[0].feed", "EIP-55",
                     id="bad-checksum"),
        pytest.param(ENTRY + 'pair = "ETH/USD"\nfeed = "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"'
                     '\n', "networks.ethereum.prices[0].heartbeat", "required", id="no-heartbeat"),
        pytest.param(ENTRY + 'pair = "ETH/USD"\n' + FEED.replace("3600", "0"),
                     "networks.ethereum.prices[0].heartbeat", "between", id="zero-heartbeat"),
        pytest.param(ENTRY + 'pair = "ETH/USD"\n' + FEED + ENTRY + 'pair = "ETH/USD"\n' + FEED,
                     "networks.ethereum.prices[1].pair", "twice", id="duplicate"),
        pytest.param(ENTRY + 'asset = "USDT"\npeg = "USD"\nheartbeat = 3600\n',
                     "networks.ethereum.prices[0].heartbeat", "not with peg", id="peg-and-feed"),
        pytest.param(ENTRY + 'asset = "ETH"\npeg = "USD"\n', "networks.ethereum.prices[0].asset",
                     "not a token", id="native-pegged"),
        pytest.param(ENTRY + 'asset = "USDT"\npeg = "XXX"\n', "networks.ethereum.prices[0].peg",
                     "unknown currency", id="peg-unknown-currency"),
        pytest.param(ENTRY + 'pair = "ETH/USD"\nfeed = "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"'
                     '\nheartbeat = 3600\nfeeds = 1\n', "networks.ethereum.prices[0].feeds",
                     "unknown key", id="typo"),
        pytest.param('[invoices]\npaid_tolerance = "0.5"\n', "invoices.paid_tolerance",
                     "percentage", id="tolerance-no-percent"),
        pytest.param('[invoices]\npaid_tolerance = "100%"\n', "invoices.paid_tolerance",
                     "below 100%", id="tolerance-everything"),
        pytest.param("[prices]\ncache_seconds = 600\n", "prices.cache_seconds", "at most 60",
                     id="cache-too-long"),
        pytest.param("[prices]\nmax_skew_seconds = 0\n", "prices.max_skew_seconds",
                     "greater than zero", id="no-skew"),
    ],
)  # fmt: skip
def test_price_mistakes_name_the_file_and_key(
    tmp_path: Path, extra: str, key: str, words: str
) -> None:
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_environment_overrides_are_checked_the_same_way(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    env = {"CHAINPAY_INVOICES__PAID_TOLERANCE": '"5"'}
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env)
    assert str(caught.value).startswith(
        "environment variable CHAINPAY_INVOICES__PAID_TOLERANCE: invoices.paid_tolerance: "
    )
    env = {
        "CHAINPAY_NETWORKS__ETHEREUM__PRICES": '[{pair = "ETH/USD", feed = "0x1", heartbeat = 1}]'
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env)
    assert str(caught.value).startswith(
        "environment variable CHAINPAY_NETWORKS__ETHEREUM__PRICES: "
        "networks.ethereum.prices[0].feed: "
    )
