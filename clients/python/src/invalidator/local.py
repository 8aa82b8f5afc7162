"""`LocalCache`: a near cache, recently read values kept in this process's
memory in front of Redis, and kept coherent with Redis by its
server-assisted client-side caching (`CLIENT TRACKING`).

```python
cache = Cache.from_url("redis://127.0.0.1:6379", local=LocalCache(max_items=10_000, max_age=60))
cache.get("turnus_data_1")   # from Redis, then held here
cache.get("turnus_data_1")   # from this process's memory, no round trip
```

**The guarantee.** An entry is dropped when the invalidation push of its
key arrives from Redis (any change of the key in Redis: `serve`'s `UNLINK`
of the key, its pattern sweeps and tag invalidations, another client's
`SET`, an expiry or eviction; a `FLUSHDB`/`FLUSHALL` drops every entry),
or at `max_age` seconds (sooner if the key's Redis time to live ends
sooner), whichever comes first. Entries are never served across a lost
tracking connection: when it drops (killed, Redis restarted, no answer to
a heartbeat within `heartbeat` seconds, a Sentinel primary that moved),
every entry is dropped and reads go to Redis until tracking is
re-established (a connection that dies without a word, as in a network
partition, is only found by the heartbeat, within about twice
`heartbeat`; a forked child starts empty and tracks on its own). A value
is held only if it was read while tracking was
established and no invalidation of its key (nor a flush, nor a loss of
tracking) arrived while the read was in flight. Lease markers and misses
are never held. Writes through the owning `Cache` (`set`, `delete`, ...)
drop their key's entry at once, so a process reads its own writes.

What "arrives" means: Redis sends the push on the tracking connection
once the change is made (broadcast pushes leave at the end of the event
loop iteration that made it), and it is applied as soon as this process
reads it: by the tracking thread, which waits on the connection, and by
any read about to serve an entry when the connection was last found
empty more than `PUSH_CHECK_SECONDS` (1 ms) ago, so that reading threads
busy enough to keep the tracking thread off the interpreter lock never
serve past a push that is there. Until the push arrives, the old value is
served from here, as it would be by a read from Redis that came just
before the change. `cargo xtask check-stale near` measures the lag.

**Why broadcasting mode, on a connection of our own.** The tracking
connection runs `CLIENT TRACKING ON REDIRECT <its own id> BCAST [PREFIX
...]` and subscribes to `__redis__:invalidate` (RESP2): Redis then sends it
the name of every key changed (under the prefixes, if given), whoever
changed it. The alternatives were considered and refused:

- redis-py's own client-side cache (`protocol=3`, `cache_config`) holds
  whatever it reads, lease markers included, which must never be held,
  and cannot tell a read that raced an invalidation from one that did not;
- the default (remembering) mode tracks only the keys each data connection
  read, so every connection of the pool must redirect its invalidations
  to the tracking connection (`CLIENT TRACKING ON REDIRECT <id>` at each
  connect), and all of them must be redirected again whenever the
  tracking connection is replaced: otherwise a connection still
  redirecting to the dead one reads keys whose invalidations go nowhere.
  Getting that right across reconnects, failovers and a pool shared by
  threads is where the bugs would be.

Broadcasting needs nothing of the data connections: one connection, one
thread, one place where tracking is up or down. Its cost is that every
write to the database (under the prefixes) sends one message to each
process's tracking connection, read or not; Redis batches them per event
loop. The near cache suits data read far more often than written; give
`prefixes` to track and hold only the keys that are worth it (keys outside
them are read from Redis every time).

Cluster: refused. `Cache.from_url("redis+cluster://...", local=...)` (and
`Cache(cluster_client, local=...)`) raises `InvalidInput` naming the URL: a
cluster would need a tracking connection per primary, followed across
resharding and failovers. Single nodes (TCP, TLS, Unix socket) and
Sentinel primaries are supported; with Sentinel, the tracking connection
is made to the primary the sentinels name, and each heartbeat asks them
again: a primary that moved counts as a lost connection.
"""

from __future__ import annotations

import logging
import math
import os
import select
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, TypeAlias

import redis
import redis.exceptions
from redis.sentinel import SentinelConnectionPool

from .errors import InvalidInput, shown, utf8

__all__ = ["LocalCache"]

#: The channel Redis publishes invalidations on, for RESP2 subscribers.
CHANNEL = b"__redis__:invalidate"
#: How many entries a `LocalCache` holds by default.
DEFAULT_MAX_ITEMS = 10_000
#: How long an entry lives by default, in seconds.
DEFAULT_MAX_AGE = 60.0
#: How often the tracking connection is checked by default, in seconds: a
#: PING it must answer within as long again, and, with Sentinel, asking
#: the sentinels whether its Redis is still the primary.
DEFAULT_HEARTBEAT = 1.0
#: How long an entry may be served without looking for pushes on the
#: tracking connection, in seconds: past that, a read about to serve an
#: entry first applies the pushes that have arrived.
PUSH_CHECK_SECONDS = 0.001
#: Connection options of the data connections that the tracking connection
#: must not take: RESP2 is what it speaks, raw bytes what it reads, and
#: redis-py's maintenance notifications need RESP3.
_NOT_FOR_TRACKING = ("maint_notifications_", "oss_cluster_maint_")

_log = logging.getLogger(__name__)

#: What `LocalCache._begin` gives a read and `_end` takes back: the
#: invalidation count when the read began, and when (`time.monotonic()`).
Mark: TypeAlias = tuple[int, float]


class LocalCache:
    """A near cache for one `Cache` (see the module documentation for the
    guarantee and the design).

    `max_items`: the most entries held; the least recently read goes first.
    `max_age`: the longest an entry is held, in seconds (the key's Redis
    time to live, when shorter, bounds it too). `prefixes`: hold (and
    track) only keys beginning with one of these; none (the default): every
    key. `heartbeat`: how often the tracking connection is checked, in
    seconds; a connection that dies without a word (a host gone, a
    partition) is found within about twice that, and entries may be served
    until then.

    Made on its own, then given to `Cache.from_url(url, local=...)` or
    `Cache(client, local=...)`; one `LocalCache` serves one `Cache`. The
    tracking connection is made on the first read, not here; reads go to
    Redis until it is established. `close()` stops it.
    """

    def __init__(
        self,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_age: float = DEFAULT_MAX_AGE,
        prefixes: Iterable[str] = (),
        heartbeat: float = DEFAULT_HEARTBEAT,
    ) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise InvalidInput(f"max_items is {shown(max_items)}; give a whole number, 1 or more")
        if not _positive(max_age):
            raise InvalidInput(
                f"max_age is {shown(max_age)}; give a positive, finite number of seconds"
            )
        if not _positive(heartbeat):
            raise InvalidInput(
                f"heartbeat is {shown(heartbeat)}; give a positive, finite number of seconds"
            )
        self._max_items = max_items
        self._max_age = float(max_age)
        self._heartbeat = float(heartbeat)
        self._prefixes = _prefixes(prefixes)
        self._lock = threading.Lock()
        # Key -> (value, when it must go: `time.monotonic()`), least
        # recently read first.
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        # Whether tracking is established: only then are entries served and
        # stored. Read without the lock on the hit path (a bool).
        self._live = False
        # The invalidation events applied (a key's, a flush, a loss), and
        # the last flush's (a loss is one): a read stores its value only if
        # neither its key's last invalidation nor the last flush came after
        # it began.
        self._seq = 0
        self._flushed_at = 0
        # Key -> [reads of it in flight, seq of its last invalidation since
        # the first of them began]; kept only while reads are in flight.
        self._inflight: dict[str, list[int]] = {}
        self._invalidations = 0
        self._flushes = 0
        self._established = 0
        self._losses = 0
        self._pool: redis.ConnectionPool | None = None
        self._name = ""
        # The tracking connection while established; whoever reads it (the
        # tracking thread, or a reading thread about to serve an entry)
        # holds `_reading` (taken before `_lock`, never after).
        self._conn: Any = None
        self._reading = threading.Lock()
        # When (`time.monotonic()`) the connection was last found with
        # nothing left to read, and when a PING was last answered.
        self._checked_at = 0.0
        self._pong_at = 0.0
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        # A forked child has no tracking thread, and what its parent held
        # would never be invalidated there: it starts empty, untracked.
        os.register_at_fork(after_in_child=_forked(weakref.ref(self)))

    def _after_fork(self) -> None:
        """In a forked child: nothing held, tracking to be established by a
        thread of its own (the parent's did not come across), and fresh
        locks (another thread may have held one at the fork)."""
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self._conn = None
        self._entries = OrderedDict()
        self._inflight = {}
        self._live = False
        self._seq += 1
        self._flushed_at = self._seq
        self._thread = None
        if self._closed.is_set():
            self._closed = threading.Event()
            self._closed.set()
        else:
            self._closed = threading.Event()

    # What the owning `Cache` calls.

    def _bind(self, pool: redis.ConnectionPool, name: str) -> None:
        """Ties this near cache to the Redis of `pool` (a `Cache`'s)."""
        if self._pool is not None:
            raise InvalidInput(
                f"this LocalCache already serves the Cache of {self._name}; give each Cache "
                "a LocalCache of its own"
            )
        self._pool = pool
        self._name = name

    def _start(self) -> None:
        """Starts the tracking thread unless it runs (on the first read)."""
        with self._lock:
            if self._thread is not None or self._closed.is_set() or self._pool is None:
                return
            self._thread = threading.Thread(
                target=_track,
                args=(weakref.ref(self), self._closed),
                name=f"invalidator-near-cache {self._name}",
                daemon=True,
            )
        self._thread.start()

    def _get(self, key: str) -> bytes | None:
        """The value held for `key`, or `None`. Unless the tracking
        connection was found empty within `PUSH_CHECK_SECONDS`, the pushes
        waiting on it are applied first."""
        if not self._live:
            if self._thread is None:
                self._start()
            return None
        now = time.monotonic()
        if now - self._checked_at > PUSH_CHECK_SECONDS and not self._check(now):
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def _check(self, now: float) -> bool:
        """Applies the pushes waiting on the tracking connection (without
        waiting for more); whether tracking is still established. The
        tracking thread, which does the same, may be kept waiting for the
        interpreter lock by busy reading threads: a reading thread about to
        serve an entry does not wait for it."""
        conn = self._conn
        if conn is None:
            return False
        try:
            # redis-py's own non-blocking check (no `select`, which refuses
            # a socket numbered 1024 or more), on the connection still in
            # service only (`_drain` checks, under `_reading`).
            self._drain(conn)
        except Exception as e:
            # The tracking thread finds the same failure, says so, and
            # connects again. Until then nothing is served or held; but a
            # connection already replaced (this one was lost meanwhile)
            # says nothing of the new one.
            _log.debug("near cache of %s: tracking connection failed: %s", self._name, e)
            with self._reading:
                if self._conn is conn:
                    self._flush(live=False)
            return False
        return self._live

    def _drain(self, conn: Any) -> None:
        """Reads and applies what the tracking connection `conn` holds,
        without waiting for more."""
        with self._reading:
            if self._conn is not conn:
                return  # replaced, or lost: nothing of it may be applied
            _connected(conn)
            while conn.can_read(timeout=0):
                if self._apply(conn.read_response()):
                    self._pong_at = time.monotonic()
            self._checked_at = time.monotonic()

    def _begin(self, key: str) -> Mark | None:
        """Before reading `key` from Redis: a mark to give `_end` (the
        invalidations seen so far, and when the read began), or `None` when
        the value must not be held (tracking not established, or the key
        outside the prefixes)."""
        if not self._live or (self._prefixes and not key.startswith(self._prefixes)):
            return None
        with self._lock:
            if not self._live:
                return None
            pending = self._inflight.get(key)
            if pending is None:
                self._inflight[key] = [1, 0]
            else:
                pending[0] += 1
            # Taken before the read is sent: an entry held for the key's
            # time to live must not outlive the key in Redis by the reply's
            # latency.
            return (self._seq, time.monotonic())

    def _end(self, key: str, mark: Mark, value: bytes | None, pttl_ms: int) -> None:
        """After the read `_begin` marked: holds `value` (`None`: a miss,
        not held) unless an invalidation of `key`, a flush or a loss of
        tracking came in between. `pttl_ms`: the key's time to live in
        Redis when read (-1: none; -2: gone)."""
        seq, began = mark
        with self._lock:
            pending = self._inflight[key]
            pending[0] -= 1
            invalidated = pending[1] > seq
            if pending[0] == 0:
                del self._inflight[key]
            if (
                value is None
                or invalidated
                or self._flushed_at > seq
                or not self._live
                or pttl_ms == -2
            ):
                return
            life = self._max_age if pttl_ms < 0 else min(self._max_age, pttl_ms / 1000)
            self._entries[key] = (value, began + life)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_items:
                self._entries.popitem(last=False)

    def _invalidate(self, keys: Iterable[str]) -> None:
        """Drops `keys` (a push arrived, or this process wrote them)."""
        with self._lock:
            self._seq += 1
            self._invalidations += 1
            for key in keys:
                self._entries.pop(key, None)
                pending = self._inflight.get(key)
                if pending is not None:
                    pending[1] = self._seq

    def _flush(self, live: bool | None = None) -> None:
        """Drops every entry; `live` (if given) says whether tracking is
        established from now on."""
        with self._lock:
            self._seq += 1
            self._flushed_at = self._seq
            self._flushes += 1
            self._entries.clear()
            if live is not None:
                self._live = live

    # Public.

    @property
    def max_items(self) -> int:
        return self._max_items

    @property
    def max_age(self) -> float:
        return self._max_age

    @property
    def prefixes(self) -> tuple[str, ...]:
        return self._prefixes

    @property
    def tracking(self) -> bool:
        """Whether tracking is established: entries are held and served."""
        return self._live

    def wait_tracking(self, timeout: float = 5.0) -> bool:
        """Starts tracking if it has not started, and waits up to `timeout`
        seconds until it is established; whether it is."""
        self._start()
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline:
            time.sleep(0.005)
        return self._live

    def peek(self, key: str) -> bytes | None:
        """The value held for `key` (`None`: none, or past its life),
        without touching its recency or any count."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[1] <= now or not self._live:
            return None
        return entry[0]

    def keys(self) -> list[str]:
        """The keys held, least recently read first."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drops every entry (tracking goes on)."""
        self._flush()

    @property
    def health(self) -> dict[str, int | bool]:
        """For a metrics endpoint: `tracking` (established now), `entries`,
        `invalidations` (pushes applied and local writes), `flushes` (a
        flush pushed, a loss of tracking, `clear`), `established` (how many
        times tracking was established) and `losses` (how many times it was
        lost)."""
        return {
            "tracking": self._live,
            "entries": len(self._entries),
            "invalidations": self._invalidations,
            "flushes": self._flushes,
            "established": self._established,
            "losses": self._losses,
        }

    def close(self) -> None:
        """Stops tracking (within a heartbeat) and drops every entry; reads
        then go to Redis."""
        self._closed.set()
        self._flush(live=False)

    # The tracking thread's.

    def _open(self) -> Any:
        """A connection to the Redis the data connections use, tracking in
        broadcasting mode and subscribed to its own invalidations."""
        pool = self._pool
        assert pool is not None
        options = {
            k: v for k, v in pool.connection_kwargs.items() if not k.startswith(_NOT_FOR_TRACKING)
        }
        options.update(
            protocol=2, decode_responses=False, health_check_interval=0, redis_connect_func=None
        )
        # Never wait for ever: a push cut in half by a partition would hold
        # the tracking thread (and `_reading`) in a read, the heartbeat
        # would never fire, and entries would be served across a dead
        # connection. A client made without timeouts (redis-py's default)
        # gets the heartbeat's bound.
        for timeout in ("socket_timeout", "socket_connect_timeout"):
            if options.get(timeout) is None:
                options[timeout] = max(1.0, 2 * self._heartbeat)
        conn = pool.connection_class(**options)
        try:
            conn.connect()
            conn.send_command("CLIENT", "ID")
            ident = _answer(conn)
            args: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", ident, "BCAST"]
            for prefix in self._prefixes:
                args += ["PREFIX", prefix]
            conn.send_command(*args)
            _answer(conn)
            conn.send_command("SUBSCRIBE", CHANNEL)
            _answer(conn)
        except BaseException:
            conn.disconnect()
            raise
        return conn

    def _established_now(self, conn: Any) -> None:
        with self._reading:
            self._conn = conn
            self._checked_at = self._pong_at = time.monotonic()
        with self._lock:
            self._established += 1
        # Flushed (nothing can be held yet) and live in one step: a read
        # that began before is refused by the flush.
        self._flush(live=True)

    def _let_go(self, conn: Any) -> None:
        """Forgets the tracking connection `conn` (lost, or closing) and
        disconnects it."""
        with self._reading:
            if self._conn is conn:
                self._conn = None
            conn.disconnect()

    def _ping(self, conn: Any) -> None:
        with self._reading:
            _connected(conn)
            conn.send_command("PING")

    def _apply(self, message: Any) -> bool:
        """Applies one message read on the tracking connection; whether it
        was the answer to a heartbeat's PING."""
        if not isinstance(message, list) or not message:
            return False
        kind = message[0]
        if kind == b"message" and len(message) == 3 and message[1] == CHANNEL:
            keys = message[2]
            if keys is None:
                self._flush()  # FLUSHDB, FLUSHALL
            else:
                self._invalidate(k.decode("utf-8", "surrogateescape") for k in keys)
            return False
        return kind == b"pong"

    def _primary_moved(self, conn: Any) -> str | None:
        """With Sentinel, why the tracking connection's Redis is no longer
        the primary, if it is not."""
        pool = self._pool
        if not isinstance(pool, SentinelConnectionPool):
            return None
        host, port = pool.get_master_address()
        if (str(host), int(port)) != (str(conn.host), int(conn.port)):
            return f"the sentinels now name {host}:{port} the primary, not {conn.host}:{conn.port}"
        return None


def _forked(ref: weakref.ref[LocalCache]) -> Any:
    """What a child process runs after a fork for the near cache `ref`."""

    def after() -> None:
        local = ref()
        if local is not None:
            local._after_fork()

    return after


def _track(ref: weakref.ref[LocalCache], closed: threading.Event) -> None:
    """The tracking thread: establishes tracking, applies what arrives, and
    when the connection is lost flushes the near cache (bypassed until
    tracking is back) and tries again, at once, then backing off up to 2 s.
    Holds its `LocalCache` only while working on it, so that one dropped by
    its application ends the thread.

    What it logs: each loss, as a warning; the first failed attempt of a
    streak (at the start, or after a loss), as a warning too, but not the
    retries that fail after it, so that no streak goes unsaid and none
    floods the log; and, at INFO, tracking back after a loss or a streak
    that was logged, with the number of attempts that failed."""
    pause = 0.0
    # Attempts that failed since tracking was last established (or since
    # the start); whether the first of them was logged.
    failed = 0
    told = False
    while not closed.wait(pause):
        local = ref()
        if local is None:
            return
        heartbeat = local._heartbeat
        conn = None
        try:
            conn = local._open()
            local._established_now(conn)
            if local._losses or told:
                _log.info(
                    "near cache of %s: tracking %s%s",
                    local._name,
                    "re-established" if local._established > 1 else "established",
                    f" after {failed} failed attempts" if failed else "",
                )
            pause = 0.0
            failed = 0
            told = False
            del local
            _follow(ref, conn, heartbeat, closed)
        except Exception as e:
            local = ref()
            if local is None or closed.is_set():
                break  # closed: the connection's end is no loss
            was_live = local._live
            local._flush(live=False)
            if was_live:
                local._losses += 1
                _log.warning(
                    "near cache of %s: tracking connection lost (%s: %s); the near cache is "
                    "flushed and bypassed until tracking is re-established",
                    local._name,
                    type(e).__name__,
                    e,
                )
            else:
                failed += 1
                if not told:
                    # The first failure of a streak is logged, not each retry.
                    told = True
                    _log.warning(
                        "near cache of %s: cannot %s tracking (%s: %s); retrying, backing off "
                        "up to 2 s, and reads go to Redis meanwhile",
                        local._name,
                        "re-establish" if local._established else "establish",
                        type(e).__name__,
                        e,
                    )
            del local
            pause = min(2.0, max(0.05, pause * 2))
        finally:
            if conn is not None:
                # A `LocalCache` gone has only its connection left to close.
                owner = ref()
                if owner is not None:
                    owner._let_go(conn)
                else:
                    conn.disconnect()
                del owner
    local = ref()
    if local is not None:
        local._flush(live=False)


def _follow(
    ref: weakref.ref[LocalCache], conn: Any, heartbeat: float, closed: threading.Event
) -> None:
    """Applies the tracking connection's messages until it fails (raises),
    `closed` is set or the near cache is dropped. A PING goes out every
    `heartbeat` seconds and must be answered before the next."""
    poller = select.poll()
    poller.register(conn._sock, select.POLLIN | select.POLLPRI)
    tick_ms = int(min(0.25, heartbeat / 4) * 1000)
    next_ping = time.monotonic() + heartbeat
    ping_sent: float | None = None
    while not closed.is_set():
        readable = poller.poll(tick_ms)
        local = ref()
        if local is None:
            return
        if readable:
            local._drain(conn)
        now = time.monotonic()
        if ping_sent is not None and local._pong_at >= ping_sent:
            ping_sent = None
        if ping_sent is not None and now - ping_sent > heartbeat:
            raise redis.exceptions.TimeoutError(f"no answer to a PING within {heartbeat:g} s")
        if now >= next_ping:
            moved = local._primary_moved(conn)
            if moved is not None:
                raise redis.exceptions.ConnectionError(moved)
            if ping_sent is None:
                local._ping(conn)
                ping_sent = now
            next_ping = now + heartbeat
        del local


def _connected(conn: Any) -> None:
    """Raises unless the tracking connection `conn` is still connected:
    redis-py would connect it again on the next read or send, without
    tracking, and the near cache would wait for pushes that never come."""
    if conn._sock is None:
        raise redis.exceptions.ConnectionError("the tracking connection was closed")


def _answer(conn: Any) -> Any:
    """The answer to the command just sent; an error answer raises."""
    answer = conn.read_response()
    if isinstance(answer, redis.exceptions.ResponseError):
        raise answer
    return answer


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value < math.inf


def _prefixes(prefixes: Any) -> tuple[str, ...]:
    """`prefixes` checked: a list of non-empty UTF-8 texts, none the start
    of another (Redis refuses overlapping prefixes)."""
    if isinstance(prefixes, str | bytes):
        raise InvalidInput(
            f"prefixes is the string {prefixes!r}; give a list of prefixes: [{prefixes!r}]"
        )
    try:
        listed = list(prefixes)
    except TypeError:
        raise InvalidInput(f"prefixes is {shown(prefixes)}; give a list of key prefixes") from None
    for prefix in listed:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidInput(f"prefix {shown(prefix)} is empty or not text")
        utf8(prefix, f"prefix {prefix!r}")
    for i, a in enumerate(listed):
        for j, b in enumerate(listed):
            if i != j and b.startswith(a):
                raise InvalidInput(
                    f"prefix {b!r} begins with the prefix {a!r}: Redis refuses overlapping "
                    "prefixes; give only the shorter"
                )
    return tuple(listed)
