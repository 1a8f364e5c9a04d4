"""The node client's exceptions, and the classification of node error messages into them.

Every aiohttp, socket and JSON failure is translated into one of these at the client boundary,
so callers decide on retries from the class alone. `kind` is the `RPC_ERRORS` metric label.
"""

from __future__ import annotations

import re


class RpcError(Exception):
    """Base of every failure talking to a node."""

    kind = "rpc"
    transient = False  # True when the same request may succeed if simply retried later


class RpcTimeout(RpcError):
    """The node did not answer within the client's timeout."""

    kind = "timeout"
    transient = True


class RpcConnectionError(RpcError):
    """The node could not be reached, or the connection (or websocket) dropped."""

    kind = "connection"
    transient = True


class RpcHttpError(RpcError):
    """The node (or a proxy in front of it) answered with a non-200 HTTP status."""

    kind = "http"

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(f"HTTP {status}{': ' + message if message else ''}")
        self.status = status
        # 429 and 5xx are load or restarts; other statuses are a misconfiguration.
        self.transient = status == 429 or status >= 500


class RpcResponseError(RpcError):
    """The node answered with a JSON-RPC error object, or with something that is not JSON-RPC."""

    kind = "rpc"

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message


class RangeTooLarge(RpcResponseError):
    """The node refused an `eth_getLogs` range as too wide or too heavy; split and ask again."""

    kind = "range"


class UnknownBlock(RpcResponseError):
    """The node does not (yet) have a block that should exist; often a node behind its peers."""

    kind = "unknown_block"
    transient = True


# Substrings of refusals seen from geth, BSC, Erigon, Nethermind and hosted providers.
_RANGE_PATTERNS = re.compile(
    r"query returned more than \d+ results"
    r"|block range is too (large|wide)"
    r"|exceed(s|ed)? maximum block range"
    r"|log response size exceeded"
    r"|block range too large"
    r"|range limit exceeded"
    r"|too many (blocks|results|logs)",
    re.IGNORECASE,
)
_UNKNOWN_BLOCK_PATTERNS = re.compile(
    r"unknown block|header not found|block not found|blockoutofrangeerror|resource not found",
    re.IGNORECASE,
)
_LIMIT_EXCEEDED = -32005  # EIP-1474 "limit exceeded"; also used by some providers for rate limits


def classify_response_error(code: int | None, message: str) -> RpcResponseError:
    """Turn a JSON-RPC error object into the most specific exception class."""
    text = message or ""
    if _RANGE_PATTERNS.search(text):
        return RangeTooLarge(code, text)
    if _UNKNOWN_BLOCK_PATTERNS.search(text):
        return UnknownBlock(code, text)
    if code == _LIMIT_EXCEEDED:
        if "rate" not in text.lower():
            return RangeTooLarge(code, text)
        rate_limited = RpcResponseError(code, text)
        rate_limited.transient = True
        return rate_limited
    return RpcResponseError(code, text)
