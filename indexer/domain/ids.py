"""Object ids: a type prefix and 128 random bits in base62, so ids are unguessable."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """A fresh id like `inv_4Zb…` (22 base62 characters carry 128 bits)."""
    number = secrets.randbits(128)
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(chars)}"


def looks_like(prefix: str, value: str) -> bool:
    body = value[len(prefix) + 1 :]
    return value.startswith(prefix + "_") and len(body) == 22 and all(c in _ALPHABET for c in body)
