"""docs/pricing.md: its example config loads, and every published feed address is EIP-55."""

import re
from pathlib import Path

from eth_utils import is_checksum_address

from indexer.config import load_settings
from tests.unit.test_config import GOOD, write

DOC = Path(__file__).resolve().parents[2] / "docs" / "pricing.md"


def test_the_documented_configuration_loads(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert example is not None
    settings = load_settings(write(tmp_path, GOOD + example.group(1)), env={})
    assert settings.paid_tolerance_ppm == 5000
    assert settings.price_books["ethereum"].route("ETH", "USD") is not None


def test_every_published_feed_address_is_checksummed() -> None:
    addresses = re.findall(r"`(0x[0-9a-fA-F]{40})`", DOC.read_text())
    assert len(addresses) >= 10
    assert [a for a in addresses if not is_checksum_address(a)] == []
