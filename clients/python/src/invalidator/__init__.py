"""Invalidator's application side: a Redis cache client that knows the tag
layout and fails open (`Cache`), with an optional near cache in process
memory kept coherent by Redis's invalidation pushes (`LocalCache`), and
publishers that hand commits to `invalidator serve` (`Publisher`, and
`BackgroundPublisher`, which does so off the writer's thread); and
`Warmer`, which fills hot keys again after `serve` invalidated them."""

from .background import BackgroundPublisher
from .cache import Cache, RedisDown, index_key
from .commit import check_commit
from .errors import InvalidatorError, InvalidInput, ServerError
from .local import LocalCache
from .publisher import Publisher
from .warmer import Warmer

__all__ = [
    "BackgroundPublisher",
    "Cache",
    "InvalidInput",
    "InvalidatorError",
    "LocalCache",
    "Publisher",
    "RedisDown",
    "ServerError",
    "Warmer",
    "check_commit",
    "index_key",
]
