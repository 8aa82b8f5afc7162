"""`Cache`: reads and writes the cache as the application does, with tags
laid out exactly as `invalidator serve` invalidates them.

A tag `T` is a sorted set at `inv:tag:T` whose members are the keys that
carry it, scored by when each expires. Writing a tagged key sets the key
first and indexes it second; on a single node one script does both
atomically. In a cluster the key and the indexes live in different slots,
so the steps run apart, in that order: if a value is alive after an
invalidation of its tag, its `SET` came after the invalidation's `UNLINK`,
so its `ZADD` came after the invalidation's `ZREM`, and the value is still
indexed for the next one. (`add` and a tagged `touch` take the cluster's
order on a single node too.) Commands on many keys (`get_many`,
`set_many`, `delete_many`) are split per slot in a cluster.

Reads fail open. A cache only saves work, so when Redis cannot be reached
(a connection refused or reset, a timeout, a cluster that is down: see
`UNREACHABLE`), `get`, `get_many` and `has_key` answer a miss and
`get_or_fill` returns its loader's value without storing it: the
application keeps serving from its database instead of failing with its
cache. The first failure of an outage is logged as a warning and the first
answer after it as "Redis reachable again", not every read, so that an
outage does not flood the log; `stats` counts what was served so. Writes
(`set`, `add`, `touch`, `incr`, `set_many`, `delete`, `delete_many`) still
raise: a write that did not happen must not pass for one (a `delete` lost
while Redis is away leaves a value that should have gone once it is back).
`fail_open=False` makes reads raise too. A loader's exception always
propagates. redis-py retries a failed command before raising (redis-py 8:
up to 10 times, backing off up to a second), so bound how long a read may
wait before failing open with the `socket_timeout`,
`socket_connect_timeout` and `retry` options of `from_url`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

import redis
import redis.exceptions
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

#: What redis-py raises when Redis cannot be reached, the errors reads
#: fail open on: a connection that cannot be made or broke (including a
#: node still loading its data set), a timeout, a cluster that is down or
#: has slots no node serves. A cluster client that finds no node to ask for
#: the layout raises `RedisClusterException` caused by one of these, which
#: counts too (`is_unreachable`). A refused command (a wrong type, a script
#: error) is not among them: it says something about the request, and
#: raises.
UNREACHABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.SlotNotCoveredError,
)

#: An outage ends, and "Redis reachable again" is logged, at the first
#: answer that comes this long after the last failure: in a cluster with
#: one node down, commands on the other nodes keep succeeding in between,
#: and the log must not flap with them.
OUTAGE_QUIET_SECONDS = 2.0


def is_unreachable(error: BaseException) -> bool:
    """Whether `error`, raised by redis-py, says that Redis could not be
    reached (see `UNREACHABLE`)."""
    if isinstance(error, UNREACHABLE):
        return True
    return isinstance(error, redis.exceptions.RedisClusterException) and isinstance(
        error.__cause__, UNREACHABLE
    )


_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# The scripts below read or change one key with the lease marker in mind;
# they are the client's own (the host never runs them), so they live here
# and not in lua/, which holds the host's scripts.

#: 1 when KEYS[1] holds a value, 0 when it is missing or holds a lease
#: marker (ARGV[1] is the marker's prefix).
_HAS_VALUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) == ARGV[1] then
  return 0
end
return 1
"""

#: Gives the value at KEYS[1] a new time to live (ARGV[2] milliseconds; 0:
#: none); 0 when there is no value (missing, or a lease marker, whose life
#: is the lease's).
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) == ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
return 1
"""

#: Adds ARGV[2] to the integer at KEYS[1], keeping its time to live; nil
#: when there is no value (missing, or a lease marker). A value that is not
#: an integer is INCRBY's error.
_INCR = """
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  return false
end
return redis.call('INCRBY', KEYS[1], ARGV[2])
"""


def index_key(tag: str) -> str:
    """The key of the index of `tag`."""
    return f"{TAG_PREFIX}{tag}"


class Cache:
    """A cache client on one Redis, single node or cluster.

    `fail_open` (default true): reads that cannot reach Redis answer a miss
    (and `get_or_fill` its loader's value, not stored) instead of raising;
    see the module documentation. `stats` counts them.
    """

    def __init__(self, client: redis.Redis | RedisCluster, fail_open: bool = True) -> None:
        self._setup(isinstance(client, RedisCluster), fail_open)
        self._attach(client)

    def _setup(self, cluster: bool, fail_open: bool) -> None:
        self._client: redis.Redis | RedisCluster | None = None
        self._connect: Callable[[], RedisCluster] | None = None
        self._cluster = cluster
        self._fail_open = fail_open
        self._lock = threading.Lock()
        self._down = False
        self._last_failure = 0.0
        self._fail_open_reads = 0
        self._outages = 0

    def _attach(self, client: redis.Redis | RedisCluster) -> None:
        self._scripts = {
            name: client.register_script(text)
            for name, text in [
                ("tagged_set", _scripts.TAGGED_SET),
                ("index_add", _scripts.INDEX_ADD),
                ("lease_take", _scripts.LEASE_TAKE),
                ("lease_fill", _scripts.LEASE_FILL),
                ("lease_release", _scripts.LEASE_RELEASE),
                ("has_value", _HAS_VALUE),
                ("touch", _TOUCH),
                ("incr", _INCR),
            ]
        }
        self._client = client

    def _script(self, name: str) -> Any:
        """The registered script `name`, on the client (a cluster's made on
        first use)."""
        _ = self.client
        return self._scripts[name]

    @classmethod
    def from_url(cls, url: str, fail_open: bool = True, **options: Any) -> Cache:
        """A client for `redis://...`, `rediss://...`, `unix://...` or
        `redis+cluster://...`, the URLs the host takes; `options` go to
        redis-py (`socket_timeout=0.5`, say).

        Connects on first use, never here, so that an application can start
        while Redis is away and serve, failing open, until it is back: a
        cluster's nodes are first asked for its layout by the first command.
        """
        if url.startswith("redis+cluster://"):
            nodes = "redis://" + url.removeprefix("redis+cluster://")

            def connect() -> RedisCluster:
                try:
                    return RedisCluster.from_url(nodes, **options)
                except redis.exceptions.RedisClusterException as e:
                    # redis-py's type for "no node answers" is also its type
                    # for a misconfiguration: only the first is an outage.
                    if is_unreachable(e):
                        raise redis.exceptions.ConnectionError(
                            f"cannot reach the cluster at `{url}`: {e}"
                        ) from e
                    raise

            cache = cls.__new__(cls)
            cache._setup(True, fail_open)
            cache._connect = connect
            return cache
        if url.startswith(("redis://", "rediss://", "unix://")):
            return cls(redis.Redis.from_url(url, **options), fail_open)
        raise InvalidInput(
            f"`{url}` is not a Redis URL: give redis://HOST:PORT or redis+cluster://HOST:PORT"
        )

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The redis-py client underneath (a cluster's is made on first use,
        and raises `redis.exceptions.ConnectionError` while none of its
        nodes answers)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    assert self._connect is not None
                    self._attach(self._connect())
        assert self._client is not None
        return self._client

    @property
    def fail_open(self) -> bool:
        """Whether reads that cannot reach Redis answer a miss (true) or
        raise."""
        return self._fail_open

    @property
    def fail_open_reads(self) -> int:
        """How many reads answered a miss (or their loader's value) because
        Redis could not be reached, since this client was made."""
        return self._fail_open_reads

    @property
    def outages(self) -> int:
        """How many outages this client has seen (each logged once): one
        begins at a command that cannot reach Redis, and ends at the first
        answer `OUTAGE_QUIET_SECONDS` after the last such command."""
        return self._outages

    @property
    def stats(self) -> dict[str, int | bool]:
        """The fail-open counters, for a metrics endpoint:
        `fail_open_reads`, `outages`, and `in_outage`, whether an outage
        has begun and not yet ended."""
        return {
            "fail_open_reads": self._fail_open_reads,
            "outages": self._outages,
            "in_outage": self._down,
        }

    def _unreachable(self, error: BaseException, failing_open: bool) -> None:
        """Counts a command that could not reach Redis, and logs the first
        failure of an outage."""
        with self._lock:
            self._last_failure = time.monotonic()
            first = not self._down
            self._down = True
            if first:
                self._outages += 1
            if failing_open:
                self._fail_open_reads += 1
        if first:
            _log.warning(
                "Redis unreachable (%s: %s); %s until it answers again",
                type(error).__name__,
                error,
                "reads fail open: they miss, and loaders run without storing"
                if self._fail_open
                else "reads and writes raise",
            )

    def _answered(self) -> None:
        """Redis answered: ends an outage once no command has failed for
        `OUTAGE_QUIET_SECONDS`, logging it once."""
        if not self._down:
            return
        with self._lock:
            if not self._down or time.monotonic() - self._last_failure < OUTAGE_QUIET_SECONDS:
                return
            self._down = False
            served = self._fail_open_reads
        _log.info("Redis reachable again (%d reads failed open so far)", served)

    def _read(self, call: Callable[[], _T], miss: _T) -> _T:
        """`call()`'s answer; if Redis cannot be reached, `miss` when failing
        open, else the error."""
        try:
            answer = call()
        except Exception as e:
            if not is_unreachable(e):
                raise
            self._unreachable(e, self._fail_open)
            if not self._fail_open:
                _reraise(e)
            return miss
        self._answered()
        return answer

    def _write(self, call: Callable[[], _T]) -> _T:
        """`call()`'s answer; a Redis that cannot be reached is counted as an
        outage, and raises."""
        try:
            answer = call()
        except Exception as e:
            if not is_unreachable(e):
                raise
            self._unreachable(e, failing_open=False)
            _reraise(e)
        self._answered()
        return answer

    def set(
        self,
        key: str,
        value: bytes | str,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Stores `value` at `key`, expiring after `ttl` seconds (`None`: never),
        and registers the key under each of `tags`. Raises when Redis cannot
        be reached."""
        tags = list(tags)
        ttl_ms = _ttl_ms(key, ttl)
        _check_key(key)
        _check_tags(key, tags)

        def write() -> None:
            if not tags:
                self.client.set(key, value, px=ttl_ms or None)
            elif not self._cluster:
                self._script("tagged_set")(keys=[key, *map(index_key, tags)], args=[value, ttl_ms])
            else:
                # Cluster: set first, index second (see the module documentation).
                self.client.set(key, value, px=ttl_ms or None)
                self._index(key, tags, ttl_ms)

        self._write(write)

    def add(
        self,
        key: str,
        value: bytes | str,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> bool:
        """Stores `value` at `key` as `set` does, only if the key is absent;
        whether it was stored. A key under a lease is not absent: its holder
        is loading the value, which wins as if it had been stored first.
        Raises when Redis cannot be reached."""
        tags = list(tags)
        ttl_ms = _ttl_ms(key, ttl)
        _check_key(key)
        _check_tags(key, tags)

        def write() -> bool:
            added = bool(self.client.set(key, value, px=ttl_ms or None, nx=True))
            if added and tags:
                # Set first, index second, as in a cluster.
                self._index(key, tags, ttl_ms)
            return added

        return self._write(write)

    def _index(self, key: str, tags: list[str], ttl_ms: int) -> None:
        """Registers `key`, already set, under each tag, one index at a time
        (the form a cluster needs); if one fails, the key is unlinked (a
        value, or a lease, that no tag can find must not stay)."""
        try:
            for tag in tags:
                self._script("index_add")(keys=[index_key(tag)], args=[key, ttl_ms])
        except Exception:
            self.client.unlink(key)
            raise

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or `None` (also while a lease holds it, and,
        failing open, while Redis cannot be reached)."""
        _check_key(key)
        value = self._read(lambda: self.client.get(key), None)
        if value is None or bytes(value).startswith(LEASE_PREFIX):
            return None
        return bytes(value)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those of `keys` that have one (no lease marker), by
        key; empty, failing open, while Redis cannot be reached. One `MGET`
        on a single node, one per slot in a cluster."""
        keys = list(keys)
        for key in keys:
            _check_key(key)
        if not keys:
            return {}

        def read() -> list[Any]:
            client = self.client
            if isinstance(client, RedisCluster):
                return client.mget_nonatomic(keys)
            return client.mget(keys)

        values = self._read(read, [None] * len(keys))
        return {
            key: bytes(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None and not bytes(value).startswith(LEASE_PREFIX)
        }

    def has_key(self, key: str) -> bool:
        """Whether `key` holds a value (a lease marker is none); false,
        failing open, while Redis cannot be reached."""
        _check_key(key)

        def read() -> bool:
            return bool(self._script("has_value")(keys=[key], args=[LEASE_PREFIX]))

        return self._read(read, False)

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

        Failing open, when Redis cannot be reached at any step, the loader's
        value is returned and not stored; the loader runs once whatever
        happens. Its exceptions propagate, Redis or not: a lease it held is
        given back if Redis answers, and otherwise expires by itself.
        """
        tags = list(tags)
        ttl_ms = _ttl_ms(key, ttl)
        _check_key(key)
        _check_tags(key, tags)
        token = secrets.token_hex(16).encode()
        marker = LEASE_PREFIX + token
        lease_ms = max(1, int(lease * 1000))
        indexes = [] if self._cluster else [index_key(t) for t in tags]

        def take() -> list[Any] | None:
            lease_take = self._script("lease_take")
            answer = lease_take(keys=[key, *indexes], args=[LEASE_PREFIX, token, lease_ms])
            if answer[0] == 2 and self._cluster:
                # Indexed before loading, so that a tag invalidation from now
                # on finds the lease (lease_take.lua says why that matters).
                self._index(key, tags, lease_ms)
            return answer

        answer = self._read(take, None)
        if answer is None:
            return _as_bytes(loader())
        if answer[0] == 0:
            return bytes(answer[1])
        if answer[0] == 1:
            return self._wait_for(key, loader, wait)
        try:
            value = _as_bytes(loader())
        except BaseException:
            self._give_back(key, marker)
            raise

        def fill() -> None:
            stored = self._script("lease_fill")(keys=[key, *indexes], args=[marker, value, ttl_ms])
            if stored and self._cluster:
                # Indexed with the lease's expiry only, the value could
                # outlive its index entry: a failure here unlinks it.
                self._index(key, tags, ttl_ms)

        self._read(fill, None)
        return value

    def _give_back(self, key: str, marker: bytes) -> None:
        """Releases a lease whose loader failed; if Redis cannot be reached
        the lease expires by itself, and the loader's error is what the
        caller sees."""
        try:
            self._script("lease_release")(keys=[key], args=[marker])
        except Exception as e:
            if not is_unreachable(e):
                raise
            _log.debug("could not give back the lease on `%s` (%s); it will expire", key, e)

    def _wait_for(self, key: str, loader: Callable[[], bytes | str], wait: float) -> bytes:
        """Another caller holds the lease: its value if it comes within
        `wait`, else the loader's, not stored."""
        deadline = time.monotonic() + wait
        pause = 0.002
        gone = object()
        while time.monotonic() < deadline:
            value = self._read(lambda: self.client.get(key), gone)
            if value is gone or value is None:
                # Unreachable, or the lease was defeated, given back or
                # expired: the holder stores nothing.
                break
            if not bytes(value).startswith(LEASE_PREFIX):
                return bytes(value)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return _as_bytes(loader())

    def touch(self, key: str, ttl: float | None = None, tags: Iterable[str] = ()) -> bool:
        """Gives the value at `key` a new `ttl` (`None`: never expires);
        whether there was a value (a lease marker is none). Raises when
        Redis cannot be reached.

        A tagged value must be touched with its `tags`: each index holds
        the key scored by when it expires and is pruned of members past
        that score, so a value that outlived its score would no longer be
        found by an invalidation of the tag. With `tags`, each index gets
        the new expiry.
        """
        tags = list(tags)
        ttl_ms = _ttl_ms(key, ttl)
        _check_key(key)
        _check_tags(key, tags)

        def write() -> bool:
            touched = bool(self._script("touch")(keys=[key], args=[LEASE_PREFIX, ttl_ms]))
            if touched and tags:
                self._index(key, tags, ttl_ms)
            return touched

        return self._write(write)

    def incr(self, key: str, delta: int = 1) -> int | None:
        """Adds `delta` to the integer at `key` atomically, keeping its time
        to live; the new value, or `None` when there is no value (missing,
        or a lease marker). A value that is not an integer raises
        `redis.exceptions.ResponseError`, as `INCRBY` does; so does an
        unreachable Redis."""
        _check_key(key)
        if not isinstance(delta, int):
            raise InvalidInput(f"delta {delta!r} for key `{key}` is not an integer")
        value = self._write(lambda: self._script("incr")(keys=[key], args=[LEASE_PREFIX, delta]))
        return None if value is None else int(value)

    def set_many(self, values: Mapping[str, bytes | str], ttl: float | None = None) -> None:
        """Stores each of `values` (untagged), all expiring after `ttl`
        seconds (`None`: never), in one pipeline (a cluster's pipeline
        sends each node its keys). Raises when Redis cannot be reached."""
        items = list(values.items())
        if not items:
            return
        for key, _ in items:
            _check_key(key)
        ttl_ms = _ttl_ms(items[0][0], ttl)

        def write() -> None:
            client = self.client
            pipe = client.pipeline() if isinstance(client, RedisCluster) else client.pipeline(False)
            for key, value in items:
                pipe.set(key, value, px=ttl_ms or None)
            pipe.execute()

        self._write(write)

    def delete(self, key: str) -> bool:
        """Removes `key` (a lease on it too: a delete is an invalidation);
        whether it existed. Raises when Redis cannot be reached."""
        _check_key(key)
        return self._write(lambda: bool(self.client.unlink(key)))

    def delete_many(self, keys: Iterable[str]) -> int:
        """Removes `keys` (one `UNLINK` per slot in a cluster); how many
        existed. Raises when Redis cannot be reached."""
        keys = list(keys)
        for key in keys:
            _check_key(key)
        if not keys:
            return 0
        return self._write(lambda: int(self.client.unlink(*keys)))


def _reraise(error: Exception) -> NoReturn:
    """Raises an unreachable Redis as redis-py's own `RedisError`s do: a
    cluster client says it with `RedisClusterException`, which is not one,
    and becomes a `redis.exceptions.ConnectionError`."""
    if isinstance(error, redis.exceptions.RedisClusterException):
        raise redis.exceptions.ConnectionError(str(error)) from error
    raise error


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
