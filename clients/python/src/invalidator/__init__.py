"""Invalidator's application side: a Redis cache client that knows the tag
layout and fails open (`Cache`), and publishers that hand commits to
`invalidator serve` (`Publisher`, and `BackgroundPublisher`, which does so
off the writer's thread)."""

from .background import BackgroundPublisher
from .cache import Cache, RedisDown, index_key
from .commit import check_commit
from .errors import InvalidatorError, InvalidInput, ServerError
from .publisher import Publisher

__all__ = [
    "BackgroundPublisher",
    "Cache",
    "InvalidInput",
    "InvalidatorError",
    "Publisher",
    "RedisDown",
    "ServerError",
    "check_commit",
    "index_key",
]
