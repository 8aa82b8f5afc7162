"""The hit figures (`Cache.stats()`), `on_read`, `refill` and
`add_family` against real Redis servers: the counts are exactly the reads
made, per key family."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from _leases import SlowFill
from conftest import RedisNode, free_port

from invalidator import Cache, InvalidInput, LocalCache
from invalidator._stats import MAX_FAMILIES, OTHER


def figures(**counts: int) -> dict[str, int]:
    zero = dict.fromkeys(("hits", "misses", "fills", "lease_waits", "fail_opens", "local_hits"), 0)
    return {**zero, **counts}


def test_reads_are_counted_per_family(redis_node: RedisNode) -> None:
    cache = Cache.from_url(redis_node.url)
    cache.add_family("turnus_data_{id}")
    assert cache.get("turnus_data_1") is None
    cache.set("turnus_data_1", b"v")
    assert cache.get("turnus_data_1") == b"v"
    found = cache.get_many(["turnus_data_1", "turnus_data_2", "offer:1"])
    assert found == {"turnus_data_1": b"v"}
    assert cache.has_key("offer:1") is False  # not counted
    cache.set("offer:1", b"o")  # writes are not reads
    assert cache.stats() == {
        "turnus_data_{id}": figures(hits=2, misses=2),
        "offer": figures(misses=1),
    }


def test_get_or_fill_counts_hits_misses_fills_and_lease_waits(redis_node: RedisNode) -> None:
    cache = Cache.from_url(redis_node.url)
    assert cache.get_or_fill("offer:1", lambda: b"1") == b"1"  # miss, fill
    assert cache.get_or_fill("offer:1", lambda: b"x") == b"1"  # hit

    # A fill defeated by an invalidation while loading: a miss, no fill.
    def invalidated() -> bytes:
        cache.client.unlink("offer:2")
        return b"stale"

    assert cache.get_or_fill("offer:2", invalidated) == b"stale"
    assert cache.client.get("offer:2") is None

    # Another caller's lease: this one waits for its value.
    other = Cache.from_url(redis_node.url)
    filler = SlowFill(other, "offer:3", b"theirs")
    threading.Timer(0.1, filler.release).start()
    assert cache.get_or_fill("offer:3", lambda: b"mine", wait=10) == b"theirs"
    filler.join()
    assert cache.stats() == {"offer": figures(hits=1, misses=3, fills=1, lease_waits=1)}
    assert other.stats() == {"offer": figures(misses=1, fills=1)}


def test_refill_fills_only_an_empty_key_and_counts_a_fill(redis_node: RedisNode) -> None:
    cache = Cache.from_url(redis_node.url)
    calls: list[str] = []

    def loader(value: bytes) -> Any:
        def load() -> bytes:
            calls.append(value.decode())
            return value

        return load

    assert cache.refill("offer:1", loader(b"a"), ttl=60, tags=["offers"]) is True
    assert cache.get("offer:1") == b"a"
    assert 0 < cache.client.pttl("offer:1") <= 60_000
    assert cache.client.zscore("inv:tag:offers", "offer:1") is not None
    # A value there: not loaded.
    assert cache.refill("offer:1", loader(b"b")) is False
    # Someone's lease there: not loaded.
    filler = SlowFill(cache, "offer:2", b"theirs")
    assert cache.refill("offer:2", loader(b"c")) is False
    filler.release()
    filler.join()
    assert calls == ["a"]
    # A lease defeated while loading: loaded, not stored.

    def invalidated() -> bytes:
        cache.client.unlink("offer:3")
        return b"stale"

    assert cache.refill("offer:3", invalidated) is False
    assert cache.client.get("offer:3") is None
    # The loader's mistakes are refused, its lease given back.
    with pytest.raises(InvalidInput, match="the value the loader of key `offer:4` returned"):
        cache.refill("offer:4", lambda: None)  # type: ignore[arg-type, return-value]
    assert cache.client.get("offer:4") is None
    with pytest.raises(InvalidInput, match="loader of key `offer:4` is 'x'"):
        cache.refill("offer:4", "x")  # type: ignore[arg-type]
    # refill is not a read: one get of offer:1, one get_or_fill miss of
    # offer:2; two fills (offer:1, offer:2).
    assert cache.stats() == {"offer": figures(hits=1, misses=1, fills=2)}


def test_reads_that_fail_open_are_counted(redis_node: RedisNode) -> None:
    down = Cache.from_url(f"redis://127.0.0.1:{free_port()}")
    assert down.get("offer:1") is None
    assert down.get_many(["offer:1", "turnus_data_1"]) == {}
    loads: list[int] = []
    assert down.get_or_fill("offer:2", lambda: loads.append(1) or b"db") == b"db"
    assert down.refill("offer:3", lambda: loads.append(1) or b"db") is False
    assert loads == [1], "the refill's loader ran"
    assert down.stats() == {
        "offer": figures(misses=3, fail_opens=3),
        "turnus": figures(misses=1, fail_opens=1),
    }
    # A Redis that stops between the lease and the fill.
    node = RedisNode()
    cache = Cache.from_url(node.url)

    def stop_redis() -> bytes:
        node.stop()
        return b"db"

    assert cache.get_or_fill("offer:4", stop_redis) == b"db"
    assert cache.stats() == {"offer": figures(misses=1, fail_opens=1)}


def test_near_cache_hits_are_hits_and_local_hits(redis_node: RedisNode) -> None:
    local = LocalCache()
    cache = Cache.from_url(redis_node.url, local=local)
    cache.set("offer:1", b"v")
    assert local.wait_tracking(10)
    while local.peek("offer:1") is None:  # held once no push races the read
        assert cache.get("offer:1") == b"v"
    reads = cache.stats()["offer"]["hits"]
    assert cache.get("offer:1") == b"v"
    assert cache.get_many(["offer:1", "offer:2"]) == {"offer:1": b"v"}
    assert cache.get_or_fill("offer:1", lambda: b"x") == b"v"
    assert cache.stats() == {"offer": figures(hits=reads + 3, misses=1, local_hits=3)}
    local.close()


def test_family_separators_and_the_cap(redis_node: RedisNode) -> None:
    cache = Cache.from_url(redis_node.url, family_separators=":")
    cache.get("turnus_data_1")
    cache.get("offer:1_a")
    assert set(cache.stats()) == {"turnus_data_1", "offer"}
    with pytest.raises(InvalidInput, match="family_separators is 1"):
        Cache.from_url(redis_node.url, family_separators=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"key template `turnus_\{id` has"):
        cache.add_family("turnus_{id")

    many = Cache.from_url(redis_node.url)
    keys = [f"k{i}" for i in range(MAX_FAMILIES + 5)]
    many.get_many(keys)
    stats = many.stats()
    assert len(stats) == MAX_FAMILIES + 1
    assert stats[OTHER] == figures(misses=5)
    assert stats["k0"] == figures(misses=1)


def test_on_read_tells_each_key_read_and_survives_a_failing_callback(
    redis_node: RedisNode, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache.from_url(redis_node.url)
    told: list[tuple[str, bool]] = []
    cache.on_read(lambda key, hit: told.append((key, hit)))

    def broken(key: str, hit: bool) -> None:
        raise RuntimeError("callback bug")

    cache.on_read(broken)
    cache.set("a:1", b"v")
    with caplog.at_level(logging.ERROR, logger="invalidator.cache"):
        assert cache.get("a:1") == b"v"
        assert cache.get_many(["a:1", "a:2"]) == {"a:1": b"v"}
        assert cache.get_or_fill("a:3", lambda: b"3") == b"3"
        assert cache.has_key("a:1")
        cache.refill("a:4", lambda: b"4")
    assert told == [("a:1", True), ("a:1", True), ("a:2", False), ("a:3", False)]
    assert sum("callback bug" in r.getMessage() or r.exc_info is not None for r in caplog.records)
    with pytest.raises(InvalidInput, match="on_read callback is 3"):
        cache.on_read(3)  # type: ignore[arg-type]


def test_the_django_backend_gives_the_same_figures(redis_node: RedisNode) -> None:
    # Made as Django's cache handler makes it, without settings.
    from invalidator.contrib.django.cache import InvalidatorCache

    backend = InvalidatorCache(redis_node.url, {"OPTIONS": {"retry_after_seconds": 0.5}})
    backend.set("turnus_data_1", "page")
    assert backend.get("turnus_data_1") == "page"
    assert backend.get("turnus_data_2") is None
    assert backend.stats() == backend.cache.stats() == {"turnus": figures(hits=1, misses=1)}
    assert backend.health == backend.cache.health
    assert backend.health["fail_open_reads"] == 0
