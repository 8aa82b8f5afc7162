"""`get_or_fill` and its lease: a value loaded before an invalidation is
never stored after it. Invalidations come from a real `invalidator serve`
(`POST /v1/invalidate`), by key, pattern and tag, on a single node and on a
cluster."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Serve

from invalidator import Cache, index_key


@pytest.fixture(params=["single", "cluster"])
def deployment(request: pytest.FixtureRequest) -> Iterator[tuple[Cache, Serve]]:
    if request.param == "single":
        url = request.getfixturevalue("redis_node").url
    else:
        url = request.getfixturevalue("redis_cluster")
    service = Serve(url)
    cache = Cache.from_url(url)
    yield cache, service
    service.stop()
    for key in cache.client.keys("lease:*"):
        cache.client.delete(key)


def invalidate(serve: Serve, **targets: list[str]) -> None:
    """Asks `serve` to invalidate `targets`; answered once applied."""
    body = json.dumps(targets).encode()
    request = urllib.request.Request(
        serve.url + "/v1/invalidate?wait=true", data=body, method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["applied"] is True


def test_a_miss_is_loaded_and_stored_and_a_hit_is_not_loaded(
    deployment: tuple[Cache, Serve],
) -> None:
    cache, _ = deployment
    calls = []

    def load() -> bytes:
        calls.append(1)
        return b"row v1"

    assert cache.get_or_fill("lease:a", load, ttl=60, tags=["t:a"]) == b"row v1"
    assert cache.get_or_fill("lease:a", load, ttl=60, tags=["t:a"]) == b"row v1"
    assert len(calls) == 1
    assert cache.get("lease:a") == b"row v1"
    assert cache.client.zscore(index_key("t:a"), "lease:a") is not None
    assert 0 < cache.client.pttl("lease:a") <= 60_000


@pytest.mark.parametrize(
    "targets",
    [
        {"keys": ["lease:b"]},
        {"patterns": ["lease:*"]},
        {"tags": ["t:b"]},
    ],
    ids=["key", "pattern", "tag"],
)
def test_an_invalidation_while_loading_defeats_the_lease(
    deployment: tuple[Cache, Serve], targets: dict[str, list[str]]
) -> None:
    cache, serve = deployment

    def load_then_a_commit_lands() -> bytes:
        value = b"read before the commit"
        invalidate(serve, **targets)
        return value

    got = cache.get_or_fill("lease:b", load_then_a_commit_lands, ttl=60, tags=["t:b"])
    assert got == b"read before the commit", "the caller still gets what it loaded"
    assert cache.get("lease:b") is None, f"{targets} came after the read: nothing is stored"
    assert cache.get_or_fill("lease:b", lambda: b"fresh", tags=["t:b"]) == b"fresh"
    assert cache.get("lease:b") == b"fresh"


def test_concurrent_misses_wait_for_the_holders_value(deployment: tuple[Cache, Serve]) -> None:
    cache, serve = deployment
    started = threading.Event()
    results: list[bytes] = []

    def slow() -> bytes:
        started.set()
        time.sleep(0.2)
        return b"loaded once"

    holder = threading.Thread(target=lambda: results.append(cache.get_or_fill("lease:c", slow)))
    holder.start()
    started.wait(5)
    # Under a lease the key holds a marker, which no reader takes for a
    # value: not this client, nor the host's HTTP cache endpoint.
    assert cache.get("lease:c") is None
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(serve.url + "/v1/cache/lease:c", timeout=10)
    assert missing.value.code == 404
    others: list[Any] = []

    def never() -> bytes:
        others.append(1)
        return b"loaded again"

    assert cache.get_or_fill("lease:c", never, wait=5) == b"loaded once"
    holder.join()
    assert results == [b"loaded once"] and others == []


def test_a_miss_that_waits_too_long_loads_without_storing(
    deployment: tuple[Cache, Serve],
) -> None:
    cache, _ = deployment
    started = threading.Event()

    def slow() -> bytes:
        started.set()
        time.sleep(0.3)
        return b"holder's"

    holder = threading.Thread(target=lambda: cache.get_or_fill("lease:d", slow))
    holder.start()
    started.wait(5)
    assert cache.get_or_fill("lease:d", lambda: b"impatient", wait=0.01) == b"impatient"
    holder.join()
    assert cache.get("lease:d") == b"holder's", "the impatient caller stored nothing"


def test_a_failing_loader_gives_the_lease_back(deployment: tuple[Cache, Serve]) -> None:
    cache, _ = deployment

    def fail() -> bytes:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get_or_fill("lease:e", fail)
    assert cache.client.get("lease:e") is None, "the lease marker is gone"
    assert cache.get_or_fill("lease:e", lambda: "ok") == b"ok"
