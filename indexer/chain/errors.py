"""The node client's exceptions, and the classification of node error messages into them.

Every aiohttp, socket and JSON failure is translated into one of these at the client boundary,
so callers decide on retries from the class alone. `kind` is the `RPC_ERRORS` metric label.
"""

from __future__ import annotations

import re

from indexer.domain.errors import ChainpayError


class RpcError(ChainpayError):
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


class ResponseTooLarge(RpcResponseError):
    """The node capped a response or a batch (geth: -32003 "response too large", "batch too large").

    Not the request's fault as such: ask again for less (a smaller batch, a narrower range).
    """

    kind = "response_too_large"


class UnknownBlock(RpcResponseError):
    """The node does not (yet) have a block that should exist; often a node behind its peers."""

    kind = "unknown_block"
    transient = True


class MissingState(RpcResponseError):
    """The node no longer keeps the state at that block (pruned); true for this block only.

    geth and BSC keep the latest 128 states by default, so balances, calls and traces of older
    blocks fail while newer ones succeed. Retrying the same block never helps; nothing about
    the node's abilities follows from it either.
    """

    kind = "missing_state"


class MissingHistory(RpcResponseError):
    """The node dropped the block bodies or receipts themselves (history expiry); not transient."""

    kind = "missing_history"


class MethodNotFound(RpcResponseError):
    """The node lacks the method (or the tracer), or does not do JSON-RPC batches."""

    kind = "method_not_found"


class TransactionRefused(RpcResponseError):
    """eth_sendRawTransaction refused by the node's transaction pool (subclasses by reason)."""

    kind = "transaction_refused"


class ReplacementUnderpriced(TransactionRefused):
    """A transaction at a pending one's nonce whose fees do not exceed its by the pool's bump."""


class NonceTooLow(TransactionRefused):
    """The nonce is already taken by a mined transaction."""


class TransactionAlreadyKnown(TransactionRefused):
    """This very transaction is already in the pool: sending it again changes nothing."""


# Messages of the clients, by meaning. Each pattern names where it comes from; tests in
# tests/unit/test_rpc_errors.py quote the clients' actual replies.
_MISSING_STATE = re.compile(
    r"historical state [0-9a-fx]* ?is not available"  # geth/BSC path scheme (pathdb)
    r"|required historical state unavailable"  # geth/BSC tracers: "(reexec=128)"
    r"|missing trie node"  # geth/BSC hash scheme
    r"|state histories haven't been fully indexed"  # geth archive still indexing
    r"|old data not available due to pruning"  # Erigon
    r"|state at block #?\d+ is pruned"  # Reth
    r"|no state available for block"  # Nethermind
    r"|state not available",  # generic wording of several providers
    re.IGNORECASE,
)
_MISSING_HISTORY = re.compile(r"pruned history unavailable", re.IGNORECASE)  # geth code 4444
_RESPONSE_TOO_LARGE = re.compile(
    r"response too large"  # geth/BSC -32003 (batch response over 25 MB)
    r"|batch too large"  # geth/BSC -32600 (more than 1,000 items)
    r"|batch limit \d+ exceeded"  # Erigon --rpc.batch.limit
    r"|batch size (is )?too large|too many requests in batch",
    re.IGNORECASE,
)
_METHOD_NOT_FOUND = re.compile(
    r"the method \S+ does not exist/is not available"  # geth, BSC, Erigon
    r"|^method not found"  # Reth (jsonrpsee), Nethermind, anvil
    r"|unknown tracer|tracer not found"
    r"|batch requests are not supported|batch (calls|requests) (are )?not (supported|allowed)",
    re.IGNORECASE,
)
# Substrings of refusals seen from geth, BSC, Erigon, Reth, Nethermind and hosted providers.
_RANGE_PATTERNS = re.compile(
    r"query returned more than \d+ results"
    r"|block range is too (large|wide)"
    r"|exceed(s|ed)? maximum block range"
    r"|query exceeds max (block range|results)"
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
# anvil answers a pruned state (`--prune-history`) and a future block with the same error:
# "BlockOutOfRangeError: block height is 20 but requested was 2". Below the height it is state.
_ANVIL_OUT_OF_RANGE = re.compile(r"block height is (\d+) but requested was (\d+)", re.IGNORECASE)
# eth_sendRawTransaction refusals by the pools of geth/BSC, Erigon, Reth, Nethermind and anvil.
_REPLACEMENT_UNDERPRICED = re.compile(
    r"replacement transaction underpriced"  # geth, BSC, Reth, anvil, Nethermind (newest)
    r"|could not replace existing tx"  # Erigon
    r"|^ReplacementNotAllowed",  # Nethermind (released versions)
    re.IGNORECASE,
)
_NONCE_TOO_LOW = re.compile(
    r"nonce too low"  # geth, BSC, Reth ("nonce too low: next nonce 5, tx nonce 4"), Erigon, anvil
    r"|^OldNonce",  # Nethermind (released versions)
    re.IGNORECASE,
)
_OTHER_REFUSAL = re.compile(
    r"max fee per gas less than block base fee"  # anvil
    r"|fee cap is lower than the base fee"  # Erigon
    r"|insufficient funds"  # geth, BSC, Reth, Erigon, anvil, Nethermind (newest)
    r"|^InsufficientFunds|^FeeTooLow"  # Nethermind (released versions)
    r"|transaction underpriced",  # geth, BSC, Reth: below the pool's minimum tip
    re.IGNORECASE,
)
_ALREADY_KNOWN = re.compile(
    r"already ?known"  # geth, BSC, Reth, Erigon ("ALREADY_EXISTS: already known"), Nethermind
    r"|transaction already imported",  # anvil
    re.IGNORECASE,
)
_METHOD_NOT_FOUND_CODE = -32601
# EIP-1474's "transaction rejected" (anvil, Reth). geth uses the same code for "response too
# large", which its message says: a -32003 without that message is a refused transaction.
_TRANSACTION_REJECTED_CODE = -32003
_LIMIT_EXCEEDED = -32005  # EIP-1474 "limit exceeded"; also used by some providers for rate limits
_TRANSIENT = re.compile(r"request timed out|rate limit|too many requests|busy", re.IGNORECASE)


def classify_response_error(code: int | None, message: str) -> RpcResponseError:
    """Turn a JSON-RPC error object into the exception class of its meaning.

    Messages decide before codes: the same code means different things on different clients
    (-32002 is geth's timeout and Nethermind's "no state"; -32000 is everything on geth).
    """
    text = message or ""
    # Before codes: anvil refuses transactions with -32003, geth's "response too large".
    if _REPLACEMENT_UNDERPRICED.search(text):
        return ReplacementUnderpriced(code, text)
    if _NONCE_TOO_LOW.search(text):
        return NonceTooLow(code, text)
    if _ALREADY_KNOWN.search(text):
        return TransactionAlreadyKnown(code, text)
    if _OTHER_REFUSAL.search(text):
        return TransactionRefused(code, text)
    if _MISSING_STATE.search(text):
        return MissingState(code, text)
    if _MISSING_HISTORY.search(text) or code == 4444:
        return MissingHistory(code, text)
    if _RESPONSE_TOO_LARGE.search(text):
        return ResponseTooLarge(code, text)
    if code == _TRANSACTION_REJECTED_CODE:
        return TransactionRefused(code, text)
    if _RANGE_PATTERNS.search(text):
        return RangeTooLarge(code, text)
    if code == _METHOD_NOT_FOUND_CODE or _METHOD_NOT_FOUND.search(text):
        return MethodNotFound(code, text)
    anvil = _ANVIL_OUT_OF_RANGE.search(text)
    if anvil is not None and int(anvil.group(2)) <= int(anvil.group(1)):
        return MissingState(code, text)
    if _UNKNOWN_BLOCK_PATTERNS.search(text):
        return UnknownBlock(code, text)
    if code == _LIMIT_EXCEEDED and "rate" not in text.lower():
        return RangeTooLarge(code, text)
    error = RpcResponseError(code, text)
    error.transient = bool(_TRANSIENT.search(text))
    return error
