"""`Cache`: reads and writes the cache as the application does, with tags
laid out exactly as `invalidator serve` invalidates them.

A tag `T` is a sorted set at `inv:tag:T` whose members are the keys that
carry it, scored by when each expires. Writing a tagged key sets the key
first and indexes it second; on a single node one script does both
atomically. In a cluster the key and the indexes live in different slots,
so the steps run apart, in that order: if a value is alive after an
invalidation of its tag, its `SET` came after the invalidation's `UNLINK`,
so its `ZADD` came after the invalidation's `ZREM`, and the value is still
indexed for the next one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from redis.cluster import RedisCluster

from . import _scripts
from .errors import InvalidInput

#: Where tag indexes live: `inv:tag:` then the tag.
TAG_PREFIX = "inv:tag:"
#: The longest a cache entry may live, as the host allows: 100 years.
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600


def index_key(tag: str) -> str:
    """The key of the index of `tag`."""
    return f"{TAG_PREFIX}{tag}"


class Cache:
    """A cache client on one Redis, single node or cluster."""

    def __init__(self, client: redis.Redis | RedisCluster) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._tagged_set = client.register_script(_scripts.TAGGED_SET)
        self._index_add = client.register_script(_scripts.INDEX_ADD)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Cache:
        """A client for `redis://...` or `redis+cluster://...`, the URLs the
        host takes; `options` go to redis-py."""
        if url.startswith("redis+cluster://"):
            return cls(
                RedisCluster.from_url("redis://" + url.removeprefix("redis+cluster://"), **options)
            )
        if url.startswith(("redis://", "rediss://", "unix://")):
            return cls(redis.Redis.from_url(url, **options))
        raise InvalidInput(
            f"`{url}` is not a Redis URL: give redis://HOST:PORT or redis+cluster://HOST:PORT"
        )

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The redis-py client underneath."""
        return self._client

    def set(
        self,
        key: str,
        value: bytes | str,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Stores `value` at `key`, expiring after `ttl` seconds (`None`: never),
        and registers the key under each of `tags`."""
        tags = list(tags)
        ttl_ms = _ttl_ms(key, ttl)
        _check_key(key)
        for tag in tags:
            if not isinstance(tag, str) or not tag:
                raise InvalidInput(f"tag {tag!r} of key `{key}` is empty or not text")
        if not tags:
            self._client.set(key, value, px=ttl_ms or None)
            return
        if not self._cluster:
            self._tagged_set(keys=[key, *map(index_key, tags)], args=[value, ttl_ms])
            return
        # Cluster: set first, index second (see the module documentation).
        self._client.set(key, value, px=ttl_ms or None)
        try:
            for tag in tags:
                self._index_add(keys=[index_key(tag)], args=[key, ttl_ms])
        except Exception:
            # A value no tag can find must not stay.
            self._client.unlink(key)
            raise

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or `None`."""
        value = self._client.get(key)
        return None if value is None else bytes(value)

    def delete(self, key: str) -> bool:
        """Removes `key`; whether it existed."""
        return bool(self._client.unlink(key))


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"key {key!r} is empty or not text")
    if key.startswith(TAG_PREFIX):
        raise InvalidInput(f"key `{key}` is inside `{TAG_PREFIX}`, where tag indexes live")


def _ttl_ms(key: str, ttl: float | None) -> int:
    """`ttl` in milliseconds, 0 for none; never rounds a short ttl down to
    "no expiry"."""
    if ttl is None:
        return 0
    if not ttl > 0:
        raise InvalidInput(
            f"ttl of key `{key}` is {ttl}; give a positive ttl, or None for no expiry"
        )
    if ttl > MAX_TTL_SECONDS:
        raise InvalidInput(
            f"ttl of key `{key}` is {ttl} s, more than the {MAX_TTL_SECONDS} s (100 years) "
            "a cache entry may live; give None for no expiry"
        )
    return max(1, int(ttl * 1000))
