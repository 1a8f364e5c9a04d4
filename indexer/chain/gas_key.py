"""The gas key: a private key that only pays for sweeps (`[sweep] gas_key_file`).

It signs `ForwarderFactory.sweep` calls, whose funds can only reach the treasury fixed in each
deposit address, so whoever holds it can spend its own native coin on gas and nothing else.
The file holds one hex private key (64 hex digits, `0x` optional) and must be readable by its
owner only, like an SSH key. The key is kept out of every repr, log line and error message;
only its address is shown.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from indexer.config import ConfigError, Settings

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_KEY = "sweep.gas_key_file"


@dataclass(frozen=True)
class GasKey:
    address: str  # EIP-55
    _secret: bytes = field(repr=False)

    def sign(self, transaction: dict[str, Any]) -> tuple[str, str]:
        """(raw transaction as 0x-hex, its hash) for an EIP-1559 transaction dict."""
        signed = Account.sign_transaction(transaction, self._secret)
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


def load_gas_key(settings: Settings) -> GasKey:
    """The key `[sweep] gas_key_file` names; a ConfigError naming the file when it is missing,
    unreadable, not private to its owner, or not one hex private key."""
    path = settings.sweep.gas_key_file
    if path is None:
        raise ConfigError(settings.source, _KEY, "not set")

    def fail(reason: str) -> ConfigError:
        return ConfigError(settings.source, _KEY, f"{path}: {reason}")

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise fail("not a regular file")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise fail(f"readable or writable by group or others (mode {mode:04o}); chmod 600 it")
    try:
        text = Path(path).read_bytes().decode("ascii")
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise fail("not a hex private key (expected one line of 64 hex digits)") from None
    secret = _parse(text)
    if secret is None:  # never echo the content: it may be a key with a typo
        raise fail("not a hex private key (expected one line of 64 hex digits)")
    return GasKey(str(Account.from_key(secret).address), secret)


def _parse(text: str) -> bytes | None:
    line = text.strip()
    if "\n" in line or "\r" in line:
        return None
    digits = line[2:] if line[:2] in ("0x", "0X") else line
    if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    value = int(digits, 16)
    if not 0 < value < SECP256K1_ORDER:
        return None
    return bytes.fromhex(digits)
