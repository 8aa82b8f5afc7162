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
outage does not flood the log; `health` counts what was served so. Writes
(`set`, `add`, `touch`, `incr`, `set_many`, `delete`, `delete_many`) still
raise: a write that did not happen must not pass for one (a `delete` lost
while Redis is away leaves a value that should have gone once it is back).
`fail_open=False` makes reads raise too. A loader's exception always
propagates.

Failing open must also be fast: a Redis that is gone (a host down, a
stopped process, a firewall dropping packets) answers nothing, and each
command would wait for its timeout. So a command that finds Redis
unreachable opens a circuit breaker for `retry_after` seconds (1 by
default): until then commands skip Redis without a round trip, reads
failing open at once and writes (and, with `fail_open=False`, reads too)
raising `RedisDown`, a `redis.exceptions.ConnectionError` that names the
Redis and until when it is considered down. The first command after the
window tries Redis again while the others keep skipping it (half-open): an
answer closes the breaker, a failure opens it for another window. A
cluster has a breaker per node, so that a dead node's keys fail fast while
the other nodes' keys are still served. `health` counts the commands
skipped.

Hit figures: `stats()` counts, per key family, the reads that hit, missed,
filled, waited on a lease, failed open and were served from the near
cache (see `stats`); `on_read` tells callbacks (a warmer's) of each read;
`refill` fills a key that holds nothing through the same lease as
`get_or_fill`.

A near cache (`local=LocalCache(...)`, see `invalidator.local`) keeps
recently read values in this process, dropped when Redis says their key
changed; `get`, `get_many` and `get_or_fill` serve from it, and every
write through this client drops its key from it.

Input is checked before anything is sent, and refused with `InvalidInput`
(a `ValueError`) naming the argument and the key: keys and tags that are
not text (or not UTF-8: a lone surrogate), values that are not bytes or
text, ttls, leases and waits that are not numbers of seconds in range (a
bool is not a number here), tags given as one string (which would tag the
key with each of its characters), and values that begin with
`LEASE_PREFIX`, which would read as a lease, a miss, for ever. Never
redis-py's `DataError` or a `TypeError` from deep inside.

`from_url` also bounds what one command may cost, unless told otherwise:
redis-py waits for ever by default and retries a failed command up to 10
times, backing off (a read against a stopped Redis took 6.5 s with a 0.2 s
timeout). See `from_url` for the defaults.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from . import _scripts, _urls
from ._stats import FAIL_OPENS, FILLS, HITS, LEASE_WAITS, LOCAL_HITS, MISSES, Figures
from .commit import I64_MAX, I64_MIN
from .errors import InvalidatorError, InvalidInput, shown, utf8
from .local import LocalCache, Mark

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
#: answer that comes this long after the last failure (or command skipped
#: by the circuit breaker): in a cluster with one node down, commands on
#: the other nodes keep succeeding in between, and the log must not flap
#: with them.
OUTAGE_QUIET_SECONDS = 2.0

#: How long, by default, commands skip a Redis (or a cluster node) after
#: one found it unreachable, in seconds: long enough that an outage costs
#: one timeout per second rather than one per request, short enough that
#: a Redis that is back is used again within about a second.
DEFAULT_RETRY_AFTER = 1.0

#: `from_url`'s socket timeouts, unless told otherwise, in seconds: how
#: long to wait to connect, and for an answer. A cache command takes well
#: under a millisecond; one that takes a second is better failed open.
DEFAULT_SOCKET_TIMEOUT = 1.0


class RedisDown(InvalidatorError, redis.exceptions.ConnectionError):
    """A command skipped, nothing sent, because a recent command found its
    Redis (or cluster node) unreachable: see the module documentation.
    A `redis.exceptions.ConnectionError`, so that code catching redis-py's
    errors catches it too.

    `where` names the Redis, `until` is when (`time.time()`) a command
    will try it again, and `cause` the failure that opened the breaker."""

    def __init__(self, where: str, until: float, cause: str) -> None:
        left = max(0.0, until - time.time())
        stamp = time.strftime("%H:%M:%S", time.localtime(until)) + f".{int(until % 1 * 1000):03d}"
        super().__init__(
            f"Redis at {where} is considered down until {stamp} (for {left:.2f} s more) after "
            f"{cause}; nothing was sent (commands skip it for `retry_after` seconds after a "
            "failure, then one tries it again)"
        )
        self.where = where
        self.until = until
        self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (a task queue's result, a process pool) with its own
        # arguments: the default would call `RedisDown(message)`.
        return (type(self), (self.where, self.until, self.cause))


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
#: What a read that failed open answers, inside the reads.
_FAILED: Any = object()
#: What `Cache._read_near` answers when the near cache did not read the
#: key (there is none, or it cannot hold the key now): read it from Redis
#: as without one.
_UNREAD: Any = object()

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

#: For the near cache: each of KEYS's value (nil when missing) and time to
#: live in milliseconds (-1: none; -2: missing), read at one instant, as a
#: flat list. A lease marker is returned as it is (the caller holds none);
#: a key of another type as missing, as `MGET` answers it.
_READ_WITH_TTL = """
local out = {}
for i, key in ipairs(KEYS) do
  -- A key holding another type reads as missing, as MGET has it.
  local v = redis.pcall('GET', key)
  if type(v) == 'table' and v.err then
    v = false
  end
  out[2 * i - 1] = v
  if v then
    out[2 * i] = redis.call('PTTL', key)
  else
    out[2 * i] = -2
  end
end
return out
"""


def index_key(tag: str) -> str:
    """The key of the index of `tag`."""
    return f"{TAG_PREFIX}{tag}"


class Cache:
    """A cache client on one Redis: a single node, a cluster, or the
    primary of a Sentinel deployment (see `from_url`).

    `fail_open` (default true): reads that cannot reach Redis answer a miss
    (and `get_or_fill` its loader's value, not stored) instead of raising;
    see the module documentation. `health` counts them.

    `retry_after` (default `DEFAULT_RETRY_AFTER`, 1 s): how long commands
    skip a Redis (or a cluster node) after one found it unreachable,
    failing open or raising `RedisDown` at once; 0 turns the breaker off,
    every command then waiting for its own timeout. A client given here
    keeps its own timeouts and retries (`from_url` sets bounded ones).

    `local`: a near cache (`invalidator.LocalCache`) in front of Redis, for
    a single node or a Sentinel primary; refused (`InvalidInput`) for a
    cluster. See `invalidator.local` for what it guarantees.

    `family_separators` (default ":_"): the characters that end a key's
    family in `stats()` when no template registered with `add_family`
    matches it (`offers:12` and `turnus_data_3` are `offers` and `turnus`).
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        fail_open: bool = True,
        retry_after: float = DEFAULT_RETRY_AFTER,
        local: LocalCache | None = None,
        family_separators: str = ":_",
    ) -> None:
        cluster = isinstance(client, RedisCluster)
        name = _name_of(client)
        self._setup(cluster, fail_open, retry_after, name, local, family_separators)
        self._attach(client)

    def _setup(
        self,
        cluster: bool,
        fail_open: bool,
        retry_after: float,
        name: str,
        local: LocalCache | None = None,
        family_separators: str = ":_",
    ) -> None:
        if local is not None and not isinstance(local, LocalCache):
            raise InvalidInput(f"local is {shown(local)}; give an invalidator.LocalCache or None")
        if local is not None and cluster:
            raise InvalidInput(
                f"local= given for the cluster `{name}`: the near cache supports a single node or "
                "a Sentinel primary, not a cluster (it would need a tracking connection per "
                "primary, followed across resharding and failovers)"
            )
        self._figures = Figures(family_separators)
        if not isinstance(fail_open, bool):
            raise InvalidInput(f"fail_open is {shown(fail_open)}; give True or False")
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
            raise InvalidInput(f"retry_after {retry_after!r} is not a number of seconds")
        if not 0 <= retry_after < math.inf:
            raise InvalidInput(
                f"retry_after {retry_after!r} is not a finite number of seconds, 0 or more"
            )
        self._client: redis.Redis | RedisCluster | None = None
        self._connect: Callable[[], RedisCluster] | None = None
        self._cluster = cluster
        self._fail_open = fail_open
        self._retry_after = float(retry_after)
        # What the breaker says and what errors name: the URL, credentials
        # left out, of a single node or of the cluster as a whole (its
        # breaker guards connecting to it, before its layout is known).
        self._name = name
        # Held while a cluster client connects: never while a command waits
        # on the breaker's state below.
        self._connect_lock = threading.Lock()
        self._lock = threading.Lock()
        self._down = False
        self._last_failure = 0.0
        self._fail_open_reads = 0
        self._outages = 0
        self._skipped = 0
        # The open breakers: `self._name` for a single node (or a cluster
        # not yet reached), "node HOST:PORT" for a cluster's node; when
        # (`time.monotonic()`) a command may try it again, and why it opened.
        self._open: dict[str, float] = {}
        self._causes: dict[str, str] = {}
        self._local = local

    def _attach(self, client: redis.Redis | RedisCluster) -> None:
        if self._local is not None and isinstance(client, redis.Redis):
            self._local._bind(client.connection_pool, self._name)
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
                ("read_ttl", _READ_WITH_TTL),
            ]
        }
        self._client = client

    def _script(self, name: str) -> Any:
        """The registered script `name`, on the client (a cluster's made on
        first use)."""
        _ = self.client
        return self._scripts[name]

    @classmethod
    def from_url(
        cls,
        url: str,
        fail_open: bool = True,
        retry_after: float = DEFAULT_RETRY_AFTER,
        local: LocalCache | None = None,
        family_separators: str = ":_",
        **options: Any,
    ) -> Cache:
        """A client for one of the URLs the host takes; `options` go to
        redis-py (`socket_timeout=0.5`, `ssl_ca_certs="ca.pem"`, say);
        `fail_open`, `retry_after`, `local` (a near cache: not with a
        cluster URL, which is refused with `InvalidInput` naming it) and
        `family_separators` are `Cache`'s.

        - `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]`: one node;
          `rediss://...` the same over TLS;
        - `unix://PATH[?db=DB]`: one node on a Unix socket;
        - `redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]`: a
          cluster, found from any of the nodes named (no database: a
          cluster has only 0); `rediss+cluster://...` the same, every node
          over TLS;
        - `redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`:
          the primary that the sentinels at `HOST:PORT...` name
          `MASTER_NAME`, asked again whenever a connection is made, so that
          the client follows a failover to the new primary. The URL's
          credentials are the primary's; the sentinels' own, if they need
          some, are the query's `sentinel_username` and `sentinel_password`.
          `rediss+sentinel://...` the same, over TLS to the sentinels and to
          the primary, with the same `ssl_*` options for both (the option
          `sentinel_kwargs`, a mapping, overrides what the sentinels get).

        A port left out is 6379, 26379 for a sentinel; an IPv6 address is
        written in brackets (`[::1]:6379`). Credentials, percent-encoded
        where they hold `@`, `/`, `?`, `#` or `%`, are never shown: messages
        name the URL without them, and without its query.
        A URL that is none of these (an unknown scheme, no host, a port
        that is not a number from 1 to 65535, a database that is not a
        number, a Sentinel URL without a master name) is refused with
        `InvalidInput` naming it, and so are `ssl_*` options given with a
        scheme that is not TLS (they would go nowhere).

        TLS (`rediss...`): redis-py's `ssl_*` options apply, among them
        `ssl_ca_certs` (a PEM file of the authorities to trust, instead of
        the system's), `ssl_certfile` and `ssl_keyfile` (this client's
        certificate and key, for a server that requires one,
        `tls-auth-clients yes`), and `ssl_cert_reqs` (`"required"` by
        default; `"none"` turns verification off). A certificate that
        cannot be verified fails like an unreachable Redis: reads fail open
        (the warning logged says why) and writes raise.

        Managed services (Amazon ElastiCache and MemoryDB, Google Cloud
        Memorystore, Azure Cache for Redis, Redis Cloud) take
        `rediss://:PASSWORD@HOST:PORT` (or `rediss://USER:PASSWORD@...`
        with ACL users; `rediss+cluster://...` for a service in cluster
        mode), the AUTH password or token percent-encoded. Most serve
        certificates signed by public authorities, which the system
        trusts; where the service has its own authority and gives you its
        certificate to download (Memorystore's server CA, say), or yours is
        a private one, give it as `ssl_ca_certs="/path/to/ca.pem"`.

        Unless `options` (or the URL's query) say otherwise, one command
        against an unreachable Redis costs about one timeout, not redis-py's
        default of waiting for ever and retrying 10 times:

        - `socket_connect_timeout` and `socket_timeout`:
          `DEFAULT_SOCKET_TIMEOUT`, 1 s each, for the sentinels too;
        - `retry`: on a single node (and a Sentinel's primary), one
          immediate retry of a broken connection
          (`redis.exceptions.ConnectionError`, say reset by a restarting
          Redis mid-command, or by a primary that failed over, the retry
          asking the sentinels again) and none of a timeout, which would
          only wait again (and could run an `incr` twice); in a cluster,
          one retry after redis-py has refreshed the cluster's layout (so
          that a command follows a failover), a timeout included: at most
          about twice the timeout.

        Connects on first use, never here, so that an application can start
        while Redis is away and serve, failing open, until it is back: a
        cluster's nodes are first asked for its layout by the first command,
        and the sentinels for the primary by the first command too.
        """
        if not isinstance(url, str):
            raise InvalidInput(f"the Redis URL is {shown(url)}; give text, redis://HOST:PORT")
        parsed = _urls.parse(url)
        options = _tls_options(parsed, options)
        if parsed.kind == "cluster":
            cache = cls.__new__(cls)
            cache._setup(True, fail_open, retry_after, parsed.name, local, family_separators)
            return cls._cluster_from(cache, parsed, options)
        cache = cls.__new__(cls)
        cache._setup(False, fail_open, retry_after, parsed.name, local, family_separators)
        if parsed.kind == "sentinel":
            client = _sentinel_client(parsed, {**_defaults(cluster=False), **options})
        else:
            client = redis.Redis.from_url(url, **{**_defaults(cluster=False), **options})
        # Named as the client says (`redis://HOST:PORT/DB`), as `Cache(client)` does.
        cache._name = parsed.name if parsed.kind == "sentinel" else _name_of(client)
        cache._attach(client)
        return cache

    @staticmethod
    def _cluster_from(cache: Cache, parsed: _urls.RedisUrl, options: dict[str, Any]) -> Cache:
        """`from_url` for a cluster: its client is made on first use."""
        options = {**_defaults(cluster=True), **options}
        name = parsed.name

        def connect() -> RedisCluster:
            # The first node is the URL's (with its credentials and query),
            # the others are given as nodes; a fresh list each time, since
            # redis-py adds the URL's node to it.
            others = [ClusterNode(host, port) for host, port in parsed.nodes[1:]]
            try:
                return RedisCluster.from_url(parsed.node_url, startup_nodes=others, **options)
            except redis.exceptions.RedisClusterException as e:
                # redis-py's type for "no node answers" is also its type
                # for a misconfiguration: only the first is an outage.
                if is_unreachable(e):
                    raise redis.exceptions.ConnectionError(
                        f"cannot reach the cluster at `{name}`: {e}"
                    ) from e
                raise

        cache._connect = connect
        return cache

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The redis-py client underneath (a cluster's is made on first use,
        and raises `redis.exceptions.ConnectionError` while none of its
        nodes answers). Commands sent through it directly bypass failing
        open and the circuit breaker."""
        if self._client is None:
            with self._connect_lock:
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
    def retry_after(self) -> float:
        """How long commands skip a Redis after one found it unreachable,
        in seconds (0: never)."""
        return self._retry_after

    @property
    def fail_open_reads(self) -> int:
        """How many reads answered a miss (or their loader's value) because
        Redis could not be reached or was skipped as down, since this
        client was made."""
        return self._fail_open_reads

    @property
    def skipped_while_down(self) -> int:
        """How many commands (reads and writes) were not sent because a
        recent command had found their Redis unreachable, since this client
        was made."""
        return self._skipped

    @property
    def outages(self) -> int:
        """How many outages this client has seen (each logged once): one
        begins at a command that cannot reach Redis, and ends at the first
        answer `OUTAGE_QUIET_SECONDS` after the last such command."""
        return self._outages

    @property
    def health(self) -> dict[str, int | bool]:
        """The fail-open counters, for a metrics endpoint:
        `fail_open_reads`, `outages`, `in_outage`, whether an outage has
        begun and not yet ended, and `skipped_while_down`, the commands the
        circuit breaker kept from waiting on a Redis found unreachable.
        (The near cache's own are `local.health`.)"""
        return {
            "fail_open_reads": self._fail_open_reads,
            "outages": self._outages,
            "in_outage": self._down,
            "skipped_while_down": self._skipped,
        }

    @property
    def local(self) -> LocalCache | None:
        """The near cache, if one was given."""
        return self._local

    def stats(self) -> dict[str, dict[str, int]]:
        """The hit figures since this client was made, per key family (see
        `add_family`; at most `invalidator._stats.MAX_FAMILIES`, 1000,
        families, the keys of any further one counted under "other"), each
        a dict of:

        - `hits`: keys read that had a value, from Redis or the near cache
          (`get`, each key of `get_many`, `get_or_fill` without loading);
        - `local_hits`: those of the hits served by the near cache (counted
          in `hits` too);
        - `misses`: keys read that had no value (a lease marker is none),
          including reads that failed open and `get_or_fill`s that loaded;
        - `fills`: values stored by a `get_or_fill` or `refill` under its
          lease (a lease defeated by an invalidation stores nothing, and
          counts none);
        - `lease_waits`: `get_or_fill` misses that found another caller's
          lease and waited on it (counted in `misses` too);
        - `fail_opens`: reads that could not reach Redis (or skipped it as
          down) and answered a miss, or their loader's value unstored
          (counted in `misses` too; at most one per key read).

        `has_key` is not counted. Counting costs a dictionary lookup and a
        lock per key read."""
        return self._figures.snapshot()

    def add_family(self, template: str) -> None:
        """Counts the keys matching `template` (`turnus_data_{id}`,
        `offers:{shop}:{id}`: see `invalidator._templates`) as one family,
        named by the template's text, in `stats()`; templates are tried in
        the order added, before the separators. A template that cannot be
        parsed is refused with `InvalidInput` naming it."""
        self._figures.add_family(template)

    def on_read(self, callback: Callable[[str, bool], None]) -> None:
        """Calls `callback(key, hit)` for each key read by `get`,
        `get_many` and `get_or_fill` (not `has_key`), once the read knows
        whether it hit (before a `get_or_fill` runs its loader), on the
        reading thread. `hit` is what `stats()` counts as one. An exception
        the callback raises is logged (logger `invalidator.cache`), never
        raised into the read. With no callback registered, reads pay
        nothing for it."""
        self._figures.on_read(callback)

    def _unreachable(self, error: BaseException, failing_open: bool) -> None:
        """Counts a command that could not reach Redis (or skipped it), and
        logs the first failure of an outage."""
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
                "Redis unreachable (%s: %s); %s until it answers again%s",
                type(error).__name__,
                error,
                "reads fail open: they miss, and loaders run without storing"
                if self._fail_open
                else "reads and writes raise",
                f"; commands skip it for {self._retry_after:g} s after each failure"
                if self._retry_after
                else "",
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

    # The circuit breaker. Every command is sent through `_on`, naming the
    # breakers it goes through: the Redis's, or in a cluster those of the
    # nodes holding its keys (`_where`). `_read` and `_write` then decide,
    # for the public methods, what a command that could not reach Redis
    # (or was skipped) becomes.

    def _on(self, where: str | Collection[str], call: Callable[[], _T]) -> _T:
        """`call()`, unless a breaker in `where` is open (then `RedisDown`,
        nothing sent). A command that cannot reach Redis opens the breaker
        of the one Redis it was sent to; one sent to several nodes of a
        cluster cannot say which failed, and opens none."""
        names = (where,) if isinstance(where, str) else tuple(where)
        if self._open:  # read without the lock: the common case is one dict test
            self._admit(names)
        try:
            answer = call()
        except Exception as e:
            if is_unreachable(e):
                if len(names) == 1 and not isinstance(e, RedisDown):
                    self._trip(names[0], e)
            elif len(names) == 1 and self._open:
                self._close(names)  # it answered, if only with an error
            raise
        if self._open and any(name in self._open for name in names):
            self._close(names)
        return answer

    def _admit(self, names: tuple[str, ...]) -> None:
        """Raises `RedisDown` if one of `names` is open; a breaker whose
        window has passed lets this command through (half-open) and keeps
        skipping others for another window meanwhile, so that one command,
        not every one, waits on a Redis that may still be down."""
        now = time.monotonic()
        with self._lock:
            blocked = [(n, self._open[n]) for n in names if now < self._open.get(n, now)]
            if not blocked:
                for name in names:
                    if name in self._open:
                        self._open[name] = now + self._retry_after
                return
            self._skipped += 1
            name, until = blocked[0]
            cause = self._causes.get(name, "a failure")
        raise RedisDown(self._describe(name), time.time() + (until - now), cause)

    def _trip(self, name: str, error: BaseException) -> None:
        """Opens the breaker `name` for `retry_after` seconds."""
        if not self._retry_after:
            return
        with self._lock:
            self._open[name] = time.monotonic() + self._retry_after
            self._causes[name] = f"{type(error).__name__}: {error}"

    def _close(self, names: tuple[str, ...]) -> None:
        with self._lock:
            for name in names:
                self._open.pop(name, None)
                self._causes.pop(name, None)

    def _describe(self, name: str) -> str:
        return name if name == self._name else f"{self._name}, {name}"

    def _where(self, key: str) -> str:
        """The breaker `key`'s commands go through: the Redis's; in a
        cluster, the node serving the key's slot (the cluster is connected
        first, through its own breaker)."""
        if not self._cluster:
            return self._name
        client = self._client
        if client is None:
            client = self._on(self._name, lambda: self.client)
        assert isinstance(client, RedisCluster)
        try:
            return f"node {client.get_node_from_key(key).name}"
        except redis.exceptions.SlotNotCoveredError:
            return f"slot {client.keyslot(key)}"

    def _at(self, key: str, call: Callable[[], _T]) -> _T:
        """`call()`, a command on `key` (and keys in its slot), through the
        breaker of the Redis holding it."""
        return self._on(self._where(key), call)

    def _by_node(self, keys: list[str]) -> dict[str, list[str]]:
        """`keys` by the breaker they go through (one group on a single
        node)."""
        groups: dict[str, list[str]] = {}
        for key in keys:
            groups.setdefault(self._where(key), []).append(key)
        return groups

    def _read(self, call: Callable[[], _T], miss: _T) -> _T:
        """`call()`'s answer; if Redis cannot be reached (or is skipped as
        down), `miss` when failing open, else the error."""
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
        """`call()`'s answer; a Redis that cannot be reached (or is skipped
        as down) is counted as an outage, and raises."""
        try:
            answer = call()
        except Exception as e:
            if not is_unreachable(e):
                raise
            self._unreachable(e, failing_open=False)
            _reraise(e)
        self._answered()
        return answer

    def _write_dropping(self, keys: Collection[str], call: Callable[[], _T]) -> _T:
        """`_write(call)`, a write of `keys`, which the near cache drops
        before and after it (whether it succeeded or not): the process then
        reads its own write, and a read in flight meanwhile holds nothing."""
        local = self._local
        if local is None:
            return self._write(call)
        local._invalidate(keys)
        try:
            return self._write(call)
        finally:
            local._invalidate(keys)

    def set(
        self,
        key: str,
        value: bytes | str,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Stores `value` at `key`, expiring after `ttl` seconds (`None`: never),
        and registers the key under each of `tags`. Raises when Redis cannot
        be reached.

        Refused with `InvalidInput`, nothing sent: a key that is not text
        or lies in `TAG_PREFIX`; a value that is not bytes or text, or that
        begins with `LEASE_PREFIX` (it would read as a lease, a miss, for
        ever); text that is not UTF-8 (a lone surrogate); a ttl that is not
        a number of seconds (a bool is not); tags given as one string,
        which would tag the key with each of its characters."""
        _check_key(key)
        value = _value(key, value)
        ttl_ms = _ttl_ms(key, ttl)
        tags = checked_tags(key, tags)

        def write() -> None:
            if not tags:
                self._at(key, lambda: self.client.set(key, value, px=ttl_ms or None))
            elif not self._cluster:
                keys = [key, *map(index_key, tags)]
                self._at(key, lambda: self._script("tagged_set")(keys=keys, args=[value, ttl_ms]))
            else:
                # Cluster: set first, index second (see the module documentation).
                self._at(key, lambda: self.client.set(key, value, px=ttl_ms or None))
                self._index(key, tags, ttl_ms)

        self._write_dropping((key,), write)

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
        Raises when Redis cannot be reached; refuses what `set` refuses."""
        _check_key(key)
        value = _value(key, value)
        ttl_ms = _ttl_ms(key, ttl)
        tags = checked_tags(key, tags)

        def write() -> bool:
            added = self._at(
                key, lambda: bool(self.client.set(key, value, px=ttl_ms or None, nx=True))
            )
            if added and tags:
                # Set first, index second, as in a cluster.
                self._index(key, tags, ttl_ms)
            return added

        return self._write_dropping((key,), write)

    def _index(self, key: str, tags: list[str], ttl_ms: int) -> None:
        """Registers `key`, already set, under each tag, one index at a time
        (the form a cluster needs); if one fails, the key is unlinked (a
        value, or a lease, that no tag can find must not stay)."""

        def add_to(index: str) -> None:
            self._at(index, lambda: self._script("index_add")(keys=[index], args=[key, ttl_ms]))

        try:
            for tag in tags:
                add_to(index_key(tag))
        except Exception:
            self._at(key, lambda: self.client.unlink(key))
            raise

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or `None` (also while a lease holds it, and,
        failing open, while Redis cannot be reached). With a near cache,
        from it when it holds the key."""
        _check_key(key)
        near = self._read_near(key)
        if near is not _UNREAD:
            if near is _FAILED:
                return None
            if near is None:
                self._counted(key, False)
            return near
        value = self._read(lambda: self._at(key, lambda: self.client.get(key)), _FAILED)
        if value is _FAILED:
            self._counted(key, False, FAIL_OPENS)
            return None
        if value is None or bytes(value).startswith(LEASE_PREFIX):
            self._counted(key, False)
            return None
        self._counted(key, True)
        return bytes(value)

    def _read_near(self, key: str) -> Any:
        """The near cache's part of a read of `key`, shared by `get` and
        `get_or_fill` so that both read and count alike: the value it holds
        (a local hit), else the value read from Redis and held (a hit);
        `None` for a miss, left uncounted, since `get` counts it at once and
        `get_or_fill` only once its lease is taken; `_FAILED` when the read
        failed open (counted); `_UNREAD` without a near cache, or when it
        cannot hold the key now (`local._begin`), for the caller to read
        Redis as without one."""
        local = self._local
        if local is None:
            return _UNREAD
        held = local._get(key)
        if held is not None:
            self._counted(key, True, LOCAL_HITS)
            return held
        mark = local._begin(key)
        if mark is None:
            return _UNREAD
        value = self._fetch(key, local, mark)
        if value is _FAILED:
            self._counted(key, False, FAIL_OPENS)
        elif value is not None:
            self._counted(key, True)
        return value

    def _counted(self, key: str, hit: bool, *more: int) -> None:
        """Counts one read of `key` in `stats()`, and tells the `on_read`
        callbacks."""
        figures = self._figures
        figures.count(key, HITS if hit else MISSES, *more)
        if figures.callbacks:
            figures.tell(key, hit)

    def _fetch(self, key: str, local: LocalCache, mark: Mark) -> Any:
        """The value at `key` read from Redis for the near cache, which
        holds it unless an invalidation came while it was read (`mark`:
        `local._begin`'s); `None` for a miss (a lease marker is one),
        `_FAILED` when the read failed open."""
        value: bytes | None = None
        pttl = -2
        try:
            answer = self._read(
                lambda: self._on(self._name, lambda: self._script("read_ttl")(keys=[key])), None
            )
            if answer is None:
                return _FAILED
            if answer[0] is not None and not bytes(answer[0]).startswith(LEASE_PREFIX):
                value, pttl = bytes(answer[0]), int(answer[1])
            return value
        finally:
            local._end(key, mark, value, pttl)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those of `keys` that have one (no lease marker), by
        key. One `MGET` on a single node, one per slot in a cluster. Failing
        open, a Redis that cannot be reached answers none of its keys: in a
        cluster, the other nodes still answer theirs. With a near cache,
        the keys it holds are not asked of Redis."""
        keys = _keys(keys)
        if not keys:
            return {}
        if self._local is not None:
            return self._get_many_near(keys, self._local)
        found: dict[str, bytes] = {}
        failed: list[str] = []

        def mget(group: list[str]) -> None:
            client = self.client
            if isinstance(client, RedisCluster):
                values = client.mget_nonatomic(group)
            else:
                values = client.mget(group)
            for key, value in zip(group, values, strict=True):
                if value is not None and not bytes(value).startswith(LEASE_PREFIX):
                    found[key] = bytes(value)

        def read() -> bool:
            groups = self._by_node(keys)
            if len(groups) > 1 and not any(name in self._open for name in groups):
                try:
                    # All at once (redis-py pipelines a cluster's slots).
                    self._on(groups, lambda: mget(keys))
                    return True
                except Exception as e:
                    if not is_unreachable(e):
                        raise
                    # Which node failed? Each is asked on its own below,
                    # which opens its breaker and serves the others' keys.
            failure: Exception | None = None
            for where, group in groups.items():
                try:
                    self._on(where, lambda group=group: mget(group))
                except Exception as e:
                    if not is_unreachable(e):
                        raise
                    failed.extend(group)
                    failure = e
            if failure is not None:
                raise failure
            return True

        if not self._read(read, False) and not failed:
            failed.extend(keys)  # failed before any node was asked
        failed_set = set(failed)
        for key in dict.fromkeys(keys):
            if key in found:
                self._counted(key, True)
            else:
                self._counted(key, False, *((FAIL_OPENS,) if key in failed_set else ()))
        return {key: found[key] for key in keys if key in found}

    def _get_many_near(self, keys: list[str], local: LocalCache) -> dict[str, bytes]:
        """`get_many` with a near cache (a single node): the keys it holds,
        and the others from Redis in one script, held as `get` holds them."""
        found: dict[str, bytes] = {}
        pending: list[str] = []
        for key in dict.fromkeys(keys):
            value = local._get(key)
            if value is None:
                pending.append(key)
            else:
                found[key] = value
                self._counted(key, True, LOCAL_HITS)
        if pending:
            marks = [local._begin(key) for key in pending]
            answer: list[Any] | None = None
            try:
                answer = self._read(
                    lambda: self._on(self._name, lambda: self._script("read_ttl")(keys=pending)),
                    None,
                )
            finally:
                for i, (key, mark) in enumerate(zip(pending, marks, strict=True)):
                    value: bytes | None = None
                    pttl = -2
                    if answer is not None:
                        raw = answer[2 * i]
                        if raw is not None and not bytes(raw).startswith(LEASE_PREFIX):
                            value, pttl = bytes(raw), int(answer[2 * i + 1])
                            found[key] = value
                    if mark is not None:
                        local._end(key, mark, value, pttl)
            for key in pending:
                if answer is None:
                    self._counted(key, False, FAIL_OPENS)
                else:
                    self._counted(key, key in found)
        return {key: found[key] for key in keys if key in found}

    def has_key(self, key: str) -> bool:
        """Whether `key` holds a value (a lease marker is none); false,
        failing open, while Redis cannot be reached. Asks Redis, near cache
        or not."""
        _check_key(key)

        def has_value() -> bool:
            return bool(self._script("has_value")(keys=[key], args=[LEASE_PREFIX]))

        return self._read(lambda: self._at(key, has_value), False)

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

        With a near cache, a value it holds is returned at once; else the
        value is first read as `get` reads it (and held), and only a miss
        goes on to take the lease (two round trips for a miss, one for a
        hit). The value a fill stores is not held: the fill's own
        invalidation push would drop it.

        Failing open, when Redis cannot be reached at any step (or is
        skipped as down), the loader's value is returned and not stored;
        the loader runs once whatever happens. Its exceptions propagate,
        Redis or not: a lease it held is given back if Redis answers, and
        otherwise expires by itself.

        The arguments are refused as `set` refuses them, and `lease` unless
        it is a positive, finite number of seconds (at most
        `MAX_TTL_SECONDS`), `wait` unless a finite one, 0 or more. A value
        the loader returns that `set` would refuse (not bytes or text, or
        beginning with `LEASE_PREFIX`) raises `InvalidInput`, whether or
        not it would have been stored, and its lease is given back: it is
        the loader's mistake, and returning it would hand the caller a
        value that cannot be cached.
        """
        _check_key(key)
        if not callable(loader):
            raise InvalidInput(f"loader of key `{key}` is {shown(loader)}; give a function")
        ttl_ms = _ttl_ms(key, ttl)
        tags = checked_tags(key, tags)
        lease_ms = max(1, int(_seconds(key, "lease", lease, zero=False) * 1000))
        wait = _seconds(key, "wait", wait, zero=True)
        near = self._read_near(key)
        if near is _FAILED:
            return _loaded(key, loader())
        if near is not None and near is not _UNREAD:
            return near
        token = secrets.token_hex(16).encode()
        answer = self._read(lambda: self._take(key, tags, token, lease_ms), None)
        if answer is None:
            self._counted(key, False, FAIL_OPENS)
            return _loaded(key, loader())
        if answer[0] == 0:
            self._counted(key, True)
            return bytes(answer[1])
        if answer[0] == 1:
            self._counted(key, False, LEASE_WAITS)
            return self._wait_for(key, loader, wait)
        self._counted(key, False)
        marker = LEASE_PREFIX + token
        try:
            value = _loaded(key, loader())
        except BaseException:
            self._give_back(key, marker)
            raise
        stored = self._read(lambda: self._fill(key, tags, marker, value, ttl_ms), None)
        if stored is None:
            self._figures.count(key, FAIL_OPENS)
        elif stored:
            self._figures.count(key, FILLS)
        return value

    def refill(
        self,
        key: str,
        loader: Callable[[], bytes | str],
        ttl: float | None = None,
        tags: Iterable[str] = (),
        lease: float = DEFAULT_LEASE_SECONDS,
    ) -> bool:
        """Fills `key` with `loader()`'s value (with `ttl` and `tags`) if it
        holds neither a value nor someone's lease, through the lease
        `get_or_fill` takes: whether the value was stored. False, without
        calling the loader, when the key holds a value or a lease, or when
        Redis cannot be reached (failing open as `get_or_fill` does: with
        `fail_open=False` that raises); false after loading when an invalidation
        defeated the lease meanwhile. Counted as a fill in `stats()` when
        stored, and not as a read. What `get_or_fill` refuses is refused
        alike; the loader's exceptions propagate, its lease given back."""
        _check_key(key)
        if not callable(loader):
            raise InvalidInput(f"loader of key `{key}` is {shown(loader)}; give a function")
        ttl_ms = _ttl_ms(key, ttl)
        tags = checked_tags(key, tags)
        lease_ms = max(1, int(_seconds(key, "lease", lease, zero=False) * 1000))
        token = secrets.token_hex(16).encode()

        answer = self._read(lambda: self._take(key, tags, token, lease_ms), None)
        if answer is None or answer[0] != 2:
            return False
        marker = LEASE_PREFIX + token
        try:
            value = _loaded(key, loader())
        except BaseException:
            self._give_back(key, marker)
            raise
        if not self._read(lambda: self._fill(key, tags, marker, value, ttl_ms), None):
            return False
        self._figures.count(key, FILLS)
        return True

    def _take(self, key: str, tags: list[str], token: bytes, lease_ms: int) -> list[Any]:
        """`lease_take.lua` on `key`: {0, value}, {1} (another's lease) or
        {2} (this caller's, indexed under `tags`)."""
        indexes = [] if self._cluster else [index_key(t) for t in tags]
        answer = self._at(
            key,
            lambda: self._script("lease_take")(
                keys=[key, *indexes], args=[LEASE_PREFIX, token, lease_ms]
            ),
        )
        if answer[0] == 2 and self._cluster:
            # Indexed before loading, so that a tag invalidation from now
            # on finds the lease (lease_take.lua says why that matters).
            self._index(key, tags, lease_ms)
        return answer

    def _fill(self, key: str, tags: list[str], marker: bytes, value: bytes, ttl_ms: int) -> bool:
        """`lease_fill.lua`: stores `value` under the lease `marker`;
        whether it was stored (not when an invalidation defeated it)."""
        indexes = [] if self._cluster else [index_key(t) for t in tags]
        stored = bool(
            self._at(
                key,
                lambda: self._script("lease_fill")(
                    keys=[key, *indexes], args=[marker, value, ttl_ms]
                ),
            )
        )
        if stored and self._cluster:
            # Indexed with the lease's expiry only, the value could
            # outlive its index entry: a failure here unlinks it.
            self._index(key, tags, ttl_ms)
        if self._local is not None:
            self._local._invalidate((key,))
        return stored

    def _give_back(self, key: str, marker: bytes) -> None:
        """Releases a lease whose loader failed; if Redis cannot be reached
        (or is skipped as down) the lease expires by itself, and the
        loader's error is what the caller sees."""
        try:
            self._at(key, lambda: self._script("lease_release")(keys=[key], args=[marker]))
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
            value = self._read(lambda: self._at(key, lambda: self.client.get(key)), gone)
            if value is gone:
                self._figures.count(key, FAIL_OPENS)
                break
            if value is None:
                # The lease was defeated, given back or expired: the holder
                # stores nothing.
                break
            if not bytes(value).startswith(LEASE_PREFIX):
                return bytes(value)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return _loaded(key, loader())

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
        _check_key(key)
        ttl_ms = _ttl_ms(key, ttl)
        tags = checked_tags(key, tags)

        def write() -> bool:
            touched = bool(
                self._at(
                    key, lambda: self._script("touch")(keys=[key], args=[LEASE_PREFIX, ttl_ms])
                )
            )
            if touched and tags:
                self._index(key, tags, ttl_ms)
            return touched

        return self._write_dropping((key,), write)

    def incr(self, key: str, delta: int = 1) -> int | None:
        """Adds `delta` to the integer at `key` atomically, keeping its time
        to live; the new value, or `None` when there is no value (missing,
        or a lease marker). A value that is not an integer raises
        `redis.exceptions.ResponseError`, as `INCRBY` does; an unreachable
        Redis raises `redis.exceptions.ConnectionError` (or
        `TimeoutError`)."""
        _check_key(key)
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise InvalidInput(f"delta of key `{key}` is {shown(delta)}; give an integer")
        if not I64_MIN <= delta <= I64_MAX:
            raise InvalidInput(
                f"delta of key `{key}` is {shown(delta, False)}, outside the 64 signed bits "
                "INCRBY takes"
            )

        value = self._write_dropping(
            (key,),
            lambda: self._at(
                key, lambda: self._script("incr")(keys=[key], args=[LEASE_PREFIX, delta])
            ),
        )
        return None if value is None else int(value)

    def set_many(self, values: Mapping[str, bytes | str], ttl: float | None = None) -> None:
        """Stores each of `values` (untagged), all expiring after `ttl`
        seconds (`None`: never), in one pipeline (a cluster's pipeline
        sends each node its keys). Raises when Redis cannot be reached,
        or when one of the nodes holding the keys is skipped as down.
        Refuses what `set` refuses, before anything is sent."""
        if not isinstance(values, Mapping):
            raise InvalidInput(f"values is {shown(values)}; give a mapping of keys to their values")
        items = []
        for key, value in values.items():
            _check_key(key)
            items.append((key, _value(key, value)))
        ttl_ms = _ttl_ms(items[0][0] if items else None, ttl)
        if not items:
            return

        def send() -> None:
            client = self.client
            pipe = client.pipeline() if isinstance(client, RedisCluster) else client.pipeline(False)
            for key, value in items:
                pipe.set(key, value, px=ttl_ms or None)
            pipe.execute()

        self._write_dropping(
            [key for key, _ in items],
            lambda: self._on(self._by_node([key for key, _ in items]), send),
        )

    def delete(self, key: str) -> bool:
        """Removes `key` (a lease on it too: a delete is an invalidation);
        whether it existed. Raises when Redis cannot be reached."""
        _check_key(key)
        return self._write_dropping(
            (key,), lambda: self._at(key, lambda: bool(self.client.unlink(key)))
        )

    def delete_many(self, keys: Iterable[str]) -> int:
        """Removes `keys` (one `UNLINK` per slot in a cluster); how many
        existed. Raises when Redis cannot be reached, or when one of the
        nodes holding the keys is skipped as down."""
        keys = _keys(keys)
        if not keys:
            return 0
        return self._write_dropping(
            keys, lambda: self._on(self._by_node(keys), lambda: int(self.client.unlink(*keys)))
        )


def _defaults(cluster: bool) -> dict[str, Any]:
    """`from_url`'s redis-py options unless told otherwise (see there)."""
    if cluster:
        retry = Retry(NoBackoff(), 1)
    else:
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))
    return {
        "socket_connect_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "retry": retry,
    }


def _redact(url: str) -> str:
    """`url` without its credentials or query, to name in logs and errors."""
    return _urls.redact(url)


def _tls_options(parsed: _urls.RedisUrl, options: dict[str, Any]) -> dict[str, Any]:
    """`options` less `ssl`, which the scheme says; `InvalidInput` for TLS
    options given with a scheme that is not TLS (redis-py would fail on
    them at the first connection, or ignore them), and for `ssl=False`
    with one that is."""
    options = dict(options)
    ssl = options.pop("ssl", None)
    given = sorted(k for k, v in options.items() if k.startswith("ssl_") and v is not None)
    if not parsed.tls and (ssl or given):
        scheme = parsed.name.partition("://")[0]
        what = ", ".join(given) if given else "ssl=True"
        instead = (
            "a Unix socket has no TLS"
            if parsed.kind == "unix"
            else f"use {scheme.replace('redis', 'rediss', 1)}://... for TLS"
        )
        raise InvalidInput(f"{what} given for `{parsed.name}`, which is not TLS: {instead}")
    if parsed.tls and ssl is not None and not ssl:
        raise InvalidInput(
            f"ssl={ssl!r} given for `{parsed.name}`, a TLS URL: use "
            f"{parsed.name.partition('://')[0].replace('rediss', 'redis', 1)}://... without TLS"
        )
    return options


#: What the sentinels' clients take of the primary's options, unless
#: `sentinel_kwargs` is given: how long to wait, and TLS.
_SENTINEL_SHARED = tuple(
    name
    for name in inspect.signature(redis.Redis.__init__).parameters
    if name.startswith(("socket_", "ssl"))
)


def _sentinel_client(parsed: _urls.RedisUrl, options: dict[str, Any]) -> redis.Redis:
    """A client of the primary that `parsed`'s sentinels name, made without
    connecting: redis-py asks the sentinels for the primary's address at
    each new connection, and drops the connections to a former primary."""
    primary = {**options, **parsed.node_options}
    given = primary.pop("sentinel_kwargs", None)
    if given is not None and not isinstance(given, Mapping):
        raise InvalidInput(
            f"sentinel_kwargs is {shown(given)}; give a mapping of redis-py options for the "
            "sentinels' clients"
        )
    if parsed.tls:
        primary["ssl"] = True
    shared = {k: v for k, v in primary.items() if k in _SENTINEL_SHARED}
    if parsed.sentinel_username is not None:
        shared["username"] = parsed.sentinel_username
    if parsed.sentinel_password is not None:
        shared["password"] = parsed.sentinel_password
    sentinel = Sentinel(list(parsed.nodes), sentinel_kwargs={**shared, **(given or {})})
    assert parsed.master is not None
    return sentinel.master_for(parsed.master, **primary)


def _name_of(client: redis.Redis | RedisCluster) -> str:
    """The Redis `client` talks to, as a URL without credentials."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()
        return f"redis+cluster://{node.name}" if node is not None else "the cluster"
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db") or 0
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}" + (f"?db={db}" if db else "")
    tls = issubclass(pool.connection_class, redis.SSLConnection)
    if isinstance(pool, SentinelConnectionPool):
        sentinels = ",".join(
            _address(s.connection_pool.connection_kwargs) for s in pool.sentinel_manager.sentinels
        )
        scheme = "rediss+sentinel" if tls else "redis+sentinel"
        return f"{scheme}://{sentinels}/{pool.service_name}/{db}"
    return f"{'rediss' if tls else 'redis'}://{_address(kwargs)}/{db}"


def _address(kwargs: Mapping[str, Any]) -> str:
    """`HOST:PORT` of a connection's options (IPv6 in brackets)."""
    host = str(kwargs.get("host", "localhost"))
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{kwargs.get('port', 6379)}"


def _reraise(error: Exception) -> NoReturn:
    """Raises an unreachable Redis as redis-py's own `RedisError`s do: a
    cluster client says it with `RedisClusterException`, which is not one,
    and becomes a `redis.exceptions.ConnectionError`."""
    if isinstance(error, redis.exceptions.RedisClusterException):
        raise redis.exceptions.ConnectionError(str(error)) from error
    raise error


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"key {shown(key)} is empty or not text")
    utf8(key, f"key {key!r}")
    if key.startswith(TAG_PREFIX):
        raise InvalidInput(f"key `{key}` is inside `{TAG_PREFIX}`, where tag indexes live")


def _keys(keys: Any) -> list[str]:
    """`keys` as a list, each checked; one string is refused, since it
    would be taken for its characters (`delete_many("abc")` would delete
    `a`, `b` and `c`)."""
    if isinstance(keys, str | bytes | bytearray | memoryview):
        raise InvalidInput(f"keys is the string {keys!r}; give a list of keys: [{keys!r}]")
    try:
        iterator = iter(keys)
    except TypeError:
        raise InvalidInput(f"keys is {shown(keys)}; give a list of keys") from None
    listed = list(iterator)
    for key in listed:
        _check_key(key)
    return listed


def checked_tags(key: str, tags: Any) -> list[str]:
    """`tags` of `key` as a list, each checked: non-empty UTF-8 text. One
    string is refused: taken for its characters, `tags="inventory"` would
    tag the key with `i`, `n`, `v`, ..., and an invalidation of
    `inventory` would leave it stale."""
    if isinstance(tags, str | bytes | bytearray | memoryview):
        raise InvalidInput(
            f"tags of key `{key}` is the string {tags!r}, which would tag it with each of its "
            f"characters; give a list of tags: [{tags!r}]"
        )
    try:
        iterator = iter(tags)
    except TypeError:
        raise InvalidInput(
            f"tags of key `{key}` is {shown(tags)}; give a list of tags, or () for none"
        ) from None
    listed = list(iterator)
    for tag in listed:
        if not isinstance(tag, str) or not tag:
            raise InvalidInput(f"tag {tag!r} of key `{key}` is empty or not text")
        utf8(tag, f"tag {tag!r} of key `{key}`")
    return listed


def _value(key: str, value: Any, what: str = "value of key `{key}`") -> bytes:
    """`value`, to be stored at `key`, as bytes (text as UTF-8); refuses
    anything else (redis-py would store a number as its digits, and fail
    on None with its own `DataError`), and a value beginning with
    `LEASE_PREFIX`: it would read as a lease, a miss, for ever, and every
    `get_or_fill` of the key would wait on it."""
    what = what.format(key=key)
    if isinstance(value, str):
        data = utf8(value, what)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        raise InvalidInput(f"{what} is {shown(value)}; give bytes or text")
    if data.startswith(LEASE_PREFIX):
        raise InvalidInput(
            f"{what} begins with {LEASE_PREFIX!r}, the prefix of a lease marker: it would "
            "read as a lease, a miss, for ever"
        )
    return data


def _loaded(key: str, value: Any) -> bytes:
    """A loader's value, checked as `set` checks a value (see
    `Cache.get_or_fill`)."""
    return _value(key, value, "the value the loader of key `{key}` returned")


def _is_seconds(value: Any) -> bool:
    """Whether `value` is a number (a bool is not, though Python says it is
    an int: `ttl=True` is a mistake, not one second)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _seconds(key: str, name: str, value: Any, zero: bool) -> float:
    """`get_or_fill`'s `lease` (`zero` false: positive, at most
    `MAX_TTL_SECONDS`) or `wait` (`zero` true: 0 or more), finite."""
    if not _is_seconds(value):
        raise InvalidInput(f"{name} of key `{key}` is {shown(value)}; give a number of seconds")
    if zero and not 0 <= value < math.inf:
        raise InvalidInput(
            f"{name} of key `{key}` is {shown(value, False)}; give a finite number of "
            "seconds, 0 or more"
        )
    if not zero and not 0 < value <= MAX_TTL_SECONDS:
        raise InvalidInput(
            f"{name} of key `{key}` is {shown(value, False)}; give a positive number of "
            f"seconds, at most {MAX_TTL_SECONDS} (100 years)"
        )
    return float(value)


def _ttl_ms(key: str | None, ttl: Any) -> int:
    """`ttl` in milliseconds, 0 for none; never rounds a short ttl down to
    "no expiry". `key` names whose ttl it is (None: `set_many`'s, given no
    keys)."""
    whose = "set_many" if key is None else f"key `{key}`"
    if ttl is None:
        return 0
    if not _is_seconds(ttl):
        raise InvalidInput(
            f"ttl of {whose} is {shown(ttl)}; give a number of seconds or None (no expiry)"
        )
    if not ttl > 0:
        raise InvalidInput(
            f"ttl of {whose} is {shown(ttl, False)}; give a positive ttl, or None for no expiry"
        )
    if ttl > MAX_TTL_SECONDS:
        raise InvalidInput(
            f"ttl of {whose} is {shown(ttl, False)} s, more than the {MAX_TTL_SECONDS} s "
            "(100 years) a cache entry may live; give None for no expiry"
        )
    return max(1, int(ttl * 1000))
