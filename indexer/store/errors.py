"""The store's errors, driver-neutral: adapters translate their driver's errors into these.

Callers decide from the class alone: retry later (StorageUnavailable), a rule the data already
breaks (UniqueViolation), or a bug (ConnectionShared). No driver exception crosses the port.
"""

from __future__ import annotations

from indexer.domain.errors import ChainpayError


class StoreError(ChainpayError):
    """The database cannot be used as it is (locked by another process, newer schema, …)."""


class DatabaseLocked(StoreError):
    """Another process (usually a running `chainpay serve`) holds the database file."""


class StorageUnavailable(StoreError):
    """The database cannot commit or answer now (disk full, read-only, frozen, invalidated).

    Nothing of the failed operation was committed, except after a timeout (`timed_out`): the
    caller stopped waiting, and the write may still land. Either way the same request may be
    retried later; the API answers 503.
    """

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class StorageCorrupt(StoreError):
    """The database file cannot be read as a chainpay database (damaged, or not one)."""


class UniqueViolation(StoreError):
    """A write would store a second row where one must be unique (a key, an address)."""


class StorageConflict(StoreError):
    """The transaction conflicted with another one and was rolled back: run it again."""


class ConnectionShared(StoreError):
    """A connection was used by a thread that does not own it, or after it was retired (a bug)."""


class StaleCursor(StoreError):
    """The outbox cursor is not where the fan-out expected it (another fan-out moved it)."""
