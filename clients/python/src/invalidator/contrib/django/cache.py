"""A Django cache backend that stores entries where `invalidator serve`
invalidates them: the keys the rules name, with Invalidator's tags and
leases, failing open when Redis cannot be reached.

```python
CACHES = {
    "default": {
        "BACKEND": "invalidator.contrib.django.cache.InvalidatorCache",
        "LOCATION": "redis://127.0.0.1:6379/0",  # or any URL of Cache.from_url
        "TIMEOUT": 300,                          # Django's default
        "OPTIONS": {
            "fail_open": True,      # reads miss when Redis cannot be reached (the default)
            "retry_after_seconds": 1.0,  # how long commands skip a Redis found unreachable
            "lease_seconds": 10.0,  # how long a get_or_set() loader may take
            "wait_seconds": 0.5,    # how long a miss waits for another caller's load
            # A near cache in each process (invalidator.LocalCache's
            # arguments); none by default:
            # "local": {"max_items": 10_000, "max_age": 60, "prefixes": ["turnus_data_"]},
            # Anything else goes to redis-py; these are the defaults, which
            # bound how long a read waits before failing open:
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
        },
    }
}
```

Key layout. With the defaults (`KEY_PREFIX` "" and `VERSION` 1, no
`KEY_FUNCTION`) the Redis key is exactly the key the application gives:
`cache.set("turnus_data_1", v)` writes the Redis key `turnus_data_1`, the
key a rule names, so `serve` needs no setting. Otherwise the key is
Django's `PREFIX:VERSION:KEY`, and `serve` is given that prefix, which it
puts before every key and glob pattern the rules name (tags are not
prefixed: their indexes hold the keys as stored):

```toml
[pipeline]
key_prefix = "site:2:"   # KEY_PREFIX = "site", VERSION = 2
```

or `INVALIDATOR_PIPELINE__KEY_PREFIX=site:2:` in serve's environment. A
prefix "" with a version other than 1 is `:VERSION:` (`:2:`); a prefix
with version 1 is `PREFIX:1:`. A key written with another `version=` than
the configured one is outside what serve invalidates. A `KEY_FUNCTION` is
honoured as Django honours it; serve must then be told what it prepends.
Keys are checked with `validate_key` as Django's backends do (warnings
for keys memcached would refuse), and may not start with `inv:tag:`, where
tag indexes live (`invalidator.InvalidInput`, a `ValueError`).

Values are serialised as Django's own `RedisCache` does
(`django.core.cache.backends.redis.RedisSerializer`, or the `serializer`
option as there): integers as plain integers, so that `incr` is Redis's
`INCRBY`, everything else pickled. Only this backend (or Django's
`RedisCache`) reads them back.

`get_or_set(key, callable)` is lease-protected: on a miss it takes a lease
on the key (`invalidator.Cache.get_or_fill`), runs the callable, and
stores its value only if no invalidation of the key, of a pattern over it
or of one of its tags came in between, so a value read from the database
before a commit is never stored after that commit's invalidation. Code
written for Django's cache (`cache.get_or_set(f"turnus_data_{id}",
load)`) becomes race-free unchanged. A non-callable default is stored
only if the key is absent, as Django's `add` would. A plain `get` then
`set` is not protected: prefer `get_or_set`.

Tags: `set`, `add`, `touch` and `get_or_set` take an extra `tags=[...]`
keyword, to write entries under Invalidator's tags (`inv:tag:TAG`), which
`serve` invalidates. This backend never invalidates a tag itself:
invalidation is `serve`'s work, from the database's commits. A tagged
entry must be touched with its tags (see `invalidator.Cache.touch`), and
`set_many` writes untagged entries. Tags are a list: one string
(`tags="inventory"`) is refused with `invalidator.InvalidInput`, whatever
the timeout, since it would tag the entry with each of its characters.

A key under a lease (a `get_or_set` loading it) reads as a miss (`get`,
`get_many`, `has_key`, `incr`, `touch`), but is not absent for `add`,
which returns False: the loader's value is on its way and wins, as it
would have had it been stored first. `delete` removes the lease too (its
loader's value is then not stored): a delete is an invalidation.

Timeouts follow Django: the configured `TIMEOUT` (300 s unless set) when
none is given, `None` never expires, `0` or less stores nothing (and
deletes the key). Anything else that is not a number (text, a bool, NaN)
is refused with `invalidator.InvalidInput`.

Failing open (`fail_open`, default true): when Redis cannot be reached,
`get`, `get_many` and `has_key` answer a miss and `get_or_set` returns its
default (the callable's value) without storing it; writes (`set`, `add`,
`touch`, `incr`, `delete`, the `_many`s, `clear`) raise redis-py's
`ConnectionError`, `TimeoutError` or `ClusterDownError`. One warning is
logged per outage (logger `invalidator.cache`) and `health` counts the
reads served so; `stats()` gives the hit figures per key family. With
`fail_open` false, reads raise too.

Failing open is fast: a command that finds Redis unreachable opens a
circuit breaker, and for `retry_after_seconds` (1 by default; 0: never)
commands skip Redis without waiting on it, reads missing at once and
writes raising `invalidator.cache.RedisDown` (a redis-py
`ConnectionError`) naming the Redis and until when it is considered down;
then one command tries it again (see `invalidator.Cache`). `health` counts
them as `skipped_while_down`. A command that does wait is bounded by
redis-py's options, whose defaults here are those of
`invalidator.Cache.from_url`: 1 s socket timeouts and one retry, of a
broken connection only (redis-py's own would wait for ever, and retry up
to 10 times). `clear()` goes to Redis directly, breaker or not.

`clear()` empties the whole Redis database (`FLUSHDB`, on every primary in
a cluster), tag indexes included, as Django's own `RedisCache.clear()`
does: give the cache a database of its own.

The underlying `invalidator.Cache` is made on first use, once per process
for each location and options: redis-py clients are thread-safe, and
Django makes a backend per thread. The async methods run the sync ones in
a thread (`sync_to_async`), so that `aget_or_set` is lease-protected too.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.redis import RedisSerializer
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ...cache import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_RETRY_AFTER,
    DEFAULT_WAIT_SECONDS,
    MAX_TTL_SECONDS,
    Cache,
    checked_tags,
)
from ...errors import InvalidInput, shown
from ...local import LocalCache

__all__ = ["InvalidatorCache", "invalidator_key"]

_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
)

# One `Cache` per process for each location and options (see the module
# documentation); the process id keeps a forked child off its parent's.
_caches: dict[tuple[Any, ...], Cache] = {}
_caches_lock = threading.Lock()


def invalidator_key(key: str, key_prefix: str, version: Any) -> str:
    """This backend's default `KEY_FUNCTION`: `key` itself with Django's
    defaults (prefix "" and version 1), the key a rule names; else
    Django's `PREFIX:VERSION:KEY`, whose `PREFIX:VERSION:` `serve` is
    given as its `[pipeline] key_prefix`."""
    if key_prefix == "" and str(version) == "1":
        return key
    return f"{key_prefix}:{version}:{key}"


class InvalidatorCache(BaseCache):
    """Django's cache API on Invalidator's Redis layout; see the module
    documentation for the settings, the key layout and the semantics."""

    def __init__(self, server: str | list[str] | tuple[str, ...], params: dict[str, Any]) -> None:
        super().__init__(params)
        if isinstance(server, list | tuple):
            if len(server) != 1:
                raise ImproperlyConfigured(
                    f"InvalidatorCache takes one Redis URL as LOCATION, not {list(server)!r} "
                    "(a cluster is one redis+cluster:// URL)"
                )
            server = server[0]
        if not isinstance(server, str) or not server.startswith(_SCHEMES):
            raise ImproperlyConfigured(
                f"InvalidatorCache's LOCATION {server!r} is not a Redis URL: give "
                "redis://HOST:PORT/DB, rediss://..., unix://PATH, redis+cluster://HOST:PORT, "
                "rediss+cluster://..., redis+sentinel://HOST:PORT/MASTER_NAME or "
                "rediss+sentinel://... (see invalidator.Cache.from_url)"
            )
        self._location = server
        options = dict(params.get("OPTIONS") or {})
        # BaseCache's culling options mean nothing to Redis, which evicts by
        # its own policy.
        options.pop("MAX_ENTRIES", None)
        options.pop("CULL_FREQUENCY", None)
        self._fail_open = options.pop("fail_open", True)
        if not isinstance(self._fail_open, bool):
            raise ImproperlyConfigured(
                f"InvalidatorCache's OPTIONS['fail_open'] is {self._fail_open!r}; "
                "give True or False"
            )
        self._retry_after = _non_negative(
            options.pop("retry_after_seconds", DEFAULT_RETRY_AFTER), "retry_after"
        )
        self._lease = _positive(options.pop("lease_seconds", DEFAULT_LEASE_SECONDS), "lease")
        self._wait = _non_negative(options.pop("wait_seconds", DEFAULT_WAIT_SECONDS), "wait")
        serializer = options.pop("serializer", None)
        if isinstance(serializer, str):
            serializer = import_string(serializer)
        if callable(serializer):
            serializer = serializer()
        self._serializer = serializer or RedisSerializer()
        self._local = _local_options(options.pop("local", None))
        self._redis_options = options
        if params.get("KEY_FUNCTION") is None:
            self.key_func = invalidator_key

    @property
    def cache(self) -> Cache:
        """The `invalidator.Cache` underneath, shared by this process's
        backends with the same location and options; made on first use
        (no connection is made until a command needs one)."""
        identity = (
            os.getpid(),
            self._location,
            self._fail_open,
            self._retry_after,
            tuple(sorted((k, repr(v)) for k, v in self._redis_options.items())),
            repr(self._local),
        )
        cache = _caches.get(identity)
        if cache is None:
            with _caches_lock:
                cache = _caches.get(identity)
                if cache is None:
                    cache = Cache.from_url(
                        self._location,
                        fail_open=self._fail_open,
                        retry_after=self._retry_after,
                        local=None if self._local is None else LocalCache(**self._local),
                        **self._redis_options,
                    )
                    _caches[identity] = cache
        return cache

    @property
    def health(self) -> dict[str, int | bool]:
        """The fail-open counters of the shared `Cache` (see
        `invalidator.Cache.health`)."""
        return self.cache.health

    def stats(self) -> dict[str, dict[str, int]]:
        """The hit figures of the shared `Cache`, per key family (see
        `invalidator.Cache.stats`): the keys as stored, so with a
        `KEY_PREFIX` or a `VERSION` other than 1 a key's family is its
        prefix unless a template is registered on `self.cache` with
        `add_family`."""
        return self.cache.stats()

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        """Django's timeout in seconds as this backend keeps it: the
        configured one for `DEFAULT_TIMEOUT`, `None` for never, and 0
        (store nothing) for 0 or less. Anything but a number is refused
        with `InvalidInput` (Django's `RedisCache` would take `"60"` through
        `int()`, and `True` as one second): NaN most of all, which
        `max(0, nan)` would make 0, deleting the key."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, numbers.Real)
            or timeout != timeout  # NaN; math.isnan would overflow on a huge int
        ):
            raise InvalidInput(
                f"timeout {shown(timeout)} is not a number of seconds; "
                "give one, None (never expires) or leave it out (the configured TIMEOUT)"
            )
        try:
            return max(0.0, float(timeout))
        except OverflowError:
            raise InvalidInput(
                f"timeout {shown(timeout)} is more than the {MAX_TTL_SECONDS} s (100 years) an "
                "entry may live; give None for never"
            ) from None

    def _dumps(self, value: Any) -> bytes:
        """`value` as stored: what the serializer gives, an integer as its
        digits (what redis-py sends for an int)."""
        data = self._serializer.dumps(value)
        if isinstance(data, int):
            return str(data).encode()
        if isinstance(data, str):
            return data.encode()
        return bytes(data)

    def _loads(self, data: bytes) -> Any:
        return self._serializer.loads(data)

    def add(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> bool:
        """Stores `value` only if `key` is absent (a key under a lease is
        not); whether it was stored. A timeout of 0 stores nothing and says
        whether it would have, as Django's `RedisCache` does."""
        key = self.make_and_validate_key(key, version=version)
        ttl = self.get_backend_timeout(timeout)
        tags = checked_tags(key, tags)  # even when storing nothing: a mistake all the same
        data = self._dumps(value)
        if ttl == 0:
            added = self.cache.add(key, data)
            if added:
                self.cache.delete(key)
            return added
        return self.cache.add(key, data, ttl, tags)

    def get(self, key: str, default: Any = None, version: Any = None) -> Any:
        """The value at `key`, or `default` (also while a lease holds the
        key, and, failing open, while Redis cannot be reached)."""
        key = self.make_and_validate_key(key, version=version)
        data = self.cache.get(key)
        return default if data is None else self._loads(data)

    def set(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Stores `value` at `key` under `tags`; a timeout of 0 deletes
        the key instead."""
        key = self.make_and_validate_key(key, version=version)
        ttl = self.get_backend_timeout(timeout)
        tags = checked_tags(key, tags)
        data = self._dumps(value)
        if ttl == 0:
            self.cache.delete(key)
            return
        self.cache.set(key, data, ttl, tags)

    def touch(
        self,
        key: str,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> bool:
        """Gives the value at `key` a new timeout (re-indexed under `tags`,
        which a tagged entry needs); whether there was a value. A timeout
        of 0 deletes the key."""
        key = self.make_and_validate_key(key, version=version)
        ttl = self.get_backend_timeout(timeout)
        tags = checked_tags(key, tags)
        if ttl == 0:
            return self.cache.delete(key)
        return self.cache.touch(key, ttl, tags)

    def delete(self, key: str, version: Any = None) -> bool:
        """Removes `key` (and a lease on it); whether it existed."""
        key = self.make_and_validate_key(key, version=version)
        return self.cache.delete(key)

    def get_many(self, keys: Iterable[str], version: Any = None) -> dict[str, Any]:
        """The values of those of `keys` that have one, by the keys given."""
        by_made = {self.make_and_validate_key(key, version=version): key for key in keys}
        found = self.cache.get_many(by_made)
        return {by_made[made]: self._loads(data) for made, data in found.items()}

    def has_key(self, key: str, version: Any = None) -> bool:
        """Whether `key` holds a value (not a lease; false, failing open,
        while Redis cannot be reached)."""
        key = self.make_and_validate_key(key, version=version)
        return self.cache.has_key(key)

    def incr(self, key: str, delta: int = 1, version: Any = None) -> int:
        """Adds `delta` to the integer at `key` (Redis's `INCRBY`, keeping
        its timeout); a missing key raises `ValueError`, as in Django, and
        a value that is not an integer redis-py's `ResponseError`."""
        made = self.make_and_validate_key(key, version=version)
        value = self.cache.incr(made, delta)
        if value is None:
            raise ValueError(f"Key '{made}' not found.")
        return value

    def set_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> list[str]:
        """Stores each of `data` (untagged); the keys that failed: none,
        since a failure raises."""
        if not data:
            return []
        values = {
            self.make_and_validate_key(key, version=version): self._dumps(value)
            for key, value in data.items()
        }
        ttl = self.get_backend_timeout(timeout)
        if ttl == 0:
            self.cache.delete_many(values)
        else:
            self.cache.set_many(values, ttl)
        return []

    def delete_many(self, keys: Iterable[str], version: Any = None) -> None:
        """Removes `keys`."""
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if made:
            self.cache.delete_many(made)

    def clear(self) -> bool:
        """Empties the whole Redis database, as Django's `RedisCache`
        does (`FLUSHDB`; on every primary of a cluster)."""
        return bool(self.cache.client.flushdb())

    def get_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> Any:
        """The value at `key`; on a miss `default` (called, if callable),
        stored under `tags` only if no invalidation of the key came since
        the miss (a lease: see the module documentation). With a timeout
        of 0 nothing is stored; failing open, nothing is stored and the
        default is returned."""
        made = self.make_and_validate_key(key, version=version)
        ttl = self.get_backend_timeout(timeout)
        tags = checked_tags(made, tags)
        if ttl == 0:
            data = self.cache.get(made)
            if data is not None:
                return self._loads(data)
            return default() if callable(default) else default
        loaded: list[tuple[bytes, Any]] = []

        def load() -> bytes:
            value = default() if callable(default) else default
            data = self._dumps(value)
            loaded.append((data, value))
            return data

        data = self.cache.get_or_fill(
            made, load, ttl=ttl, tags=tags, lease=self._lease, wait=self._wait
        )
        if loaded and data is loaded[0][0]:
            return loaded[0][1]  # what the default gave, not a copy
        return self._loads(data)

    # The async API, in a thread: BaseCache's own would build get_or_set
    # from aget and aadd (no lease), incr from aget and aset (not atomic),
    # and could not pass tags.

    async def aadd(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> bool:
        return await _in_thread(self.add)(key, value, timeout, version, tags)

    async def aset(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> None:
        await _in_thread(self.set)(key, value, timeout, version, tags)

    async def atouch(
        self,
        key: str,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> bool:
        return await _in_thread(self.touch)(key, timeout, version, tags)

    async def aget_many(self, keys: Iterable[str], version: Any = None) -> dict[str, Any]:
        return await _in_thread(self.get_many)(list(keys), version)

    async def ahas_key(self, key: str, version: Any = None) -> bool:
        return await _in_thread(self.has_key)(key, version)

    async def aincr(self, key: str, delta: int = 1, version: Any = None) -> int:
        return await _in_thread(self.incr)(key, delta, version)

    async def adecr(self, key: str, delta: int = 1, version: Any = None) -> int:
        return await _in_thread(self.incr)(key, -delta, version)

    async def aset_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> list[str]:
        return await _in_thread(self.set_many)(data, timeout, version)

    async def adelete_many(self, keys: Iterable[str], version: Any = None) -> None:
        await _in_thread(self.delete_many)(list(keys), version)

    async def aget_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        tags: Iterable[str] = (),
    ) -> Any:
        return await _in_thread(self.get_or_set)(key, default, timeout, version, tags)


#: What `OPTIONS["local"]` may hold: `invalidator.LocalCache`'s arguments.
_LOCAL_OPTIONS = ("max_items", "max_age", "prefixes", "heartbeat")


def _local_options(given: Any) -> dict[str, Any] | None:
    """`OPTIONS["local"]`, checked now rather than at the first read: a
    mapping of `LocalCache`'s arguments, or None for no near cache."""
    if given is None:
        return None
    if not isinstance(given, Mapping):
        raise ImproperlyConfigured(
            f"InvalidatorCache's OPTIONS['local'] is {given!r}; give a dict of "
            f"invalidator.LocalCache's arguments ({', '.join(_LOCAL_OPTIONS)}), or None"
        )
    unknown = sorted(set(given) - set(_LOCAL_OPTIONS))
    if unknown:
        raise ImproperlyConfigured(
            f"InvalidatorCache's OPTIONS['local'] has {unknown}, which LocalCache does not take "
            f"(it takes {', '.join(_LOCAL_OPTIONS)})"
        )
    try:
        LocalCache(**given).close()
    except InvalidInput as e:
        raise ImproperlyConfigured(f"InvalidatorCache's OPTIONS['local']: {e}") from e
    return dict(given)


def _in_thread(method: Callable[..., Any]) -> Callable[..., Any]:
    return sync_to_async(method, thread_sensitive=True)


def _positive(value: Any, name: str) -> float:
    # At most `MAX_TTL_SECONDS`, finite: what `Cache.get_or_fill` takes, so
    # that a bad lease is named here, at configuration, not at each call.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TTL_SECONDS
    ):
        raise ImproperlyConfigured(
            f"InvalidatorCache's OPTIONS['{name}_seconds'] is {value!r}; give a positive number "
            f"of seconds, at most {MAX_TTL_SECONDS}"
        )
    return float(value)


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ImproperlyConfigured(
            f"InvalidatorCache's OPTIONS['{name}_seconds'] is {value!r}; give a finite number of "
            "seconds, 0 or more"
        )
    return float(value)
