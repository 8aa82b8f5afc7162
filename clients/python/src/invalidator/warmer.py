"""`Warmer`: fills hot cache keys again right after `invalidator serve`
invalidated them, so that readers find a value instead of each loading it
from the database; and warms keys on demand, at start-up or selectively
(`warm`, `warm_tag`).

What it owns: the loaders of key templates (`loader`), the record of which
keys are hot, the consumer of `serve`'s feed, and the rate at which it
fills.

**The feed.** `serve --feed NAME` adds one entry per applied batch to the
Redis stream `NAME`, with the keys the batch removed (by key, by pattern
sweep and by tag) in its field `removed`. A running warmer reads the feed
in a consumer group (`group`): the warmers of one group, one per process,
split the entries between them, each entry handled by one. The group is
made at `start` (`run`) if missing, with the stream if missing too, to read
the entries added from then on (`$`): older entries describe invalidations
whose keys readers have long filled again, or that went cold; warming
what is there at start-up is `warm`'s job. A group that exists resumes
where it stood. An entry is acknowledged (`XACK`) once handled.

**Which keys.** A removed key is filled again when it matches a registered
template (the first one that matches, in the order registered) and was
read within `hot_for` seconds; the others are left alone (`skipped_cold`),
so that a pattern sweep of a thousand keys does not reload the thousand.
A fill goes through `Cache.refill`, the lease scripts: it loads only if the
key holds no value and no lease, so that across every warmer and reader a
key is loaded once after each invalidation, and a value loaded while a
newer invalidation ran is not stored. A key a reader (or another warmer)
filled first is `skipped_busy`.

**Hotness is shared through Redis.** The warmer that handles an entry is
not necessarily in the process that read its keys, so reads are recorded
in one sorted set, `hot_key` (`inv:warm:hot`): member the key, score the
time of the read (`time.time()`, seconds). Each process writes a given key
at most once every `hot_for / 4` seconds, from the warmer's thread, at
most `block` seconds after the read: a read costs the reader nothing but
a dictionary look-up. A warmer knows its own process's reads without
asking Redis, and asks the set about the other keys of an entry (one
`ZMSCORE`). A key read at least once every `hot_for` seconds
is always hot; one read once stays hot for between `3/4 hot_for` and
`hot_for` seconds. Only keys that match a template are recorded; the set
is trimmed of keys older than `hot_for`. A process that reads but leaves
warming to others runs `start(consume=False)`: its thread only records.
Scores are the clocks of the processes that read: hosts should agree on
the time to well within `hot_for`.

**Entries that list only part of what they removed** (`cut` = `"1"`: a
sweep removed more keys than an entry lists, `removed_count` says how
many): what is listed is warmed, the rest is left to readers. The keys
are not listed in any order of heat, and finding the rest would mean
scanning the hot set for every key of the template; a batch that removes
that many keys is a sweep, whose keys readers fill as they come back.

**A warmer that dies** with entries delivered and not acknowledged: every
`claim_after` seconds a running warmer claims entries pending that long
for another consumer (`XAUTOCLAIM`) and handles them. Handled late, they
still only fill keys that are absent, with the current value; keys that
readers filled meanwhile are `skipped_busy`. A warmer given a fixed
`consumer` name handles its own pending entries first when it starts
again; one with the default name (host, process, random) deletes itself
from the group when it stops with nothing pending.

**Rate.** Fills are bounded by a token bucket, `rate` fills per second,
`burst` at once (1 s worth by default), shared by the feed and by
`warm`/`warm_tag`: warming must not become the load it saves the
database from. A fill that has to wait for a token waits (counted
`rate_limited`); one that finds the key busy gives its token back, since
it loaded nothing. While it waits, the other warmers of the group take
the next entries.

Loader exceptions (and those of a `tags` callable) are logged and counted
(`loader_errors`), never raised out of the thread; Redis errors are logged
and retried with a back-off. `stats` returns the counters.

Needs Redis 6.2 or later (`XAUTOCLAIM`, `ZMSCORE`); works on a single
node, a Sentinel's primary and a cluster (where the feed, the hot set and
each key live in their own slots).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.exceptions
from redis.cluster import RedisCluster
from redis.sentinel import SentinelConnectionPool

from ._templates import Template
from .cache import Cache, checked_tags, index_key
from .errors import InvalidatorError, InvalidInput, shown, utf8

#: The most reads noted and not yet written to the hot set, and the most
#: keys remembered as recorded lately: past them, reads of further keys
#: are not noted until the next flush (a running warmer flushes every
#: `block` seconds).
MAX_NOTED = 100_000
_log = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])

#: Where reads are recorded by default: a sorted set, key to time of read.
DEFAULT_HOT_KEY = "inv:warm:hot"
#: The consumer group warmers join by default.
DEFAULT_GROUP = "invalidator-warmers"
#: Back-off after a Redis error in the warmer's thread, first and last.
FIRST_BACKOFF = 0.1
LAST_BACKOFF = 5.0
#: How long, at most, the thread keeps the socket waiting beyond `block`
#: before taking a blocked read for a dead connection.
_BLOCK_MARGIN = 5.0

#: The counters `Warmer.stats` returns, and what each counts.
COUNTERS: dict[str, str] = {
    "entries": "feed entries handled (read, or claimed from another consumer)",
    "claimed": "feed entries claimed from a consumer that left them pending",
    "cut_entries": "feed entries that listed fewer keys than they removed",
    "bad_entries": "feed entries that could not be read (acknowledged, skipped)",
    "refilled": "keys filled again after the feed said they were removed",
    "warmed": "keys filled by warm() and warm_tag()",
    "skipped_cold": "removed keys not read within hot_for, left alone",
    "skipped_busy": "keys that already held a value or a lease, not loaded",
    "defeated": "loads not stored: the key was invalidated again while loading",
    "unmatched": "removed keys that match no template",
    "loader_errors": "loads that raised (the loader, or its tags callable)",
    "rate_limited": "fills that waited for the rate limit",
    "redis_errors": "Redis errors in the warmer (each retried)",
}


@dataclass(frozen=True)
class _Loader:
    """A template and how to load, expire and tag its keys."""

    template: Template
    load: Callable[..., bytes | str]
    ttl: float | None
    tags: Sequence[str] | Callable[..., Iterable[str]] | None

    def tags_of(self, key: str, fields: Mapping[str, str]) -> list[str]:
        if self.tags is None:
            return []
        if callable(self.tags):
            return checked_tags(key, self.tags(**fields))
        return list(self.tags)


class _Bucket:
    """A token bucket: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, cancel: threading.Event | None) -> bool | None:
        """Takes a token, waiting for one if need be; whether it waited, or
        `None` if `cancel` was set while it waited (no token taken)."""
        waited = False
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                delay = (1 - self._tokens) / self.rate
            waited = True
            if cancel is None:
                time.sleep(delay)
            elif cancel.wait(delay):
                return None

    def give_back(self) -> None:
        with self._lock:
            self._tokens = min(self.burst, self._tokens + 1)


class Warmer:
    """Fills hot keys again after invalidations, and warms keys on demand;
    see the module documentation.

    `cache`: the `Cache` whose reads make keys hot and through which keys
    are filled. `feed`: the stream `serve --feed` writes. `group`: the
    consumer group of the warmers that share the work; `consumer`: this
    one's name in it (by default host, process id and a random suffix).
    `hot_for`: seconds a read keeps a key hot. `rate`: fills per second at
    most; `burst`: fills at once (default: one second's worth, at least 1).
    `block`: seconds one read of the feed waits for entries (and how often,
    at least, reads are recorded and `stop` is noticed). `count`: entries
    per read. `claim_after`: seconds an entry stays pending with another
    consumer before this one claims it. `hot_key`: the sorted set of
    reads. `concurrency`: keys of one entry loaded at once.
    `stream_client`: the redis-py client for the feed's blocking reads; by
    default one like the cache's with a socket timeout longer than `block`.
    """

    def __init__(
        self,
        cache: Cache,
        feed: str,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        hot_for: float = 60.0,
        rate: float = 100.0,
        block: float = 1.0,
        *,
        burst: float | None = None,
        count: int = 100,
        claim_after: float = 30.0,
        hot_key: str = DEFAULT_HOT_KEY,
        concurrency: int = 4,
        stream_client: redis.Redis | RedisCluster | None = None,
    ) -> None:
        if not isinstance(cache, Cache):
            raise InvalidInput(f"cache is {shown(cache)}; give an invalidator.Cache")
        _name("feed", feed)
        _name("group", group)
        if consumer is not None:
            _name("consumer", consumer)
        _name("hot_key", hot_key)
        _seconds("hot_for", hot_for)
        _seconds("rate", rate, "fills per second")
        _seconds("block", block)
        _seconds("claim_after", claim_after)
        if burst is None:
            burst = max(1.0, float(rate))
        _seconds("burst", burst, "fills")
        if burst < 1:
            raise InvalidInput(f"burst {burst!r} is less than one fill; give 1 or more")
        _count("count", count)
        _count("concurrency", concurrency)
        self.cache = cache
        self.feed = feed
        self.group = group
        self._named = consumer is not None
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.hot_for = float(hot_for)
        self.block = float(block)
        self.count = count
        self.claim_after = float(claim_after)
        self.hot_key = hot_key
        self.concurrency = concurrency
        self._bucket = _Bucket(float(rate), float(burst))
        self._given_stream_client = stream_client
        self._stream_client: redis.Redis | RedisCluster | None = stream_client
        # Registered loaders, in order; replaced whole, never changed, so
        # that readers' threads can walk it without a lock.
        self._loaders: tuple[_Loader, ...] = ()
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        # Reads: when this process last recorded each key (throttling), and
        # the reads not yet written to `hot_key`.
        self._record_every = self.hot_for / 4
        self._recorded: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        self._last_prune = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._consume = True
        self._pool: ThreadPoolExecutor | None = None
        self._last_claim = 0.0
        self._quiet_until = 0.0
        cache.on_read(self._on_read)

    def __repr__(self) -> str:
        return f"Warmer(feed={self.feed!r}, group={self.group!r}, consumer={self.consumer!r})"

    # Loaders and templates.

    def loader(
        self,
        template: str,
        ttl: float | None = None,
        tags: Iterable[str] | Callable[..., Iterable[str]] | None = None,
    ) -> Callable[[_F], _F]:
        """Registers the decorated function as the loader of the keys of
        `template` (`"turnus_data_{id}"`): called with the key's fields as
        keyword arguments, all text, it returns the value (bytes or text).
        Filled values expire after `ttl` seconds (`None`: never) and carry
        `tags`: a list, or a function of the same keyword arguments that
        returns one. The template becomes a stats family of the cache
        (`Cache.add_family`). A template registered twice is refused."""
        parsed = Template(template)
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf
        ):
            raise InvalidInput(
                f"ttl of template `{template}` is {shown(ttl)}; give a positive number of "
                "seconds, or None for no expiry"
            )
        if isinstance(tags, str | bytes):
            raise InvalidInput(
                f"tags of template `{template}` is the string {tags!r}, which would tag its "
                f"keys with each of its characters; give a list of tags: [{tags!r}]"
            )
        if tags is not None and not callable(tags):
            tags = checked_tags(template, tags)
        if any(spec.template.text == template for spec in self._loaders):
            raise InvalidInput(f"template `{template}` already has a loader")

        def register(load: _F) -> _F:
            if not callable(load):
                raise InvalidInput(f"loader of template `{template}` is {shown(load)}")
            spec = _Loader(parsed, load, None if ttl is None else float(ttl), tags)
            with self._lock:
                if any(s.template.text == template for s in self._loaders):
                    raise InvalidInput(f"template `{template}` already has a loader")
                self._loaders = (*self._loaders, spec)
            self.cache.add_family(template)
            return load

        return register

    @property
    def templates(self) -> list[str]:
        """The templates that have a loader, in the order registered."""
        return [spec.template.text for spec in self._loaders]

    def _match(self, key: str) -> tuple[_Loader, dict[str, str]] | None:
        for spec in self._loaders:
            fields = spec.template.match(key)
            if fields is not None:
                return spec, fields
        return None

    def _spec(self, template: str) -> _Loader:
        """The loader registered for `template`, or for its glob."""
        for spec in self._loaders:
            if template in (spec.template.text, spec.template.glob):
                return spec
        raise InvalidInput(
            f"no loader for template `{template}`; registered: {self.templates or 'none'}"
        )

    # Hotness.

    def _on_read(self, key: str, hit: bool) -> None:
        """`Cache.on_read`: notes a read of `key`, to be written to
        `hot_key` by the warmer's thread. Runs in the reader's thread: a
        look-up when the key was recorded lately, a template match else."""
        now = time.time()
        last = self._recorded.get(key)
        if last is not None and now - last < self._record_every:
            return
        if self._match(key) is None:
            return
        with self._lock:
            # Bounded: a warmer that is not running (never started, only
            # used to `warm`, or stopped) writes nothing out, and must not
            # grow with every key read.
            if len(self._pending) >= MAX_NOTED and key not in self._pending:
                return
            if len(self._recorded) >= MAX_NOTED and key not in self._recorded:
                fresh = {k: t for k, t in self._recorded.items() if now - t < self._record_every}
                self._recorded = fresh if len(fresh) < MAX_NOTED else {}
            self._recorded[key] = now
            self._pending[key] = now

    def flush_reads(self) -> int:
        """Writes the reads noted since the last flush to `hot_key` (the
        running thread does so at least every `block` seconds); how many
        keys were written. Raises what redis-py raises."""
        with self._lock:
            pending, self._pending = self._pending, {}
        now = time.time()
        prune = now - self._last_prune >= self._record_every
        if not pending and not prune:
            return 0
        try:
            pipe = _pipeline(self.cache.client)
            if pending:
                pipe.zadd(self.hot_key, pending)
            if prune:
                pipe.zremrangebyscore(self.hot_key, "-inf", f"({now - self.hot_for}")
            pipe.execute()
        except Exception:
            # Not written: written with the next flush (at most one entry
            # a key, so an outage cannot grow them without bound).
            with self._lock:
                self._pending = {**pending, **self._pending}
            raise
        if prune:
            # Kept for `hot_for`: `hot` answers from it for this process's
            # reads (a key's time there is its last recorded read, never
            # later than its last read).
            self._last_prune = now
            with self._lock:
                cutoff = now - self.hot_for
                self._recorded = {k: t for k, t in self._recorded.items() if t >= cutoff}
        return len(pending)

    def hot(self, keys: Sequence[str]) -> list[bool]:
        """Whether each of `keys` was read within `hot_for` seconds, by any
        process recording to `hot_key`. This process's own reads are known
        without asking Redis (a round trip less between the invalidation
        and the refill, when readers race the warmer for the key)."""
        cutoff = time.time() - self.hot_for
        recorded = self._recorded
        answer = [recorded.get(key, -math.inf) >= cutoff for key in keys]
        ask = [i for i, hot in enumerate(answer) if not hot]
        if ask:
            scores = self.cache.client.zmscore(self.hot_key, [keys[i] for i in ask])
            for i, score in zip(ask, scores, strict=True):
                answer[i] = score is not None and score >= cutoff
        return answer

    # Filling.

    def _add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._counts[counter] += n

    def stats(self) -> dict[str, int]:
        """The counters (see `COUNTERS`), since this warmer was made."""
        with self._lock:
            return dict(self._counts)

    def _fill_one(self, key: str, spec: _Loader, fields: dict[str, str]) -> str:
        """Fills `key` through `Cache.refill`: "filled" when loaded and
        stored; "busy" when the key held a value or a lease (or Redis could
        not be reached), nothing loaded; "defeated" when loaded and not
        stored, an invalidation having come meanwhile (its own feed entry
        warms the key again); "error" when loading failed (logged and
        counted)."""
        called = False
        failed: list[BaseException] = []

        def load() -> bytes | str:
            nonlocal called
            called = True
            try:
                return spec.load(**fields)
            except BaseException as e:
                failed.append(e)
                raise

        try:
            tags = spec.tags_of(key, fields)
        except Exception as e:
            self._add("loader_errors")
            self._log_error("the tags of `%s` could not be computed: %r", key, e, trace=True)
            return "error"
        try:
            if self.cache.refill(key, load, ttl=spec.ttl, tags=tags):
                return "filled"
            return "defeated" if called else "busy"
        except Exception as e:
            if failed or isinstance(e, InvalidInput):
                # The loader raised, or returned what cannot be cached.
                self._add("loader_errors")
                self._log_error("the loader of `%s` failed: %r", key, e, trace=True)
            else:
                self._add("redis_errors")
                self._log_error("refilling `%s` failed: %r", key, e)
            return "error"

    def _fill(
        self, items: list[tuple[str, _Loader, dict[str, str]]], counter: str, wait: bool
    ) -> tuple[int, bool]:
        """Fills each of `items` under the rate limit, up to `concurrency`
        at once; how many were stored (counted under `counter`), and
        whether every item was tried. With `wait` false, a `stop` cuts the
        wait for a token short and leaves the rest."""
        filled = 0
        complete = True
        futures: list[Future[str]] = []

        def done(result: str) -> None:
            nonlocal filled
            if result == "filled":
                filled += 1
                self._add(counter)
            elif result == "busy":
                # Nothing was loaded: the token was not spent.
                self._bucket.give_back()
                self._add("skipped_busy")
            elif result == "defeated":
                self._add("defeated")

        for key, spec, fields in items:
            waited = self._bucket.take(None if wait else self._stop)
            if waited is None:
                complete = False
                break
            if waited:
                self._add("rate_limited")
            if len(items) == 1 or self.concurrency == 1:
                done(self._fill_one(key, spec, fields))
            else:
                futures.append(self._executor().submit(self._fill_one, key, spec, fields))
        for future in futures:
            done(future.result())
        return filled, complete

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="invalidator-warmer-fill"
                )
            return self._pool

    def _absent(self, keys: list[str]) -> list[str]:
        """Those of `keys` that do not exist (a lease marker exists), asked
        without reading them, so that warming makes nothing hot."""
        pipe = _pipeline(self.cache.client)
        for key in keys:
            pipe.exists(key)
        return [key for key, n in zip(keys, pipe.execute(), strict=True) if not n]

    def warm(self, template: str, ids: Iterable[Any]) -> int:
        """Fills the keys of `template` (as registered, or its glob,
        `"offers:*"`) for `ids` that hold no value, with its loader, under
        the rate limit; how many were filled. For a template of one field
        an id is its value (made text with `str`); for several, a mapping
        of the fields. Keys that hold a value or a lease are left
        (`skipped_busy`). Runs in the caller's thread."""
        spec = self._spec(template)
        if isinstance(ids, str | bytes | bytearray | memoryview | Mapping):
            raise InvalidInput(f"ids of template `{template}` is {shown(ids)}; give a list of ids")
        try:
            listed = list(ids)
        except TypeError:
            raise InvalidInput(
                f"ids of template `{template}` is {shown(ids)}; give a list of ids"
            ) from None
        items: dict[str, tuple[str, _Loader, dict[str, str]]] = {}
        for id_ in listed:
            fields = self._fields(spec, id_)
            key = spec.template.format(**fields)
            if spec.template.match(key) != fields:
                raise InvalidInput(
                    f"id {shown(id_)} of template `{spec.template.text}` makes the key "
                    f"`{key}`, which reads back as other fields: {spec.template.match(key)}"
                )
            utf8(key, f"the key of id {id_!r}")
            items.setdefault(key, (key, spec, fields))
        return self._warm(list(items.values()))

    @staticmethod
    def _fields(spec: _Loader, id_: Any) -> dict[str, str]:
        names = spec.template.fields
        if isinstance(id_, Mapping):
            return {str(k): str(v) for k, v in id_.items()}
        if len(names) != 1:
            raise InvalidInput(
                f"id {shown(id_)} of template `{spec.template.text}`: give a mapping of its "
                f"fields {list(names)}"
            )
        if id_ is None or isinstance(id_, bytes | bytearray | memoryview):
            raise InvalidInput(
                f"id {shown(id_)} of template `{spec.template.text}` is not a value its "
                "key can hold; give text or a number"
            )
        return {names[0]: str(id_)}

    def warm_tag(self, tag: str) -> int:
        """Fills the keys listed under `tag` (its index, `inv:tag:TAG`,
        members not yet expired) that match a template and hold no value;
        how many were filled. Members matching no template are left."""
        if not isinstance(tag, str) or not tag:
            raise InvalidInput(f"tag {shown(tag)} is empty or not text")
        utf8(tag, f"tag {tag!r}")
        seconds, micros = self.cache.client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        members = self.cache.client.zrangebyscore(index_key(tag), now_ms, "+inf")
        items = []
        for member in members:
            key = _text(member)
            found = self._match(key)
            if found is not None:
                items.append((key, *found))
        return self._warm(items)

    def _warm(self, items: list[tuple[str, _Loader, dict[str, str]]]) -> int:
        if not items:
            return 0
        absent = set(self._absent([key for key, _, _ in items]))
        busy = len(items) - len(absent)
        if busy:
            self._add("skipped_busy", busy)
        filled, _ = self._fill([i for i in items if i[0] in absent], "warmed", wait=True)
        return filled

    # The feed.

    def start(self, consume: bool = True) -> None:
        """Runs the warmer on a daemon thread until `stop`. The consumer
        group is made here when Redis answers (else by the thread), so that
        entries added after `start` returns are read. With `consume` false,
        the thread only records this process's reads to `hot_key`."""
        self._begin(consume)
        if consume:
            try:
                self._ensure_group()
            except Exception as e:
                self._log_error("could not make the consumer group yet: %r", e)
        self._thread = threading.Thread(
            target=self._main, name=f"invalidator-warmer-{self.consumer}", daemon=True
        )
        self._thread.start()

    def run(self, consume: bool = True) -> None:
        """Runs the warmer in this thread until `stop` is called from
        another."""
        self._begin(consume)
        self._main()

    def _begin(self, consume: bool) -> None:
        """Marks the warmer running, or raises if it already is, and readies
        it for a run that `consume`s the feed or not: the one way in for
        `start` and `run`, so that a warmer never runs twice at once,
        whichever of them began it."""
        with self._lock:
            if self._running:
                raise InvalidatorError(f"{self!r} is already running")
            self._running = True
        self._stop.clear()
        self._consume = consume

    def stop(self, timeout: float | None = None) -> bool:
        """Ends the running warmer: its current read of the feed (at most
        `block` seconds) and the entry it handles finish first, entries
        still to handle stay for the group. Waits for the thread up to
        `timeout` seconds (default `block` + 10); whether it ended."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.block + 10 if timeout is None else timeout)
            if thread.is_alive():
                return False
            self._thread = None
        return True

    @property
    def running(self) -> bool:
        """Whether `run` (or `start`'s thread) is running."""
        return self._running

    def _main(self) -> None:
        backoff = FIRST_BACKOFF
        try:
            own_backlog = self._named
            while not self._stop.is_set():
                try:
                    if self._consume:
                        self._ensure_group()
                        if own_backlog:
                            self._read("0")
                            own_backlog = False
                        self._claim()
                        self.flush_reads()
                        self._read(">")
                    else:
                        self.flush_reads()
                        self._stop.wait(self.block)
                    backoff = FIRST_BACKOFF
                except Exception as e:
                    self._add("redis_errors")
                    if isinstance(e, redis.exceptions.ResponseError) and "NOGROUP" in str(e):
                        # The stream (or the group) was deleted: made again next round.
                        self._group_made = False
                    elif self._given_stream_client is None:
                        # Made again next round: in a cluster, the feed's
                        # slot may have moved to another node (an answer
                        # of MOVED, or a node gone).
                        self._stream_client = None
                    self._log_error("reading the feed `%s` failed: %r", self.feed, e)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, LAST_BACKOFF)
            self._leave()
        finally:
            # The fill pool stays: `warm` may be using it from another
            # thread. Its threads are made on demand and idle meanwhile.
            with self._lock:
                self._running = False

    _group_made = False

    def _ensure_group(self) -> None:
        if self._group_made:
            return
        try:
            self._streams().xgroup_create(self.feed, self.group, id="$", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_made = True

    def _streams(self) -> redis.Redis | RedisCluster:
        if self._stream_client is None:
            self._stream_client = _blocking_client(
                self.cache.client, self.feed, self.block + _BLOCK_MARGIN
            )
        return self._stream_client

    def _read(self, start: str) -> None:
        """One read of the group: new entries (`>`), blocking up to
        `block`, or this consumer's pending ones (`0`), until none is
        left."""
        while not self._stop.is_set():
            answer = self._streams().xreadgroup(
                self.group,
                self.consumer,
                {self.feed: start},
                count=self.count,
                block=None if start != ">" else max(1, int(self.block * 1000)),
            )
            entries = _entries(answer)
            for entry_id, fields in entries:
                self._handle(entry_id, fields)
            if start == ">" or not entries:
                return
            start = _text(entries[-1][0])

    def _claim(self) -> None:
        """Claims and handles entries pending with other consumers for
        `claim_after` seconds (checked every `claim_after / 2`)."""
        now = time.monotonic()
        if now - self._last_claim < self.claim_after / 2:
            return
        self._last_claim = now
        start = "0-0"
        for _ in range(100):  # bounded: the next check resumes from the start
            answer = self._streams().xautoclaim(
                self.feed,
                self.group,
                self.consumer,
                int(self.claim_after * 1000),
                start_id=start,
                count=self.count,
            )
            start = _text(answer[0])
            for entry_id, fields in answer[1]:
                if fields is None:
                    # Trimmed from the stream since delivered: nothing to
                    # handle (Redis 7 drops it from the pending list itself).
                    continue
                self._add("claimed")
                self._handle(entry_id, fields)
            if start == "0-0" or self._stop.is_set():
                return

    def _handle(self, entry_id: Any, fields: Mapping[Any, Any]) -> None:
        """Fills the hot keys an entry says were removed, then acknowledges
        it; counted in `entries` once done."""
        try:
            removed = _removed(fields)
        except ValueError as e:
            self._add("bad_entries")
            self._log_error("feed entry %s of `%s` skipped: %s", _text(entry_id), self.feed, e)
            removed = []
        if _text(_field(fields, "cut") or b"0") == "1":
            self._add("cut_entries")
        matched: dict[str, tuple[str, _Loader, dict[str, str]]] = {}
        for key in removed:
            if key in matched:
                continue
            found = self._match(key)
            if found is None:
                self._add("unmatched")
            else:
                matched[key] = (key, *found)
        if matched:
            items = list(matched.values())
            hot = self.hot([key for key, _, _ in items])
            cold = hot.count(False)
            if cold:
                self._add("skipped_cold", cold)
            hot_items = [i for i, h in zip(items, hot, strict=True) if h]
            _, complete = self._fill(hot_items, "refilled", wait=False)
            # This process's reads, for the warmers of other processes (after
            # the fills, which the readers are waiting for).
            self.flush_reads()
            if not complete:
                # Cut short by `stop`: left pending, for this consumer's
                # next start or another's claim.
                return
        self._streams().xack(self.feed, self.group, entry_id)
        self._add("entries")

    def _leave(self) -> None:
        """A consumer with a made-up name deletes itself from the group
        when it has nothing pending: no one would take its name again."""
        if self._named or not self._consume or not self._group_made:
            return
        try:
            pending = self._streams().xpending_range(
                self.feed, self.group, "-", "+", 1, consumername=self.consumer
            )
            if not pending:
                self._streams().xgroup_delconsumer(self.feed, self.group, self.consumer)
        except Exception as e:
            _log.debug("could not leave the group `%s`: %r", self.group, e)

    def _log_error(self, message: str, *args: Any, trace: bool = False) -> None:
        """Logs a warning, at most one a second (the others at debug): a
        database or a Redis that is down would otherwise log one per key.
        `trace`: with the exception being handled."""
        now = time.monotonic()
        with self._lock:
            quiet = now < self._quiet_until
            if not quiet:
                self._quiet_until = now + 1.0
        if quiet:
            _log.debug(message, *args, exc_info=trace)
            return
        _log.warning(
            message + " (counted in stats(); more within 1 s logged at debug)",
            *args,
            exc_info=trace,
        )


def _blocking_client(
    client: redis.Redis | RedisCluster, key: str, timeout: float
) -> redis.Redis | RedisCluster:
    """A client for blocking reads of `key`: `client` if its socket
    timeout is long enough (or none), else one like it, on new connections,
    with `timeout`. In a cluster, a client of the node serving `key`."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        base = node.redis_connection or client.get_redis_connection(node)
        return _blocking_client(base, key, timeout)
    pool = client.connection_pool
    current = pool.connection_kwargs.get("socket_timeout")
    if current is None or current >= timeout:
        return client
    kwargs = {**pool.connection_kwargs, "socket_timeout": timeout}
    if isinstance(pool, SentinelConnectionPool):
        new: redis.ConnectionPool = SentinelConnectionPool(
            pool.service_name,
            pool.sentinel_manager,
            connection_class=pool.connection_class,
            is_master=pool.is_master,
            check_connection=pool.check_connection,
            **kwargs,
        )
    else:
        new = redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=new)


def _pipeline(client: redis.Redis | RedisCluster) -> Any:
    """A pipeline that is not a transaction (a cluster's sends each node
    its keys)."""
    return client.pipeline() if isinstance(client, RedisCluster) else client.pipeline(False)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)


def _field(fields: Mapping[Any, Any], name: str) -> Any:
    """A field of an entry, whether the client decodes answers or not."""
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def _removed(fields: Mapping[Any, Any]) -> list[str]:
    """The keys an entry lists as removed; `ValueError` saying why when it
    lists none readably."""
    raw = _field(fields, "removed")
    if raw is None:
        raise ValueError("it has no field `removed`")
    try:
        removed = json.loads(_text(raw))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"its field `removed` is not JSON: {e}") from None
    if not isinstance(removed, list) or not all(isinstance(k, str) for k in removed):
        raise ValueError(f"its field `removed` is not a list of keys: {shown(removed)}")
    return removed


def _entries(answer: Any) -> list[tuple[Any, Mapping[Any, Any]]]:
    """The entries of an `XREADGROUP` answer, RESP2 or RESP3."""
    if not answer:
        return []
    if isinstance(answer, Mapping):
        streams = list(answer.values())
        return [e for s in streams for e in (s[0] if s and isinstance(s[0], list) else s)]
    return [entry for _, entries in answer for entry in entries]


def _name(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} is {shown(value)}; give a non-empty name")
    utf8(value, what)


def _seconds(what: str, value: Any, unit: str = "seconds") -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} is {shown(value)}; give a number of {unit}")
    if not 0 < value < math.inf:
        raise InvalidInput(f"{what} is {shown(value, False)}; give a positive, finite number")


def _count(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{what} is {shown(value)}; give a whole number, 1 or more")
