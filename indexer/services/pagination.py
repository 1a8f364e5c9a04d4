"""Cursor pagination: `starting_after` must name an object of the caller's own store."""

from __future__ import annotations

from typing import Protocol, TypeVar

from indexer.domain.errors import ValidationError


class _Owned(Protocol):
    @property
    def store_id(self) -> str: ...


Owned = TypeVar("Owned", bound=_Owned)


def own_cursor(found: Owned | None, store_id: str, noun: str) -> Owned:
    """The object `starting_after` named, or a 400 on the field (`noun`: "an invoice", …).

    Another store's object is refused the same way as one that does not exist, so a cursor
    never tells a caller what other stores hold.
    """
    if found is None or found.store_id != store_id:
        raise ValidationError(
            "invalid_cursor", f"starting_after is not {noun} of this store", "starting_after"
        )
    return found
