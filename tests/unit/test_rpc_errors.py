"""Classifying node error replies into the client's exception classes."""

from __future__ import annotations

import pytest

from indexer.chain.errors import (
    MethodNotFound,
    MissingHistory,
    MissingState,
    NonceTooLow,
    RangeTooLarge,
    ReplacementUnderpriced,
    ResponseTooLarge,
    RpcConnectionError,
    RpcError,
    RpcHttpError,
    RpcResponseError,
    RpcTimeout,
    TransactionAlreadyKnown,
    TransactionRefused,
    UnknownBlock,
    classify_response_error,
)

CASES = [
    # (id, code, message, class)
    ("geth-10k-results", -32005, "query returned more than 10000 results", RangeTooLarge),
    ("geth-10k-no-code", -32000, "query returned more than 10000 results", RangeTooLarge),
    ("range-too-large", -32000, "block range is too large", RangeTooLarge),
    ("bsc-max-range", -32000, "exceed maximum block range: 5000", RangeTooLarge),
    ("alchemy-size", -32602, "Log response size exceeded. You can make ...", RangeTooLarge),
    ("limit-exceeded-code", -32005, "limit exceeded", RangeTooLarge),
    ("unknown-block", -32000, "unknown block", UnknownBlock),
    ("header-not-found", -32000, "header not found", UnknownBlock),
    (
        "anvil-out-of-range",
        -32602,
        "BlockOutOfRangeError: block height is 3 but requested was 9",
        UnknownBlock,
    ),
    ("anvil-trace-future-block", -32001, "Resource not found", UnknownBlock),
    ("reverted", 3, "execution reverted", RpcResponseError),
    ("method-not-found", -32601, "Method not found", MethodNotFound),
    (
        "rate-limited",
        -32005,
        "daily request count exceeded, request rate limited",
        RpcResponseError,
    ),
    ("no-code", None, "something odd", RpcResponseError),
]


# Each client's actual reply (code, message), quoted from its source, by meaning.
CLIENT_CASES = [
    # geth (and BSC, a geth fork: the same rpc and state packages)
    ("geth-path-state-pruned", -32000,
     "historical state 9e1c4a6f0e2b7d5a3c8f1e0d2b4a6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c is not "
     "available", MissingState),
    ("geth-tracer-reexec", -32000, "required historical state unavailable (reexec=128)",
     MissingState),
    ("geth-hash-scheme-trie", -32000,
     "missing trie node 5ad1f1c3a9e7b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2 "
     "(path ) <nil>", MissingState),
    ("geth-archive-indexing", -32000, "state histories haven't been fully indexed yet",
     MissingState),
    ("geth-history-expired", 4444, "pruned history unavailable", MissingHistory),
    ("geth-batch-response-cap", -32003, "response too large", ResponseTooLarge),
    ("geth-batch-item-cap", -32600, "batch too large", ResponseTooLarge),
    ("geth-debug-api-off", -32601,
     "the method debug_traceBlockByNumber does not exist/is not available", MethodNotFound),
    ("geth-trace-block-absent", -32601, "the method trace_block does not exist/is not available",
     MethodNotFound),
    ("geth-header-not-found", -32000, "header not found", UnknownBlock),
    ("geth-logs-10k", -32005, "query returned more than 10000 results", RangeTooLarge),
    ("bsc-state-pruned", -32000, "required historical state unavailable (reexec=128)",
     MissingState),
    ("bsc-logs-range", -32000, "exceed maximum block range: 5000", RangeTooLarge),
    # Erigon
    ("erigon-pruned", -32000, "old data not available due to pruning", MissingState),
    ("erigon-batch-limit", -32000,
     "batch limit 100 exceeded (can increase by --rpc.batch.limit). Requested batch of size: 150",
     ResponseTooLarge),
    ("erigon-method", -32601, "the method trace_foo does not exist/is not available",
     MethodNotFound),
    # Reth
    ("reth-state-pruned", -32603, "state at block #49871645 is pruned", MissingState),
    ("reth-history-pruned", -32000, "pruned history unavailable", MissingHistory),
    ("reth-logs-range", -32602, "query exceeds max block range 100000", RangeTooLarge),
    ("reth-logs-results", -32602,
     "query exceeds max results 20000, retry with the range 100-150", RangeTooLarge),
    ("reth-method", -32601, "Method not found", MethodNotFound),
    # Nethermind (-32002 is its "resource unavailable"; on geth the same code is a timeout)
    ("nethermind-no-state", -32002,
     "No state available for block 0x3f9e020290502d1d41f4b5519e7d456f0935dea980ec310935206cac8239"
     "117e", MissingState),
    ("nethermind-method", -32601, "Method not found", MethodNotFound),
    # anvil: one message for a pruned state (--prune-history) and for a block not yet mined
    ("anvil-pruned-state", -32602, "BlockOutOfRangeError: block height is 20 but requested was 2",
     MissingState),
    ("anvil-future-block", -32602, "BlockOutOfRangeError: block height is 3 but requested was 9",
     UnknownBlock),
    ("anvil-method", -32601, "Method not found", MethodNotFound),
    # eth_sendRawTransaction refusals by the transaction pools (anvil's code is -32003, which
    # is geth's "response too large": the message decides)
    ("geth-replace", -32000, "replacement transaction underpriced", ReplacementUnderpriced),
    ("geth-nonce", -32000, "nonce too low: next nonce 5, tx nonce 4", NonceTooLow),
    ("geth-known", -32000, "already known", TransactionAlreadyKnown),
    ("geth-funds", -32000,
     "insufficient funds for gas * price + value: balance 10, tx cost 20, overshot 10",
     TransactionRefused),
    ("geth-underpriced", -32000, "transaction underpriced: tip needed 1, tip permitted 0",
     TransactionRefused),
    ("reth-replace", -32000, "replacement transaction underpriced", ReplacementUnderpriced),
    ("reth-nonce", -32000, "nonce too low: next nonce 5, tx nonce 4", NonceTooLow),
    ("reth-known", -32000, "already known", TransactionAlreadyKnown),
    ("reth-funds", -32003, "insufficient funds for gas * price + value: have 10 want 20",
     TransactionRefused),
    ("erigon-replace", -32000, "INTERNAL_ERROR: could not replace existing tx",
     ReplacementUnderpriced),
    ("erigon-nonce", -32000, "INTERNAL_ERROR: nonce too low", NonceTooLow),
    ("erigon-known", -32000, "ALREADY_EXISTS: already known", TransactionAlreadyKnown),
    ("erigon-base-fee", -32000, "fee cap is lower than the base fee", TransactionRefused),
    ("nethermind-replace", -32010, "ReplacementNotAllowed", ReplacementUnderpriced),
    ("nethermind-replace-new", -32010, "replacement transaction underpriced",
     ReplacementUnderpriced),
    ("nethermind-nonce", -32010, "OldNonce, Current nonce: 5, nonce of rejected tx: 4",
     NonceTooLow),
    ("nethermind-known", -32010, "AlreadyKnown", TransactionAlreadyKnown),
    ("nethermind-funds", -32010, "InsufficientFunds, Account balance: 10, cumulative cost: 20",
     TransactionRefused),
    ("anvil-replace", -32003, "replacement transaction underpriced", ReplacementUnderpriced),
    ("anvil-nonce", -32003, "nonce too low", NonceTooLow),
    ("anvil-known", -32003, "transaction already imported", TransactionAlreadyKnown),
    ("anvil-base-fee", -32003, "max fee per gas less than block base fee", TransactionRefused),
    ("anvil-funds", -32003, "Insufficient funds for gas * price + value", TransactionRefused),
    ("anvil-intrinsic-gas", -32003, "intrinsic gas too low", TransactionRefused),
    ("anvil-gas-limit", -32003, "exceeds block gas limit", TransactionRefused),
]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [c[1:] for c in CLIENT_CASES],
    ids=[c[0] for c in CLIENT_CASES],
)
def test_each_clients_real_reply_is_classified_by_meaning(
    code: int, message: str, expected: type
) -> None:
    error = classify_response_error(code, message)
    assert type(error) is expected
    assert (error.code, error.message) == (code, message)


def test_missing_state_is_not_read_as_a_missing_method() -> None:
    # geth's "... is not available" once made the fetcher drop its tracer until restart
    error = classify_response_error(-32000, "historical state 00ff is not available")
    assert not isinstance(error, MethodNotFound)
    assert isinstance(error, MissingState)
    assert not error.transient  # the same block never gets its state back


def test_geth_timeout_is_transient_and_nethermind_no_state_is_not() -> None:
    # the same code, -32002, means two things: the message decides
    assert classify_response_error(-32002, "request timed out").transient
    nethermind = classify_response_error(-32002, "No state available for block 0x01")
    assert isinstance(nethermind, MissingState)
    assert not nethermind.transient


@pytest.mark.parametrize(
    ("code", "message", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_node_error_replies_are_classified(code: int | None, message: str, expected: type) -> None:
    error = classify_response_error(code, message)
    assert type(error) is expected
    assert (error.code, error.message) == (code, message)


@pytest.mark.parametrize(
    ("error", "kind", "transient"),
    [
        (RpcTimeout("slow"), "timeout", True),
        (RpcConnectionError("refused"), "connection", True),
        (RpcHttpError(429), "http", True),
        (RpcHttpError(503), "http", True),
        (RpcHttpError(401), "http", False),
        (RpcResponseError(-32000, "execution reverted"), "rpc", False),
        (MethodNotFound(-32601, "Method not found"), "method_not_found", False),
        (MissingState(-32000, "historical state 00 is not available"), "missing_state", False),
        (MissingHistory(4444, "pruned history unavailable"), "missing_history", False),
        (ResponseTooLarge(-32003, "response too large"), "response_too_large", False),
        (RangeTooLarge(-32005, "too many"), "range", False),
        (UnknownBlock(-32000, "unknown block"), "unknown_block", True),
        (NonceTooLow(-32000, "nonce too low"), "transaction_refused", False),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_error_has_a_metric_kind_and_a_retry_hint(
    error: RpcError, kind: str, transient: bool
) -> None:
    assert isinstance(error, RpcError)
    assert error.kind == kind
    assert error.transient is transient


def test_rate_limit_reply_is_transient_not_a_range_refusal() -> None:
    error = classify_response_error(-32005, "request rate limited")
    assert not isinstance(error, RangeTooLarge)
    assert error.transient


def test_http_error_keeps_its_status() -> None:
    assert RpcHttpError(503).status == 503
    assert "503" in str(RpcHttpError(503))
