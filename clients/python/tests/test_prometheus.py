"""`invalidator.contrib.prometheus`: a cache's figures and a warmer's
counters, scraped from a registry, are exactly what was done against a
real Redis."""

from __future__ import annotations

import pytest
from conftest import RedisNode
from prometheus_client import CollectorRegistry, generate_latest

from invalidator import Cache, InvalidInput, Warmer
from invalidator.contrib.prometheus import CacheCollector, register


def scrape(registry: CollectorRegistry) -> list[str]:
    return generate_latest(registry).decode().splitlines()


def test_a_caches_figures_are_exported_per_family(redis_node: RedisNode) -> None:
    cache = Cache.from_url(redis_node.url)
    warmer = Warmer(cache, feed="inv:feed")
    warmer.loader("turnus_data_{id}")(lambda id: f"turnus {id}")
    registry = CollectorRegistry()
    register(cache, registry, warmer=warmer)

    cache.set("turnus_data_1", b"v")
    assert cache.get("turnus_data_1") == b"v"  # hit
    assert cache.get("turnus_data_2") is None  # miss
    assert cache.get_or_fill("turnus_data_3", lambda: b"v3") == b"v3"  # miss, fill
    assert cache.get_many(["turnus_data_1", "offers:9"]) == {"turnus_data_1": b"v"}
    assert warmer.warm("turnus_data_{id}", [4, 1]) == 1

    lines = scrape(registry)
    family = 'cache="default",family="turnus_data_{id}"'
    for line in [
        f"invalidator_cache_hits_total{{{family}}} 2.0",
        f"invalidator_cache_misses_total{{{family}}} 2.0",
        f"invalidator_cache_fills_total{{{family}}} 2.0",
        f"invalidator_cache_lease_waits_total{{{family}}} 0.0",
        f"invalidator_cache_fail_opens_total{{{family}}} 0.0",
        f"invalidator_cache_local_hits_total{{{family}}} 0.0",
        'invalidator_cache_misses_total{cache="default",family="offers"} 1.0',
        'invalidator_cache_hits_total{cache="default",family="offers"} 0.0',
        'invalidator_warmer_warmed_total{cache="default"} 1.0',
        'invalidator_warmer_skipped_busy_total{cache="default"} 1.0',
        'invalidator_warmer_refilled_total{cache="default"} 0.0',
        "# TYPE invalidator_cache_hits_total counter",
    ]:
        assert line in lines, f"{line!r} not in the scrape:\n" + "\n".join(lines)

    # Read at each scrape: later reads show at the next.
    cache.get("turnus_data_1")
    assert f"invalidator_cache_hits_total{{{family}}} 3.0" in scrape(registry)


def test_several_caches_share_the_registrys_collector(redis_node: RedisNode) -> None:
    first, second = Cache.from_url(redis_node.url), Cache.from_url(redis_node.url)
    registry = CollectorRegistry()
    collector = register(first, registry)
    assert register(second, registry, name="sessions") is collector
    first.get("a:1")
    second.get("a:1")
    second.get("a:2")
    lines = scrape(registry)
    assert 'invalidator_cache_misses_total{cache="default",family="a"} 1.0' in lines
    assert 'invalidator_cache_misses_total{cache="sessions",family="a"} 2.0' in lines
    # No warmer: no warmer metrics.
    assert not [line for line in lines if "invalidator_warmer_" in line]
    assert sum(line.startswith("# TYPE invalidator_cache_misses_total") for line in lines) == 1

    with pytest.raises(InvalidInput, match="a cache named 'sessions' is already exported"):
        register(second, registry, name="sessions")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(CacheCollector(first, "again"))
    with pytest.raises(InvalidInput, match=r"cache is 'redis://x' \(str\)"):
        register("redis://x", registry, name="x")  # type: ignore[arg-type]
