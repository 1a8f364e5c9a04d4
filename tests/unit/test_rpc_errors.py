"""Classifying node error replies into the client's exception classes."""

from __future__ import annotations

import pytest

from indexer.chain.errors import (
    RangeTooLarge,
    RpcConnectionError,
    RpcError,
    RpcHttpError,
    RpcResponseError,
    RpcTimeout,
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
    ("method-not-found", -32601, "Method not found", RpcResponseError),
    (
        "rate-limited",
        -32005,
        "daily request count exceeded, request rate limited",
        RpcResponseError,
    ),
    ("no-code", None, "something odd", RpcResponseError),
]


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
        (RpcResponseError(-32601, "Method not found"), "rpc", False),
        (RangeTooLarge(-32005, "too many"), "range", False),
        (UnknownBlock(-32000, "unknown block"), "unknown_block", True),
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
