"""Object ids: a type prefix and 128 random bits in base62, so ids are unguessable."""

from __future__ import annotations

import os
import threading

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Ids are drawn from os.urandom 4 KiB at a time: one system call per 256 ids instead of one
# per id (each call lets another thread take the GIL, and the event loop creates three ids per
# invoice). The bytes stay as unpredictable; a lock keeps threads from sharing a slice, and a
# forked child starts with a fresh buffer so it never repeats its parent's ids.
_REFILL = 4096
_lock = threading.Lock()
_buffer = b""
_offset = 0


def _reset() -> None:
    global _buffer, _offset
    _buffer, _offset = b"", 0


os.register_at_fork(after_in_child=_reset)


def random_bits_128() -> int:
    global _buffer, _offset
    with _lock:
        if _offset + 16 > len(_buffer):
            _buffer, _offset = os.urandom(_REFILL), 0
        chunk = _buffer[_offset : _offset + 16]
        _offset += 16
    return int.from_bytes(chunk, "big")


def new_id(prefix: str) -> str:
    """A fresh id like `inv_4Zb…` (22 base62 characters carry 128 bits)."""
    number = random_bits_128()
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(chars)}"


def looks_like(prefix: str, value: str) -> bool:
    body = value[len(prefix) + 1 :]
    return value.startswith(prefix + "_") and len(body) == 22 and all(c in _ALPHABET for c in body)
