"""The domain's exceptions: each says what was wrong with which input field."""

from __future__ import annotations


class ChainpayError(Exception):
    """Base of every error chainpay raises on purpose."""


class ValidationError(ChainpayError):
    """Input that breaks a rule; `code` is stable, `field` names the input that is wrong."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFoundError(ChainpayError):
    """The object does not exist, or belongs to another store."""

    def __init__(self, message: str = "not found") -> None:
        super().__init__(message)
        self.message = message


class ConflictError(ChainpayError):
    """The request conflicts with an earlier one (an Idempotency-Key reused with another body)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
