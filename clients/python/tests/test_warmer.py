"""`Warmer` against real Redis and a real `invalidator serve --feed`: hot
keys invalidated are filled again, cold ones are left; warmers of one
group (or of several) load each key once; `warm` and `warm_tag`; the rate
limit; pending entries of a dead consumer; `stop`.

Some tests add feed entries themselves, of exactly the shape `serve`
writes (see `add_entry`), to control what an entry says; the others take
them from `serve`."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from conftest import RedisNode, Serve, wait_until

from invalidator import Cache, InvalidatorError, InvalidInput, Warmer, index_key
from invalidator.warmer import DEFAULT_HOT_KEY

FEED = "inv:feed"


def add_entry(
    cache: Cache,
    removed: list[str],
    feed: str = FEED,
    keys: Iterable[str] = (),
    patterns: Iterable[str] = (),
    tags: Iterable[str] = (),
    removed_count: int | None = None,
) -> bytes:
    """Adds an entry shaped as `serve --feed` adds one per applied batch
    (a manual invalidation's), and deletes the keys it says were removed,
    as the batch would have."""
    if removed:
        cache.client.delete(*removed)
    count = len(removed) if removed_count is None else removed_count
    origin = {
        "txn": None,
        "source": None,
        "rule": None,
        "version": None,
        "cause": "manual",
        "failed": False,
    }
    return cache.client.xadd(
        feed,
        {
            "at": str(int(time.time() * 1000)),
            "origins": json.dumps([origin]),
            "keys": json.dumps(list(keys or removed)),
            "patterns": json.dumps(list(patterns)),
            "tags": json.dumps(list(tags)),
            "removed": json.dumps(removed),
            "removed_count": str(count),
            "cut": "1" if count > len(removed) else "0",
        },
        maxlen=10000,
        approximate=True,
    )


def post(serve: Serve, path: str, body: Any) -> None:
    """Posts `body` to `serve` and waits until it is applied."""
    request = urllib.request.Request(
        f"{serve.url}{path}?wait=true", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200, answer.read()


def child_moved(txn: str, *turnuses: int) -> dict[str, Any]:
    """A commit the turnus rule turns into `turnus_data_{t}` for each of
    `turnuses`: one `kinder` row written per turnus."""
    return {
        "txn": txn,
        "writes": [
            {
                "table": "kinder",
                "op": "insert",
                "key": {"id": 1000 + t},
                "after": {"id": 1000 + t, "turnus_id": t},
            }
            for t in turnuses
        ],
    }


class Database:
    """The source of truth the loaders read: a version per turnus, and
    each call, in order, by key."""

    def __init__(self, delay: float = 0.0) -> None:
        self.versions: dict[str, int] = {}
        self.calls: list[str] = []
        self.delay = delay
        self.lock = threading.Lock()

    def load(self, id: str) -> bytes:
        with self.lock:
            self.calls.append(id)
            version = self.versions.get(id, 0)
        if self.delay:
            time.sleep(self.delay)
        return f"turnus {id} v{version}".encode()


def turnus_warmer(cache: Cache, db: Database, **options: Any) -> Warmer:
    warmer = Warmer(cache, feed=FEED, **options)
    warmer.loader("turnus_data_{id}", ttl=300)(db.load)
    return warmer


@pytest.fixture
def cache(redis_node: RedisNode) -> Cache:
    return Cache.from_url(redis_node.url)


@pytest.fixture
def serve_feed(redis_node: RedisNode) -> Iterator[Serve]:
    """`serve` with the example rules, writing its feed to `FEED`."""
    service = Serve(redis_node.url, ["--feed", FEED])
    yield service
    service.stop()


@pytest.fixture
def stopping() -> Iterator[list[Warmer]]:
    """Warmers to stop after the test, passed or not."""
    warmers: list[Warmer] = []
    yield warmers
    for warmer in warmers:
        warmer.stop()


def make_hot(cache: Cache, *keys: str) -> None:
    """Sets each of `keys` to `b"old"` and reads it once: the warmer fills
    again only keys read within `hot_for`, so this is what most tests do
    before an invalidation that should be warmed."""
    for key in keys:
        cache.set(key, b"old")
        cache.get(key)


def left_pending(cache: Cache, consumer: str) -> None:
    """An entry invalidating the hot `turnus_data_1`, delivered to
    `consumer` of the warmers' group and never acknowledged: what a
    consumer that died, or stopped, leaves pending for the others to claim
    (or for itself to handle when it starts again). The warmer to test must
    exist already, to see the read that makes the key hot."""
    cache.client.xgroup_create(FEED, "invalidator-warmers", id="$", mkstream=True)
    make_hot(cache, "turnus_data_1")
    add_entry(cache, ["turnus_data_1"])
    got = cache.client.xreadgroup("invalidator-warmers", consumer, {FEED: ">"}, count=10)
    assert len(got[0][1]) == 1


def pending(cache: Cache, group: str = "invalidator-warmers") -> int:
    return int(cache.client.xpending(FEED, group)["pending"])


def handled(warmer: Warmer, entries: int) -> None:
    wait_until(
        f"{warmer!r} handled {entries} entries", lambda: warmer.stats()["entries"] >= entries
    )


def test_hot_keys_invalidated_by_serve_are_filled_again_and_cold_ones_left(
    cache: Cache, serve_feed: Serve, stopping: list[Warmer]
) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db)
    for t in (1, 2, 3, 4):
        cache.set(f"turnus_data_{t}", b"old")
    # Read: 1 and 2 (2 as a miss, which counts as a read too).
    cache.client.delete("turnus_data_2")
    assert cache.get("turnus_data_1") == b"old"
    assert cache.get("turnus_data_2") is None
    cache.set("turnus_data_2", b"old")
    warmer.start()
    stopping.append(warmer)

    db.versions.update({"1": 1, "2": 1, "3": 1, "4": 1})
    post(serve_feed, "/v1/commits", child_moved("t1", 1, 2, 3, 4))
    handled(warmer, 1)
    wait_until("nothing is pending", lambda: pending(cache) == 0)

    assert cache.get("turnus_data_1") == b"turnus 1 v1"
    assert cache.get("turnus_data_2") == b"turnus 2 v1"
    assert cache.client.exists("turnus_data_3", "turnus_data_4") == 0
    assert sorted(db.calls) == ["1", "2"]
    assert cache.client.pttl("turnus_data_1") > 290_000
    stats = warmer.stats()
    assert (stats["refilled"], stats["skipped_cold"], stats["skipped_busy"]) == (2, 2, 0)
    assert stats["entries"] == 1
    assert cache.stats()["turnus_data_{id}"]["fills"] == 2


def test_a_sweep_and_a_tag_are_warmed_from_what_the_feed_lists(
    cache: Cache, serve_feed: Serve, stopping: list[Warmer]
) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db)

    @warmer.loader("shop:{shop}:product:{id}", tags=lambda shop, id: [f"shop:{shop}:products"])
    def product(shop: str, id: str) -> str:
        db.calls.append(f"{shop}/{id}")
        return f"product {id} of shop {shop}"

    for t in range(5):
        cache.set(f"turnus_data_{t}", b"old")
    cache.set("shop:1:product:7", b"old", tags=["shop:1:products"])
    cache.set("shop:1:product:8", b"old", tags=["shop:1:products"])
    cache.set("shop:1:summary", b"old", tags=["shop:1:products"])
    for key in ["turnus_data_0", "turnus_data_3", "shop:1:product:7", "shop:1:summary"]:
        cache.get(key)
    warmer.start()
    stopping.append(warmer)

    post(serve_feed, "/v1/invalidate", {"patterns": ["turnus_data_*"]})
    post(serve_feed, "/v1/invalidate", {"tags": ["shop:1:products"]})
    handled(warmer, 2)
    wait_until("nothing is pending", lambda: pending(cache) == 0)

    assert sorted(db.calls) == ["0", "1/7", "3"]
    assert cache.get("shop:1:product:7") == b"product 7 of shop 1"
    # Filled with its tags: the next invalidation of the tag finds it.
    assert cache.client.zscore(index_key("shop:1:products"), "shop:1:product:7") is not None
    assert cache.client.exists("shop:1:product:8", "shop:1:summary", "turnus_data_1") == 0
    stats = warmer.stats()
    assert (stats["refilled"], stats["skipped_cold"], stats["unmatched"]) == (3, 4, 1)


def test_two_warmers_in_one_group_split_the_entries_and_load_each_key_once(
    redis_node: RedisNode, serve_feed: Serve, stopping: list[Warmer]
) -> None:
    db = Database(delay=0.005)
    caches = [Cache.from_url(redis_node.url) for _ in range(2)]
    warmers = [turnus_warmer(c, db) for c in caches]
    for t in range(20):
        make_hot(caches[t % 2], f"turnus_data_{t}")
    for w in warmers:
        w.start()
        stopping.append(w)
        # Each one's reads known to the other before the first entry.
        w.flush_reads()

    for t in range(20):
        post(serve_feed, "/v1/commits", child_moved(f"t{t}", t))
    wait_until(
        "both warmers handled the 20 entries",
        lambda: sum(w.stats()["entries"] for w in warmers) == 20,
    )
    wait_until("nothing is pending", lambda: pending(caches[0]) == 0)

    assert Counter(db.calls) == {str(t): 1 for t in range(20)}
    assert sum(w.stats()["refilled"] for w in warmers) == 20
    for t in range(20):
        assert caches[0].get(f"turnus_data_{t}") == f"turnus {t} v0".encode()


def test_warmers_of_two_groups_both_see_each_entry_and_the_lease_loads_once(
    redis_node: RedisNode, serve_feed: Serve, stopping: list[Warmer]
) -> None:
    # Two groups (two applications, say) each get every entry: only the
    # lease keeps them from loading each key twice.
    db = Database(delay=0.02)
    caches = [Cache.from_url(redis_node.url) for _ in range(2)]
    warmers = [turnus_warmer(c, db, group=f"group-{i}") for i, c in enumerate(caches)]
    make_hot(caches[0], *(f"turnus_data_{t}" for t in range(10)))
    for w in warmers:
        w.start()
        stopping.append(w)
    warmers[0].flush_reads()

    post(serve_feed, "/v1/commits", child_moved("t", *range(10)))
    for w in warmers:
        handled(w, 1)
    for group in ("group-0", "group-1"):
        wait_until(f"{group} has nothing pending", lambda g=group: pending(caches[0], g) == 0)

    assert Counter(db.calls) == {str(t): 1 for t in range(10)}
    assert sum(w.stats()["refilled"] for w in warmers) == 10
    assert sum(w.stats()["skipped_busy"] for w in warmers) == 10


def test_reads_in_one_process_make_keys_hot_for_the_warmer_of_another(
    redis_node: RedisNode, stopping: list[Warmer]
) -> None:
    db = Database()
    reader_cache, warmer_cache = Cache.from_url(redis_node.url), Cache.from_url(redis_node.url)
    # The reading process only records its reads; the other warms.
    recorder = turnus_warmer(reader_cache, db, block=0.1)
    warmer = turnus_warmer(warmer_cache, db)
    recorder.start(consume=False)
    warmer.start()
    stopping += [recorder, warmer]
    reader_cache.set("turnus_data_5", b"old")
    reader_cache.set("turnus_data_6", b"old")
    assert reader_cache.get("turnus_data_5") == b"old"
    wait_until(
        "the read is recorded",
        lambda: warmer_cache.client.zscore(DEFAULT_HOT_KEY, "turnus_data_5") is not None,
    )
    add_entry(warmer_cache, ["turnus_data_5", "turnus_data_6"])
    handled(warmer, 1)
    assert db.calls == ["5"]
    assert warmer_cache.get("turnus_data_5") == b"turnus 5 v0"
    assert recorder.stats()["entries"] == 0
    # A key is recorded once per hot_for / 4, however often it is read.
    for _ in range(100):
        reader_cache.get("turnus_data_5")
    assert recorder.flush_reads() == 0


def test_a_key_read_longer_ago_than_hot_for_is_cold(cache: Cache, stopping: list[Warmer]) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db, hot_for=0.3)
    make_hot(cache, "turnus_data_1")
    warmer.flush_reads()
    assert warmer.hot(["turnus_data_1", "turnus_data_2"]) == [True, False]
    deadline = time.monotonic() + 5
    while warmer.hot(["turnus_data_1"]) == [True]:
        assert time.monotonic() < deadline, "the read stayed hot"
        time.sleep(0.05)
    warmer.start()
    stopping.append(warmer)
    add_entry(cache, ["turnus_data_1"])
    handled(warmer, 1)
    assert db.calls == []
    assert warmer.stats()["skipped_cold"] == 1


def test_warm_fills_the_keys_of_a_template_for_the_ids_given(cache: Cache) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db)
    calls = []

    @warmer.loader("offers:{shop}:{id}", ttl=60, tags=["offers"])
    def offer(shop: str, id: str) -> bytes:
        calls.append((shop, id))
        return f"offer {shop}/{id}".encode()

    cache.set("turnus_data_2", b"there already")
    assert warmer.warm("turnus_data_{id}", [1, 2, "3", 1]) == 2
    assert sorted(db.calls) == ["1", "3"]
    assert cache.get("turnus_data_2") == b"there already"
    assert warmer.warm("turnus_data_*", [4]) == 1
    assert warmer.warm("offers:*:*", [{"shop": 1, "id": 9}, {"shop": "2", "id": "9"}]) == 2
    assert sorted(calls) == [("1", "9"), ("2", "9")]
    assert cache.get("offers:1:9") == b"offer 1/9"
    assert cache.client.zscore(index_key("offers"), "offers:2:9") is not None
    stats = warmer.stats()
    assert (stats["warmed"], stats["skipped_busy"], stats["refilled"]) == (5, 1, 0)
    # Warming is not reading: what was warmed and not read is not hot.
    warmer.flush_reads()
    hot = cache.client.zrange(DEFAULT_HOT_KEY, 0, -1)
    assert sorted(hot) == [b"offers:1:9", b"turnus_data_2"]

    with pytest.raises(InvalidInput, match=r"no loader for template `nope_\{id\}`"):
        warmer.warm("nope_{id}", [1])
    with pytest.raises(InvalidInput, match=r"id 9 \(int\) of template `offers:\{shop\}:\{id\}`"):
        warmer.warm("offers:{shop}:{id}", [9])
    with pytest.raises(InvalidInput, match=r"missing \['id'\]"):
        warmer.warm("offers:{shop}:{id}", [{"shop": 1}])
    with pytest.raises(InvalidInput, match="give a list of ids"):
        warmer.warm("turnus_data_{id}", "123")
    with pytest.raises(InvalidInput, match=r"id None \(NoneType\)"):
        warmer.warm("turnus_data_{id}", [None])


def test_warm_tag_fills_the_keys_its_index_lists(cache: Cache) -> None:
    warmer = Warmer(cache, feed=FEED)
    loaded = []

    @warmer.loader("shop:{shop}:product:{id}", tags=lambda shop, id: [f"shop:{shop}:products"])
    def product(shop: str, id: str) -> str:
        loaded.append(id)
        return f"product {id}"

    for i in range(4):
        cache.set(f"shop:1:product:{i}", b"v", tags=["shop:1:products"])
    cache.set("shop:1:summary", b"v", tags=["shop:1:products"])
    cache.set("shop:2:product:9", b"v", tags=["shop:2:products"])
    # Evicted, say: gone from Redis, still listed by the tag.
    cache.client.delete("shop:1:product:1", "shop:1:product:3", "shop:1:summary")

    assert warmer.warm_tag("shop:1:products") == 2
    assert sorted(loaded) == ["1", "3"]
    assert cache.get("shop:1:product:3") == b"product 3"
    assert cache.client.exists("shop:1:summary") == 0
    assert warmer.warm_tag("no-such-tag") == 0
    with pytest.raises(InvalidInput, match=r"tag '' \(str\) is empty"):
        warmer.warm_tag("")


def test_fills_are_rate_limited(cache: Cache, stopping: list[Warmer]) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db, rate=20, burst=1)
    began = time.monotonic()
    assert warmer.warm("turnus_data_{id}", range(10)) == 10
    # One token at once, then one every 1/20 s.
    assert time.monotonic() - began >= 9 / 20
    # Those that waited for their token (all but the first, unless the
    # thread was held up as long as a token takes to come).
    assert 0 < warmer.stats()["rate_limited"] <= 9

    # The feed's fills too (a warmer of its own, its bucket full).
    warmer = turnus_warmer(cache, db, rate=20, burst=1)
    make_hot(cache, *(f"turnus_data_{t}" for t in range(10, 20)))
    warmer.start()
    stopping.append(warmer)
    began = time.monotonic()
    add_entry(cache, [f"turnus_data_{t}" for t in range(10, 20)])
    handled(warmer, 1)
    wait_until("nothing is pending", lambda: pending(cache) == 0)
    assert time.monotonic() - began >= 9 / 20
    stats = warmer.stats()
    assert stats["refilled"] == 10
    assert 0 < stats["rate_limited"] <= 9


def test_a_busy_key_costs_no_token(cache: Cache) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db, rate=1, burst=1)
    for t in range(5):
        cache.set(f"turnus_data_{t}", b"there")
    began = time.monotonic()
    assert warmer.warm("turnus_data_{id}", range(5)) == 0
    assert warmer.warm("turnus_data_{id}", [9]) == 1
    assert time.monotonic() - began < 0.9
    assert warmer.stats()["rate_limited"] == 0


def test_loader_errors_are_counted_and_the_thread_goes_on(
    cache: Cache, stopping: list[Warmer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "invalidator.warmer")
    warmer = Warmer(cache, feed=FEED)

    @warmer.loader("turnus_data_{id}")
    def load(id: str) -> Any:
        if id == "1":
            raise RuntimeError("the database is down for turnus 1")
        if id == "2":
            return 42  # not bytes or text
        return f"turnus {id}"

    make_hot(cache, *(f"turnus_data_{t}" for t in (1, 2, 3, 4)))
    warmer.start()
    stopping.append(warmer)
    add_entry(cache, ["turnus_data_1", "turnus_data_2", "turnus_data_3"])
    add_entry(cache, ["turnus_data_4"])
    handled(warmer, 2)
    wait_until("nothing is pending", lambda: pending(cache) == 0)
    assert cache.get("turnus_data_3") == b"turnus 3"
    assert cache.get("turnus_data_4") == b"turnus 4"
    assert cache.client.exists("turnus_data_1", "turnus_data_2") == 0
    stats = warmer.stats()
    assert (stats["loader_errors"], stats["refilled"]) == (2, 2)
    assert warmer.running
    assert "the database is down for turnus 1" in caplog.text


def test_entries_that_list_part_of_what_they_removed_warm_what_they_list(
    cache: Cache, stopping: list[Warmer]
) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db)
    make_hot(cache, *(f"turnus_data_{t}" for t in range(3)))
    warmer.start()
    stopping.append(warmer)
    add_entry(cache, ["turnus_data_0", "turnus_data_1"], removed_count=3)
    cache.client.delete("turnus_data_2")  # removed, not listed
    handled(warmer, 1)
    wait_until("nothing is pending", lambda: pending(cache) == 0)
    assert sorted(db.calls) == ["0", "1"]
    assert warmer.stats()["cut_entries"] == 1


def test_an_entry_that_cannot_be_read_is_skipped_and_acknowledged(
    cache: Cache, stopping: list[Warmer]
) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db)
    make_hot(cache, "turnus_data_1")
    warmer.start()
    stopping.append(warmer)
    cache.client.xadd(FEED, {"at": "1", "removed": "[not json"})
    cache.client.xadd(FEED, {"at": "1", "removed": json.dumps({"a": 1})})
    add_entry(cache, ["turnus_data_1"])
    handled(warmer, 3)
    wait_until("nothing is pending", lambda: pending(cache) == 0)
    assert db.calls == ["1"]
    assert warmer.stats()["bad_entries"] == 2


def test_entries_left_pending_by_a_dead_consumer_are_claimed(
    cache: Cache, stopping: list[Warmer]
) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db, claim_after=0.2)
    # Delivered to a consumer that dies before acknowledging it.
    left_pending(cache, "dead")
    warmer.start()
    stopping.append(warmer)
    handled(warmer, 1)
    wait_until("nothing is pending", lambda: pending(cache) == 0)
    assert db.calls == ["1"]
    assert warmer.stats()["claimed"] == 1


def test_a_named_consumer_handles_its_own_pending_entries_when_it_starts_again(
    cache: Cache, stopping: list[Warmer]
) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db, consumer="warmer-a")
    # Given to warmer-a, which stopped (or died) before acknowledging it.
    left_pending(cache, "warmer-a")
    warmer.start()
    stopping.append(warmer)
    handled(warmer, 1)
    wait_until("nothing is pending", lambda: pending(cache) == 0)
    assert db.calls == ["1"]
    assert warmer.stats()["claimed"] == 0


def test_a_feed_deleted_under_a_running_warmer_is_made_again(
    cache: Cache, stopping: list[Warmer]
) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db)
    make_hot(cache, "turnus_data_1")
    warmer.start()
    stopping.append(warmer)
    cache.client.delete(FEED)
    wait_until(
        "the group is made again",
        lambda: cache.client.exists(FEED) and cache.client.xinfo_groups(FEED),
    )
    add_entry(cache, ["turnus_data_1"])
    handled(warmer, 1)
    assert db.calls == ["1"]


def test_the_warmer_rides_out_a_redis_restart(redis_node: RedisNode) -> None:
    db = Database()
    cache = Cache.from_url(redis_node.url)
    warmer = turnus_warmer(cache, db, block=0.2)
    make_hot(cache, "turnus_data_1")
    warmer.start()
    try:
        redis_node.process.kill()
        redis_node.process.wait()
        wait_until("the warmer saw Redis go", lambda: warmer.stats()["redis_errors"] > 0)
        # Back empty, on the same port: the group is made again.
        restarted = RedisNode(port=redis_node.port)
        try:
            wait_until(
                "the group is made again",
                lambda: cache.client.exists(FEED) and cache.client.xinfo_groups(FEED),
            )
            add_entry(cache, ["turnus_data_1"])
            handled(warmer, 1)
            assert db.calls == ["1"]
            assert cache.get("turnus_data_1") == b"turnus 1 v0"
            assert warmer.running
        finally:
            warmer.stop()
            restarted.stop()
    finally:
        warmer.stop()


def test_stop_ends_the_thread_and_the_consumer_leaves_the_group(cache: Cache) -> None:
    warmer = turnus_warmer(cache, Database(), block=2.0)
    warmer.start()
    assert warmer.running
    names = [t.name for t in threading.enumerate()]
    assert f"invalidator-warmer-{warmer.consumer}" in names
    # A consumer joins its group when it is first given an entry.
    add_entry(cache, ["turnus_data_1"])
    handled(warmer, 1)
    consumers = cache.client.xinfo_consumers(FEED, "invalidator-warmers")
    assert [c["name"].decode() for c in consumers] == [warmer.consumer]
    # Within the blocked read (2 s) and a bounded wait.
    began = time.monotonic()
    assert warmer.stop()
    assert time.monotonic() - began < 15
    assert not warmer.running
    assert f"invalidator-warmer-{warmer.consumer}" not in [t.name for t in threading.enumerate()]
    assert cache.client.xinfo_consumers(FEED, "invalidator-warmers") == []
    # It can start again.
    warmer.start()
    assert warmer.running
    assert warmer.stop()


def test_run_works_in_the_foreground_until_stop(cache: Cache) -> None:
    db = Database()
    warmer = turnus_warmer(cache, db, block=0.2)
    make_hot(cache, "turnus_data_1")
    thread = threading.Thread(target=warmer.run)
    thread.start()
    try:
        wait_until("the group is made", lambda: cache.client.exists(FEED))
        add_entry(cache, ["turnus_data_1"])
        handled(warmer, 1)
        assert db.calls == ["1"]
    finally:
        warmer.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert not warmer.running


def test_a_warmer_on_a_cluster(redis_cluster: str, stopping: list[Warmer]) -> None:
    cache = Cache.from_url(redis_cluster)
    db = Database()
    feed = "inv:feed:cluster"
    warmer = Warmer(cache, feed=feed, group="cluster-warmers")
    warmer.loader("cl:turnus_data_{id}")(db.load)
    keys = [f"cl:turnus_data_{t}" for t in range(6)]
    make_hot(cache, *keys)
    warmer.start()
    stopping.append(warmer)
    add_entry(cache, keys[:3], feed=feed)
    handled(warmer, 1)
    assert sorted(db.calls) == ["0", "1", "2"]
    assert cache.get("cl:turnus_data_1") == b"turnus 1 v0"
    assert warmer.warm("cl:turnus_data_*", range(6)) == 0
    cache.delete(keys[5])
    assert warmer.warm("cl:turnus_data_*", range(6)) == 1


def test_what_a_warmer_is_given_is_checked(cache: Cache) -> None:
    with pytest.raises(InvalidInput, match="feed is '' "):
        Warmer(cache, feed="")
    with pytest.raises(InvalidInput, match="cache is 'redis://x'"):
        Warmer("redis://x", feed=FEED)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="hot_for is 0"):
        Warmer(cache, feed=FEED, hot_for=0)
    with pytest.raises(InvalidInput, match=r"rate is True \(bool\)"):
        Warmer(cache, feed=FEED, rate=True)
    with pytest.raises(InvalidInput, match=re.escape("burst 0.5 is less than one fill")):
        Warmer(cache, feed=FEED, burst=0.5)
    with pytest.raises(InvalidInput, match=r"concurrency is 0 \(int\)"):
        Warmer(cache, feed=FEED, concurrency=0)
    warmer = Warmer(cache, feed=FEED)
    with pytest.raises(InvalidInput, match=r"key template `turnus_\{id` has"):
        warmer.loader("turnus_{id")
    with pytest.raises(InvalidInput, match=re.escape("ttl of template `t_{id}` is -1")):
        warmer.loader("t_{id}", ttl=-1)
    with pytest.raises(InvalidInput, match=re.escape("`t_{id}` is the string 'abc'")):
        warmer.loader("t_{id}", tags="abc")  # type: ignore[arg-type]
    warmer.loader("t_{id}")(lambda id: id)
    with pytest.raises(InvalidInput, match=r"template `t_\{id\}` already has a loader"):
        warmer.loader("t_{id}")(lambda id: id)
    assert warmer.templates == ["t_{id}"]
    warmer.start()
    try:
        with pytest.raises(InvalidatorError, match="already running"):
            warmer.start()
    finally:
        warmer.stop()


def test_a_warmer_that_is_not_running_notes_a_bounded_number_of_reads(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built only to `warm`, never started: nothing writes its notes out,
    # and they used to grow with every key read.
    import invalidator.warmer as warmer_module

    monkeypatch.setattr(warmer_module, "MAX_NOTED", 10)
    warmer = turnus_warmer(cache, Database())
    for id in range(50):
        cache.get(f"turnus_data_{id}")
    assert len(warmer._pending) <= 10
    assert len(warmer._recorded) <= 10
