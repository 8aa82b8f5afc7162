"""Invalidator's application side: a Redis cache client that knows the tag
layout (`Cache`), and publishers that hand commits to `invalidator serve`
(`Publisher`)."""

from .cache import Cache, index_key
from .commit import check_commit
from .errors import InvalidatorError, InvalidInput, ServerError
from .publisher import Publisher

__all__ = [
    "Cache",
    "InvalidInput",
    "InvalidatorError",
    "Publisher",
    "ServerError",
    "check_commit",
    "index_key",
]
