"""The issued-address matcher: exact answers behind a bloom filter, growth and metrics."""

from __future__ import annotations

import os

import pytest

from indexer.matcher import AddressMatcher
from indexer.metrics import BLOOM_FILL, ISSUED_ADDRESSES


def random_address() -> str:
    return "0x" + os.urandom(20).hex()


def test_screen_returns_only_issued_recipients() -> None:
    # given a matcher with some issued addresses
    issued = [random_address() for _ in range(50)]
    matcher = AddressMatcher()
    matcher.add_many(issued)
    strangers = [random_address() for _ in range(10_000)]
    # when a block's recipients are screened
    hits = matcher.screen([*strangers, issued[3], issued[7], issued[3]])
    # then exactly the issued ones come back, once each
    assert hits == {issued[3], issued[7]}


def test_addresses_match_in_any_hex_case_and_come_back_lowercase() -> None:
    matcher = AddressMatcher()
    address = "0x" + "Ab" * 20
    matcher.add(address)
    assert address.lower() in matcher
    assert address.upper().replace("0X", "0x") in matcher
    assert matcher.screen([address]) == {address.lower()}


def test_adding_an_address_twice_counts_once() -> None:
    matcher = AddressMatcher()
    address = random_address()
    assert matcher.add_many([address, address.upper().replace("0X", "0x")]) == 1
    matcher.add(address)
    assert len(matcher) == 1


def test_zero_address_can_be_watched_although_it_marks_empty_slots() -> None:
    matcher = AddressMatcher()
    zero = "0x" + "00" * 20
    assert zero not in matcher
    matcher.add(zero)
    assert zero in matcher
    assert matcher.screen([zero]) == {zero}
    assert len(matcher) == 1


@pytest.mark.parametrize(
    "bad", ["", "0x1234", "ab" * 21, "0x" + "zz" * 20, "0x" + "00" * 21], ids=repr
)
def test_malformed_addresses_are_refused_on_add(bad: str) -> None:
    with pytest.raises(ValueError):
        AddressMatcher().add(bad)


def test_malformed_recipients_never_match() -> None:
    matcher = AddressMatcher()
    matcher.add(random_address())
    assert matcher.screen(["", "0x", "not an address"]) == set()
    assert 42 not in matcher


def test_matcher_grows_past_capacity_and_keeps_every_address() -> None:
    # given a tiny matcher
    matcher = AddressMatcher(capacity=8)
    issued = [random_address() for _ in range(1_000)]
    # when addresses are added one by one far past its capacity
    for address in issued:
        matcher.add(address)
    # then the bloom filter was rebuilt larger and nothing was lost
    stats = matcher.stats()
    assert stats.capacity >= 1_000
    assert stats.fill_ratio <= 1.0
    assert all(address in matcher for address in issued)
    assert matcher.screen(issued) == set(issued)


def test_false_positives_are_rejected_and_counted() -> None:
    # given a bloom filter sized so small that false positives are certain
    matcher = AddressMatcher(capacity=4, false_positive_rate=0.5)
    matcher.add_many([random_address() for _ in range(4)])
    strangers = [random_address() for _ in range(2_000)]
    # when strangers are screened
    hits = matcher.screen(strangers)
    # then none match, and the bloom's mistakes were counted
    assert hits == set()
    assert matcher.stats().false_positives > 0


def test_metrics_follow_issued_count_and_fill() -> None:
    matcher = AddressMatcher(capacity=100)
    matcher.add_many([random_address() for _ in range(25)])
    assert ISSUED_ADDRESSES._value.get() == 25
    assert BLOOM_FILL._value.get() == pytest.approx(0.25)


def test_exact_set_is_compact() -> None:
    # 20-byte slots at a load of at most 0.7 and at least 0.35 after growth
    matcher = AddressMatcher()
    matcher.add_many([random_address() for _ in range(100_000)])
    assert matcher.stats().table_bytes <= 100_000 * 20 / 0.35


def test_clustered_addresses_are_kept_and_found_one_by_one() -> None:
    # given addresses that share their leading bytes (sequential, as vanity or test keys do)
    clustered = [f"0x{i:040x}" for i in range(1, 30_001)]
    matcher = AddressMatcher()
    # when they are added one at a time, as invoices are created
    for address in clustered:
        matcher.add(address)
    # then each is found, neighbours that were never added are not, and the count is exact
    assert len(matcher) == len(clustered)
    assert all(address in matcher for address in clustered[::97])
    assert f"0x{30_001:040x}" not in matcher and "0x" + "ab" * 20 not in matcher
    assert matcher.screen([clustered[5].upper().replace("0X", "0x"), f"0x{40_000:040x}"]) == {
        clustered[5]
    }


def test_adding_one_address_twice_counts_it_once() -> None:
    matcher = AddressMatcher(capacity=2)
    address = random_address()
    matcher.add(address)
    matcher.add(address.upper().replace("0X", "0x"))
    matcher.add(random_address())  # past the capacity: the bloom filter is rebuilt bigger
    assert len(matcher) == 2 and address in matcher
    assert ISSUED_ADDRESSES._value.get() == 2
