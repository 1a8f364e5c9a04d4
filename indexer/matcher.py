"""The issued-address matcher: a bloom filter screening transfer recipients, confirmed exactly.

Every transfer recipient of every block passes `screen`; almost all are strangers, so the bloom
filter (rbloom, keyed by the lowercase hex string the decoder already produced) rejects them
without allocating anything. Bloom hits are confirmed against an exact set of 20-byte keys kept
in one open-addressing `bytearray` (about 40 bytes per address at 1M addresses, where a Python
`set` of hex strings costs about 150). Both lookups are O(1): cost per block does not grow with
the number of issued addresses. Addresses are lowercase hex `0x…` strings, as in the decoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from itertools import islice

from rbloom import Bloom

from indexer.metrics import BLOOM_FALSE_POSITIVES, BLOOM_FILL, ISSUED_ADDRESSES

_KEY = 20
_EMPTY = bytes(_KEY)
_CHUNK = 65_536


def _key(address: str) -> bytes:
    """The 20 raw bytes of a `0x` + 40 hex digit address; ValueError for anything else."""
    if not isinstance(address, str) or len(address) != 42 or address[:2] not in ("0x", "0X"):
        raise ValueError(f"not a hex address: {address!r}")
    return bytes.fromhex(address[2:])


class _AddressTable:
    """An exact set of 20-byte keys: linear probing in one bytearray, all-zero meaning empty.

    Slots are found by Python's own (randomised) hash of the key, so clustered keys, such as
    the sequential addresses of tests or vanity addresses, probe no further than random ones.
    The zero address cannot be stored in a slot (it marks empty) and is kept in a flag instead.
    """

    _MAX_LOAD = 0.7

    def __init__(self, expected: int = 0) -> None:
        self._count = 0
        self._has_zero = False
        self._allocate(self._slots_for(expected))

    @classmethod
    def _slots_for(cls, count: int) -> int:
        slots = 1024
        while count > slots * cls._MAX_LOAD:
            slots *= 2
        return slots

    def _allocate(self, slots: int) -> None:
        self._mask = slots - 1
        self._slots = bytearray(slots * _KEY)

    def __len__(self) -> int:
        return self._count

    def _find(self, key: bytes) -> tuple[int, bool]:
        """(slot index, found) for key: its slot, or the empty slot where it would go."""
        table, mask = self._slots, self._mask
        index = hash(key) & mask
        while True:
            offset = index * _KEY
            slot = table[offset : offset + _KEY]
            if slot == key:
                return index, True
            if slot == _EMPTY:
                return index, False
            index = (index + 1) & mask

    def __contains__(self, key: bytes) -> bool:
        if key == _EMPTY:
            return self._has_zero
        return self._find(key)[1]

    def add(self, key: bytes) -> bool:
        """Insert key; False if it was already present."""
        if key == _EMPTY:
            added, self._has_zero = not self._has_zero, True
            self._count += added
            return added
        index, found = self._find(key)
        if found:
            return False
        offset = index * _KEY
        self._slots[offset : offset + _KEY] = key
        self._count += 1
        if self._count > (self._mask + 1) * self._MAX_LOAD:
            self.reserve(self._count + 1)
        return True

    def reserve(self, count: int) -> None:
        """Make room for `count` keys without further rehashing."""
        slots = self._slots_for(count)
        if slots <= self._mask + 1:
            return
        old = self._slots
        self._allocate(slots)
        for offset in range(0, len(old), _KEY):
            key = bytes(old[offset : offset + _KEY])
            if key != _EMPTY:
                index, _ = self._find(key)
                self._slots[index * _KEY : index * _KEY + _KEY] = key

    def __iter__(self) -> Iterator[bytes]:
        if self._has_zero:
            yield _EMPTY
        table = self._slots
        for offset in range(0, len(table), _KEY):
            key = bytes(table[offset : offset + _KEY])
            if key != _EMPTY:
                yield key

    @property
    def nbytes(self) -> int:
        return len(self._slots)


@dataclass(frozen=True, slots=True)
class MatcherStats:
    """A snapshot of the matcher for health pages and benchmarks."""

    count: int
    capacity: int  # the bloom filter's designed item count
    fill_ratio: float  # count / capacity; the bloom is rebuilt at double capacity past 1.0
    false_positives: int  # bloom hits the exact set rejected since start
    false_positive_rate: float  # the bloom's designed rate at full capacity
    table_bytes: int  # memory of the exact set's slots


class AddressMatcher:
    """All issued deposit addresses, screened by bloom filter and confirmed exactly."""

    def __init__(self, capacity: int = 1024, false_positive_rate: float = 1e-5) -> None:
        if capacity < 1 or not 0 < false_positive_rate < 1:
            raise ValueError("capacity must be positive and the rate between 0 and 1")
        self._rate = false_positive_rate
        self._capacity = capacity
        self._bloom = Bloom(capacity, false_positive_rate)
        self._table = _AddressTable(capacity)
        self._false_positives = 0
        self._publish()

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        lowered = address.lower()
        if lowered not in self._bloom:
            return False
        try:
            return _key(lowered) in self._table
        except ValueError:
            return False

    def add(self, address: str) -> None:
        """Watch one address (any hex case); ValueError if it is not a hex address.

        Called once per created invoice, on the event loop: no chunking, no list building.
        """
        lowered = address.lower()
        key = _key(lowered)
        if len(self._table) >= self._capacity:
            self._grow(len(self._table) + 1)
        if self._table.add(key):
            self._bloom.add(lowered)
            self._publish()

    def add_many(self, addresses: Iterable[str]) -> int:
        """Watch many addresses (any hex case); returns how many were new.

        Sized inputs are made room for up front; input is consumed in chunks so that loading a
        million addresses at start never holds a million temporary strings. On a malformed
        address, ValueError is raised and earlier chunks stay added.
        """
        if isinstance(addresses, Sized):
            self._reserve(len(self._table) + len(addresses))
        iterator = iter(addresses)
        added = 0
        while chunk := [address.lower() for address in islice(iterator, _CHUNK)]:
            keys = [_key(address) for address in chunk]
            self._reserve(len(self._table) + len(keys))
            for address, key in zip(chunk, keys, strict=True):
                if self._table.add(key):
                    self._bloom.add(address)
                    added += 1
        self._publish()
        return added

    def _reserve(self, needed: int) -> None:
        if needed > self._capacity:
            self._grow(needed)
        self._table.reserve(needed)

    def screen(self, addresses: Iterable[str]) -> set[str]:
        """The issued addresses among `addresses` (lowercase), confirmed against the exact set."""
        bloom, table = self._bloom, self._table
        hits: set[str] = set()
        for address in addresses:
            lowered = address.lower()
            if lowered not in bloom or lowered in hits:
                continue
            try:
                confirmed = _key(lowered) in table
            except ValueError:
                confirmed = False
            if confirmed:
                hits.add(lowered)
            else:
                self._false_positives += 1
                BLOOM_FALSE_POSITIVES.inc()
        return hits

    def stats(self) -> MatcherStats:
        return MatcherStats(
            count=len(self._table),
            capacity=self._capacity,
            fill_ratio=len(self._table) / self._capacity,
            false_positives=self._false_positives,
            false_positive_rate=self._rate,
            table_bytes=self._table.nbytes,
        )

    def _grow(self, needed: int) -> None:
        """Rebuild the bloom filter at doubled capacity until `needed` addresses fit."""
        while self._capacity < needed:
            self._capacity *= 2
        bloom = Bloom(self._capacity, self._rate)
        for key in self._table:
            bloom.add("0x" + key.hex())
        self._bloom = bloom

    def _publish(self) -> None:
        ISSUED_ADDRESSES.set(len(self._table))
        BLOOM_FILL.set(len(self._table) / self._capacity)
