"""The errors the package raises, each naming the offending input."""

from __future__ import annotations


class InvalidatorError(Exception):
    """Base of every error raised by this package."""


class InvalidInput(InvalidatorError, ValueError):
    """Input refused before anything was sent: a key inside the tag
    indexes' prefix, an empty tag, a bad ttl, something that is not a
    commit."""


class ServerError(InvalidatorError):
    """`invalidator serve` refused a request, with its error code (such as
    `invalid_commit` or `unauthorized`) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
