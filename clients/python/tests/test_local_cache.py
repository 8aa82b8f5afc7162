"""The near cache (`LocalCache`) against real Redis servers and a real
`invalidator serve`: values held in memory are dropped when Redis pushes
their invalidation, whoever changed the key (serve's key, pattern and tag
invalidations, another client, a flush), never held across a lost
tracking connection, never held for a lease or a miss, and bounded by
`max_age` and `max_items`."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from _leases import SlowFill
from _sentinel import SentinelGroup
from _tls import Certs, tls_node
from conftest import RedisNode, Serve, wait_until

from invalidator import Cache, InvalidInput, LocalCache, Publisher

#: How long an invalidation push may take to reach the near cache here.
PUSH_BOUND = 2.0


def near(url: str, **options: Any) -> tuple[Cache, LocalCache]:
    """A `Cache` with a near cache on `url`, tracking established."""
    local = LocalCache(**options)
    cache = Cache.from_url(url, local=local)
    assert local.wait_tracking(10), "tracking was never established"
    return cache, local


def hold(cache: Cache, key: str) -> bytes:
    """Reads `key` until the near cache holds it: a read is not held when
    the push of a write made just before arrives while it is in flight."""
    local = cache.local
    assert local is not None
    deadline = time.monotonic() + PUSH_BOUND
    while True:
        value = cache.get(key)
        assert value is not None, f"{key} has no value in Redis"
        if local.peek(key) == value:
            return value
        assert time.monotonic() < deadline, f"{key} is never held"
        time.sleep(0.01)


def redis_reads(client: redis.Redis) -> int:
    """How many reads Redis has served (`GET`s and scripts run)."""
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("get", "evalsha", "mget"))


def dropped(local: LocalCache, key: str) -> None:
    wait_until(f"{key} is dropped from the near cache", lambda: local.peek(key) is None, PUSH_BOUND)


@pytest.fixture
def plain(redis_node: RedisNode) -> redis.Redis:
    """Another client of the same Redis: another process's writes."""
    return redis.Redis(port=redis_node.port)


def test_a_held_value_is_served_without_a_round_trip(redis_node: RedisNode, plain: Any) -> None:
    cache, local = near(redis_node.url)
    cache.set("offer:1", b"v1")
    assert cache.get("offer:1") == b"v1"
    assert local.peek("offer:1") == b"v1"
    before = redis_reads(plain)
    for _ in range(50):
        assert cache.get("offer:1") == b"v1"
        assert cache.get_many(["offer:1"]) == {"offer:1": b"v1"}
        assert cache.get_or_fill("offer:1", lambda: pytest.fail("loaded")) == b"v1"
    assert redis_reads(plain) == before, "a held value was read from Redis"
    assert cache.stats()["offer"]["local_hits"] == 150
    local.close()


def test_another_clients_write_drops_the_value(redis_node: RedisNode, plain: Any) -> None:
    cache, local = near(redis_node.url)
    plain.set("k", b"old")
    hold(cache, "k")
    plain.set("k", b"new")
    dropped(local, "k")
    assert cache.get("k") == b"new"
    assert local.peek("k") == b"new"
    plain.unlink("k")
    dropped(local, "k")
    assert cache.get("k") is None
    local.close()


def test_a_flush_drops_everything(redis_node: RedisNode, plain: Any) -> None:
    cache, local = near(redis_node.url)
    for i in range(5):
        plain.set(f"k{i}", b"v")
        hold(cache, f"k{i}")
    plain.flushdb()
    wait_until("every key is dropped", lambda: len(local) == 0, PUSH_BOUND)
    plain.set("k0", b"after")
    hold(cache, "k0")
    plain.flushall()
    wait_until("every key is dropped", lambda: len(local) == 0, PUSH_BOUND)
    local.close()


def kinder(txn: str, turnus: int) -> dict[str, Any]:
    """A child written in turnus `turnus`: the turnus rule invalidates the
    key `turnus_data_{turnus}`."""
    row = {"id": 1, "turnus_id": turnus}
    return {
        "txn": txn,
        "writes": [{"table": "kinder", "op": "insert", "key": {"id": 1}, "after": row}],
    }


def test_serve_invalidating_a_key_a_pattern_and_a_tag_drops_them(
    serve: Serve, redis_node: RedisNode
) -> None:
    cache, local = near(redis_node.url)
    publisher = Publisher.http(serve.url)

    # A key.
    cache.set("turnus_data_1", b"page 1")
    cache.set("turnus_data_2", b"page 2")
    hold(cache, "turnus_data_1")
    hold(cache, "turnus_data_2")
    publisher.publish(kinder("t1", 1))
    dropped(local, "turnus_data_1")
    assert cache.get("turnus_data_1") is None, "gone from Redis too"
    assert local.peek("turnus_data_2") == b"page 2", "the other key stays held"

    # A pattern: auslagerorte sweeps `turnus_data_*`.
    cache.set("turnus_data_3", b"page 3")
    hold(cache, "turnus_data_3")
    publisher.publish(
        {
            "txn": "t2",
            "writes": [{"table": "auslagerorte", "op": "insert", "key": {"id": 9}, "after": {}}],
        }
    )
    dropped(local, "turnus_data_2")
    dropped(local, "turnus_data_3")

    # A tag: a product of shop 7 invalidates `shop:7:catalog` (and others).
    cache.set("shop:7:page", b"catalog of 7", tags=["shop:7:catalog"])
    cache.set("shop:8:page", b"catalog of 8", tags=["shop:8:catalog"])
    hold(cache, "shop:7:page")
    hold(cache, "shop:8:page")
    publisher.publish(
        {
            "txn": "t3",
            "writes": [
                {
                    "table": "products",
                    "op": "insert",
                    "key": {"id": 5},
                    "after": {"id": 5, "shop_id": 7},
                }
            ],
        }
    )
    dropped(local, "shop:7:page")
    assert cache.get("shop:7:page") is None
    assert local.peek("shop:8:page") == b"catalog of 8", "the other shop's stays held"
    local.close()


def test_writes_through_the_cache_drop_the_value_at_once(redis_node: RedisNode) -> None:
    # No waiting for the push: the next read sees the write.
    cache, local = near(redis_node.url)
    cache.set("k", b"1")
    hold(cache, "k")
    cache.set("k", b"2")
    assert local.peek("k") is None
    assert cache.get("k") == b"2"
    cache.set_many({"k": b"3"})
    assert cache.get("k") == b"3"
    cache.set("n", b"1")
    hold(cache, "n")
    assert cache.incr("n", 5) == 6
    assert cache.get("n") == b"6"
    hold(cache, "n")
    assert cache.delete("n") is True
    assert cache.get("n") is None
    hold(cache, "k")
    assert cache.delete_many(["k"]) == 1
    assert cache.get("k") is None
    assert cache.add("k", b"added") is True
    assert cache.get("k") == b"added"
    local.close()


def test_lease_markers_and_misses_are_never_held(redis_node: RedisNode) -> None:
    cache, local = near(redis_node.url)
    assert cache.get("missing") is None
    assert cache.get_many(["missing", "other"]) == {}
    assert len(local) == 0, "a miss was held"

    # Another process takes the lease and loads slowly.
    filler = SlowFill(Cache.from_url(redis_node.url), "leased", b"loaded")
    assert cache.client.get("leased").startswith(b"\x00inv:lease:"), "the lease marker is there"
    for _ in range(3):
        assert cache.get("leased") is None
        assert cache.get_many(["leased"]) == {}
    assert cache.get_or_fill("leased", lambda: b"mine", wait=0) == b"mine"
    assert local.peek("leased") is None and "leased" not in local.keys()
    filler.release()
    filler.join()
    # The fill's push drops what it may have held meanwhile; then it is held.
    wait_until("the filled value is held", lambda: cache.get("leased") == local.peek("leased"))
    assert local.peek("leased") == b"loaded"
    local.close()


def test_max_age_bounds_an_entry(redis_node: RedisNode, plain: Any) -> None:
    cache, local = near(redis_node.url, max_age=0.3)
    plain.set("k", b"v")
    hold(cache, "k")
    time.sleep(0.35)
    assert local.peek("k") is None, "held past max_age"
    before = redis_reads(plain)
    assert cache.get("k") == b"v"
    assert redis_reads(plain) > before, "read from Redis again"
    assert local.peek("k") == b"v", "held again"

    # A Redis time to live shorter than max_age bounds the entry too.
    cache2, local2 = near(redis_node.url, max_age=60)
    cache2.set("short", b"v", ttl=0.3)
    hold(cache2, "short")
    time.sleep(0.35)
    assert local2.peek("short") is None
    assert cache2.get("short") is None
    local.close()
    local2.close()


def test_the_least_recently_read_goes_first(redis_node: RedisNode, plain: Any) -> None:
    cache, local = near(redis_node.url, max_items=3)
    for key in "abcd":
        plain.set(key, key)
    for key in "abc":
        hold(cache, key)
    assert cache.get("a") == b"a"  # a is now the most recent
    hold(cache, "d")
    assert local.keys() == ["c", "a", "d"], "b, the least recently read, went"
    assert len(local) == 3
    local.close()


def test_prefixes_limit_what_is_held(redis_node: RedisNode, plain: Any) -> None:
    cache, local = near(redis_node.url, prefixes=["turnus_data_", "offer:"])
    plain.set("turnus_data_1", b"t")
    plain.set("other", b"o")
    hold(cache, "turnus_data_1")
    assert cache.get("other") == b"o"
    assert local.peek("other") is None, "a key outside the prefixes was held"
    plain.set("turnus_data_1", b"t2")
    dropped(local, "turnus_data_1")
    local.close()


def test_a_read_invalidated_while_in_flight_is_not_held(redis_node: RedisNode, plain: Any) -> None:
    # The interleaving made explicit: a read begins, the key changes in
    # Redis and its push arrives, then the (older) value read comes back.
    _cache, local = near(redis_node.url)
    plain.set("k", b"old")
    mark = local._begin("k")
    assert mark is not None
    pushes = local.health["invalidations"]
    plain.set("k", b"new")
    wait_until("the push arrived", lambda: local.health["invalidations"] > pushes, PUSH_BOUND)
    local._end("k", mark, b"old", -1)
    assert local.peek("k") is None, "a value older than an invalidation was held"
    # Without a push in between, the value is held.
    mark = local._begin("k")
    assert mark is not None
    local._end("k", mark, b"new", -1)
    assert local.peek("k") == b"new"
    local.close()


def test_racing_readers_and_writers_leave_nothing_stale(redis_node: RedisNode, plain: Any) -> None:
    # Readers read through the near cache while another process writes:
    # once the writes stop and their pushes are in, every value held must
    # be the last one written.
    cache, local = near(redis_node.url)
    keys = [f"race:{i}" for i in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                cache.get_many(keys)
                for key in keys:
                    cache.get(key)
        except BaseException as e:
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for r in readers:
        r.start()
    deadline = time.monotonic() + 3
    n = 0
    while time.monotonic() < deadline:
        n += 1
        plain.mset({key: str(n) for key in keys})
    stop.set()
    for r in readers:
        r.join()
    assert not errors, errors
    final = str(n).encode()
    wait_until(
        "every held value is the last written",
        lambda: all(local.peek(k) in (None, final) for k in keys),
        PUSH_BOUND,
    )
    time.sleep(0.2)  # and stays so: no late store of an older value
    for key in keys:
        assert local.peek(key) in (None, final)
        assert cache.get(key) == final
    local.close()


def user_url(node: RedisNode, plain: Any, tracking: bool) -> str:
    """The URL of a Redis user `near`, allowed `CLIENT TRACKING` or not."""
    rule = "+client|tracking" if tracking else "-client|tracking"
    plain.acl_setuser("near", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"])
    plain.execute_command("ACL", "SETUSER", "near", "+@all", rule)
    return f"redis://near:pw@127.0.0.1:{node.port}"


def test_a_killed_tracking_connection_flushes_and_bypasses_until_back(
    redis_node: RedisNode, plain: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="invalidator.local")
    url = user_url(redis_node, plain, tracking=True)
    cache, local = near(url)
    for key in ("a", "b"):
        plain.set(key, b"1")
        hold(cache, key)
    # Tracking cannot come back until allowed again.
    user_url(redis_node, plain, tracking=False)
    assert plain.client_kill_filter(_type="pubsub") == 1
    wait_until("the loss is seen", lambda: not local.tracking, PUSH_BOUND)
    assert len(local) == 0, "entries survived the lost tracking connection"
    assert local.health["losses"] == 1
    # The retries that fail after the loss are said once, not each one,
    # and not never (they used to go unsaid: a silent retry loop).
    cannot = "cannot re-establish tracking (NoPermissionError"
    wait_until("the failing retries are logged", lambda: cannot in caplog.text, PUSH_BOUND)
    time.sleep(0.4)  # retries at about 0.05, 0.15 and 0.35 s after the loss
    assert caplog.text.count("tracking connection lost") == 1, caplog.text
    assert caplog.text.count("cannot re-establish tracking") == 1, caplog.text
    # Bypassed: reads go to Redis, see every write at once, hold nothing.
    for n in range(3):
        plain.set("a", str(n))
        assert cache.get("a") == str(n).encode()
        assert cache.get_or_fill("a", lambda: b"x") == str(n).encode()
    assert len(local) == 0
    assert cache.stats()["a"]["local_hits"] == 0
    # Allowed again: re-established (its retries back off to 2 s), held again.
    user_url(redis_node, plain, tracking=True)
    assert local.wait_tracking(5), "tracking never came back"
    hold(cache, "a")
    assert local.health["established"] == 2
    back = re.search(r"tracking re-established after (\d+) failed attempts", caplog.text)
    assert back is not None and int(back[1]) >= 3, caplog.text
    assert caplog.text.count("cannot re-establish tracking") == 1, caplog.text
    local.close()


def test_a_redis_restart_flushes_and_tracking_comes_back(redis_node: RedisNode) -> None:
    cache, local = near(redis_node.url)
    cache.set("k", b"before")
    hold(cache, "k")
    port = redis_node.port
    redis_node.stop()
    wait_until("the loss is seen", lambda: not local.tracking, PUSH_BOUND)
    assert len(local) == 0
    assert cache.get("k") is None, "fails open while Redis is down"
    node = RedisNode(port=port)
    try:
        redis.Redis(port=port).set("k", b"after")
        assert local.wait_tracking(5)
        # Once the circuit breaker lets reads through again (1 s).
        wait_until("Redis is read again", lambda: cache.get("k") == b"after", 3)
        assert local.peek("k") == b"after"
    finally:
        local.close()
        node.stop()


def test_a_forked_child_starts_empty_and_tracks_on_its_own(
    redis_node: RedisNode, plain: Any
) -> None:
    cache, local = near(redis_node.url)
    plain.set("k", b"parent")
    hold(cache, "k")
    pid = os.fork()
    if pid == 0:  # the child: its verdict is its exit status
        code = 1
        try:
            assert local.peek("k") is None and not local.tracking, "inherited entries"
            plain.set("k", b"child")  # the parent's tracking thread is not here
            assert cache.get("k") == b"child"
            assert local.wait_tracking(5)
            hold(cache, "k")
            plain.set("k", b"again")
            dropped(local, "k")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's checks failed"
    dropped(local, "k")  # the parent got the pushes too
    assert cache.get("k") == b"again"
    local.close()


def test_over_tls_and_a_unix_socket(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    certs = Certs.make(tmp_path / "tls")
    tls = tls_node(certs)
    sock = tmp_path / "redis.sock"
    unix = RedisNode(["--unixsocket", str(sock), "--unixsocketperm", "700"])
    try:
        for url, options, other in [
            (
                f"rediss://127.0.0.1:{tls.port}/0",
                certs.options(),
                redis.Redis(port=tls.port, ssl=True, **certs.options()),
            ),
            (f"unix://{sock}", {}, redis.Redis(unix_socket_path=str(sock))),
        ]:
            local = LocalCache()
            cache = Cache.from_url(url, local=local, **options)
            assert local.wait_tracking(10), f"no tracking over {url}"
            other.set("k", b"1")
            hold(cache, "k")
            other.set("k", b"2")
            dropped(local, "k")
            hold(cache, "k")
            assert local.peek("k") == b"2"
            local.close()
    finally:
        tls.stop()
        unix.stop()


def test_a_cluster_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInput, match=r"redis\+cluster://127\.0\.0\.1:7000"):
        Cache.from_url("redis+cluster://127.0.0.1:7000", local=LocalCache())


def test_bad_arguments_are_refused_naming_them(redis_node: RedisNode) -> None:
    for options, named in [
        ({"max_items": 0}, "max_items is 0"),
        ({"max_items": True}, "max_items is True"),
        ({"max_age": -1}, "max_age is -1"),
        ({"max_age": float("inf")}, "max_age is inf"),
        ({"heartbeat": "1"}, "heartbeat is '1'"),
        ({"prefixes": "offer:"}, "prefixes is the string 'offer:'"),
        ({"prefixes": ["a", ""]}, "prefix '' "),
        ({"prefixes": ["offer:", "offer:1"]}, "prefix 'offer:1' begins with the prefix 'offer:'"),
    ]:
        with pytest.raises(InvalidInput, match=named):
            LocalCache(**options)
    local = LocalCache()
    Cache.from_url(redis_node.url, local=local)
    with pytest.raises(InvalidInput, match=r"already serves the Cache of redis://127\.0\.0\.1"):
        Cache.from_url(redis_node.url, local=local)
    with pytest.raises(InvalidInput, match="local is 'yes'"):
        Cache.from_url(redis_node.url, local="yes")  # type: ignore[arg-type]
    local.close()


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup()
    yield group
    group.stop()


def test_on_sentinel_tracking_follows_a_failover(sentinel_group: SentinelGroup) -> None:
    group = sentinel_group
    cache, local = near(group.url())
    primary = group.client(group.primary.port)
    primary.set("k", b"1")
    hold(cache, "k")
    primary.set("k", b"2")
    dropped(local, "k")
    hold(cache, "k")

    # A failover the sentinels run, once the replica has "k": the old
    # primary lives on as a replica.
    group.failover()
    group.wait("the replica is promoted", lambda: group.master_port() == group.replica.port)
    group.wait("the sentinels list it as the primary", lambda: group.serves(group.replica.port))
    assert group.client(group.replica.port).get("k") == b"2", "the write was lost in the failover"
    wait_until("the held value is dropped", lambda: local.peek("k") is None, 10)
    wait_until("tracking on the new primary", lambda: cache.get("k") == b"2" and local.tracking, 10)
    new = group.client(group.replica.port)
    wait_until("the value is held again", lambda: cache.get("k") == local.peek("k") == b"2", 10)
    new.set("k", b"3")
    dropped(local, "k")
    assert cache.get("k") == b"3"
    local.close()


def test_a_tracking_socket_numbered_past_1024_still_serves_from_memory(
    redis_node: RedisNode, plain: Any
) -> None:
    # A busy process holds many files: `select` refuses descriptors from
    # 1024 on, and the first read used to switch the near cache off for
    # good (with nothing said above debug level).
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    files = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        cache, local = near(redis_node.url)
        assert local._conn._sock.fileno() >= 1024
        cache.set("offer:1", b"v1")
        hold(cache, "offer:1")
        time.sleep(0.01)  # past the push check's interval: the socket is looked at
        assert cache.get("offer:1") == b"v1"
        assert local.tracking, local.health
        assert cache.stats()["offer"]["local_hits"] >= 1
        plain.set("offer:1", b"v2")
        dropped(local, "offer:1")
        assert cache.get("offer:1") == b"v2"
        local.close()
    finally:
        for fd in files:
            os.close(fd)


def test_get_many_with_a_near_cache_reads_a_key_of_another_type_as_missing(
    redis_node: RedisNode, plain: Any
) -> None:
    # As MGET does without a near cache: installing one changes no answer.
    cache, local = near(redis_node.url)
    plain.set("s", b"x")
    plain.hset("h", "f", "v")
    assert cache.get_many(["s", "h", "missing"]) == {"s": b"x"}
    assert Cache.from_url(redis_node.url).get_many(["s", "h", "missing"]) == {"s": b"x"}
    local.close()
