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

import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.cluster import RedisCluster

from . import _scripts
from .errors import InvalidInput

#: Where tag indexes live: `inv:tag:` then the tag.
TAG_PREFIX = "inv:tag:"
#: The longest a cache entry may live, as the host allows: 100 years.
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600


#: What a key holds while a caller has a lease on it: this prefix, then the
#: lease's token. Readers take such a value for a miss.
LEASE_PREFIX = b"\x00inv:lease:"
#: How long a lease lives by default, in seconds: the longest a loader may
#: take; a holder that dies frees the key after it.
DEFAULT_LEASE_SECONDS = 10.0
#: How long a miss waits by default for another caller's lease to be
#: filled before loading by itself (without storing).
DEFAULT_WAIT_SECONDS = 0.5


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
        self._lease_take = client.register_script(_scripts.LEASE_TAKE)
        self._lease_fill = client.register_script(_scripts.LEASE_FILL)
        self._lease_release = client.register_script(_scripts.LEASE_RELEASE)

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
        _check_tags(key, tags)
        if not tags:
            self._client.set(key, value, px=ttl_ms or None)
            return
        if not self._cluster:
            self._tagged_set(keys=[key, *map(index_key, tags)], args=[value, ttl_ms])
            return
        # Cluster: set first, index second (see the module documentation).
        self._client.set(key, value, px=ttl_ms or None)
        self._index(key, tags, ttl_ms)

    def _index(self, key: str, tags: list[str], ttl_ms: int) -> None:
        """The cluster form of indexing: registers `key`, already set, under
        each tag, one index at a time; if one fails, the key is unlinked (a
        value, or a lease, that no tag can find must not stay)."""
        try:
            for tag in tags:
                self._index_add(keys=[index_key(tag)], args=[key, ttl_ms])
        except Exception:
            self._client.unlink(key)
            raise

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or `None` (also while a lease holds it)."""
        value = self._client.get(key)
        if value is None or bytes(value).startswith(LEASE_PREFIX):
            return None
        return bytes(value)

    def get_or_fill(
        self,
        key: str,
        loader: Callable[[], bytes | str],
        ttl: float | None = None,
        tags: Iterable[str] = (),
        lease: float = DEFAULT_LEASE_SECONDS,
        wait: float = DEFAULT_WAIT_SECONDS,
    ) -> bytes:
        """The value at `key`; on a miss, `loader()`'s, stored (with `ttl` and
        `tags`) only if no invalidation touched the key since the miss.

        The miss takes a lease on the key. An invalidation of the key, of a
        pattern matching it or of one of its tags defeats the lease, and the
        loaded value, which may predate the commit behind it, is returned
        without being stored. While a caller holds the lease, other misses
        of the key wait up to `wait` seconds for its value, then load by
        themselves without storing. A lease lives `lease` seconds at most.
        """
        tags = list(tags)
        ttl_ms = _ttl_ms(key, ttl)
        _check_key(key)
        _check_tags(key, tags)
        token = secrets.token_hex(16).encode()
        marker = LEASE_PREFIX + token
        lease_ms = max(1, int(lease * 1000))
        indexes = [] if self._cluster else [index_key(t) for t in tags]
        answer = self._lease_take(keys=[key, *indexes], args=[LEASE_PREFIX, token, lease_ms])
        if answer[0] == 0:
            return bytes(answer[1])
        if answer[0] == 1:
            return self._wait_for(key, loader, wait)
        if self._cluster:
            # Indexed before loading, so that a tag invalidation from now on
            # finds the lease (lease_take.lua says why that matters).
            self._index(key, tags, lease_ms)
        try:
            value = _as_bytes(loader())
        except BaseException:
            self._lease_release(keys=[key], args=[marker])
            raise
        stored = self._lease_fill(keys=[key, *indexes], args=[marker, value, ttl_ms])
        if stored and self._cluster:
            # Indexed with the lease's expiry only, the value could outlive
            # its index entry: a failure here unlinks it.
            self._index(key, tags, ttl_ms)
        return value

    def _wait_for(self, key: str, loader: Callable[[], bytes | str], wait: float) -> bytes:
        """Another caller holds the lease: its value if it comes within
        `wait`, else the loader's, not stored."""
        deadline = time.monotonic() + wait
        pause = 0.002
        while time.monotonic() < deadline:
            value = self._client.get(key)
            if value is None:
                break  # defeated, given back or expired: the holder stores nothing
            if not bytes(value).startswith(LEASE_PREFIX):
                return bytes(value)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return _as_bytes(loader())

    def delete(self, key: str) -> bool:
        """Removes `key`; whether it existed."""
        return bool(self._client.unlink(key))


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"key {key!r} is empty or not text")
    if key.startswith(TAG_PREFIX):
        raise InvalidInput(f"key `{key}` is inside `{TAG_PREFIX}`, where tag indexes live")


def _check_tags(key: str, tags: list[str]) -> None:
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise InvalidInput(f"tag {tag!r} of key `{key}` is empty or not text")


def _as_bytes(value: bytes | str) -> bytes:
    """A loader's value as bytes (text as UTF-8)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise InvalidInput(f"the loader returned a {type(value).__name__}; return bytes or text")


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
