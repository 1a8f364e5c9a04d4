"""Webhook signing: the `Chainpay-Signature` header, its verification, and endpoint secrets.

The signature is HMAC-SHA256 over `"<t>.<raw body>"`, so a receiver must verify the exact
bytes it received, before any JSON parsing. Several `v1=` entries may appear in one header
while an endpoint's secret is being rotated; one matching entry is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

SIGNATURE_HEADER = "Chainpay-Signature"
EVENT_ID_HEADER = "Chainpay-Event-Id"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker prefix, not a secret
DEFAULT_TOLERANCE = 300

# A header longer than this is not ours; refuse it before doing any work on it.
_MAX_HEADER_LENGTH = 4096
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` and 32 random bytes, urlsafe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Chainpay-Signature` header value for `body` sent at unix time `timestamp`."""
    if timestamp < 0:
        raise ValueError("timestamp must be a non-negative unix time")
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]] | None:
    """(timestamp, v1 digests) from a header, or None when it is malformed."""
    if len(header) > _MAX_HEADER_LENGTH:
        return None
    timestamp: int | None = None
    digests: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                return None
            timestamp = int(value)
        elif key == "v1":
            if _HEX_DIGEST.fullmatch(value.lower()):
                digests.append(value.lower())
        # Unknown schemes (a future v2) are ignored so old receivers keep working.
    if timestamp is None or not digests:
        return None
    return timestamp, digests


def verify_signature(
    body: bytes,
    header: str,
    secret: str | list[str],
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> bool:
    """True when `header` signs `body` with one of the secrets within `tolerance` seconds.

    Never raises on a malformed header; it simply does not verify.
    """
    if not isinstance(header, str) or not isinstance(body, bytes):
        return False
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, digests = parsed
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    candidates = [secret] if isinstance(secret, str) else list(secret)
    matched = False
    # Every comparison runs, so timing says nothing about which secret or entry matched.
    for candidate in candidates:
        expected = _digest(candidate, body, timestamp)
        for digest in digests:
            matched |= hmac.compare_digest(expected, digest)
    return matched
