"""Every exception chainpay defines descends from ChainpayError: one root, a small tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import api
import indexer
from indexer.domain.errors import ChainpayError


def defined_exceptions() -> list[type[BaseException]]:
    found = []
    for package in (indexer, api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            loaded = importlib.import_module(module.name)
            for _, value in inspect.getmembers(loaded, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == loaded.__name__:
                    found.append(value)
    return found


@pytest.mark.parametrize(
    "error", defined_exceptions(), ids=lambda e: f"{e.__module__}.{e.__name__}"
)
def test_every_chainpay_exception_has_the_one_root(error: type[BaseException]) -> None:
    assert issubclass(error, ChainpayError)


def test_the_tree_is_not_empty() -> None:
    assert len(defined_exceptions()) >= 15
