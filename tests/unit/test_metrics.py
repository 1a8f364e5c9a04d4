"""Metric help texts name the label values the code really uses."""

from __future__ import annotations

import pytest

from indexer.chain import errors
from indexer.metrics import RPC_ERRORS


def _client_errors(cls: type[errors.RpcError]) -> list[type[errors.RpcError]]:
    """The node client's own errors: what it counts in RPC_ERRORS (not, e.g., fetch's)."""
    below = [s for sub in cls.__subclasses__() for s in _client_errors(sub)]
    return [cls, *below] if cls.__module__ == errors.__name__ else below


@pytest.mark.parametrize(
    "error", _client_errors(errors.RpcError), ids=lambda cls: f"{cls.__name__}-{cls.kind}"
)
def test_rpc_errors_help_names_every_error_kind(error: type[errors.RpcError]) -> None:
    help_text = RPC_ERRORS.describe()[0].documentation
    assert error.kind in help_text.replace(",", " ").replace("(", " ").replace(")", " ").split()
