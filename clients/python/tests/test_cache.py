"""The cache client against real Redis servers, and against the host: a
tag written here is invalidated by `invalidator serve`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, free_port, wait_until

from invalidator import Cache, InvalidInput, index_key

HOST_LUA = ROOT / "host/src/sink/lua"
PACKAGE_LUA = Path(__file__).resolve().parents[1] / "src/invalidator/lua"


def test_the_bundled_scripts_are_the_hosts_own() -> None:
    bundled = sorted(p.name for p in PACKAGE_LUA.glob("*.lua"))
    assert bundled == [
        "index_add.lua",
        "lease_fill.lua",
        "lease_release.lua",
        "lease_take.lua",
        "tag_chunk.lua",
        "tagged_set.lua",
    ]
    for name in bundled:
        assert (PACKAGE_LUA / name).read_bytes() == (HOST_LUA / name).read_bytes(), (
            f"{name} differs from the host's copy: copy host/src/sink/lua/{name} over it"
        )


@pytest.fixture(params=["single", "cluster"])
def cache(request: pytest.FixtureRequest) -> Cache:
    if request.param == "single":
        return Cache.from_url(request.getfixturevalue("redis_node").url)
    return Cache.from_url(request.getfixturevalue("redis_cluster"))


def test_set_get_delete_with_a_ttl_and_tags(cache: Cache) -> None:
    cache.set("py:offer:1", b"{}", ttl=60, tags=["offers:vehicle:A", "inventory"])
    assert cache.get("py:offer:1") == b"{}"
    client = cache.client
    for tag in ("offers:vehicle:A", "inventory"):
        score = client.zscore(index_key(tag), "py:offer:1")
        assert score is not None, f"the key is indexed under {tag}"
    ttl_ms = client.pttl("py:offer:1")
    assert 0 < ttl_ms <= 60_000
    assert cache.delete("py:offer:1") is True
    assert cache.get("py:offer:1") is None
    assert cache.delete("py:offer:1") is False
    cache.set("py:plain", "text")
    assert cache.get("py:plain") == b"text"
    assert client.pttl("py:plain") == -1, "no ttl means no expiry"


@pytest.mark.parametrize(
    ("key", "ttl", "tags", "named"),
    [
        ("inv:tag:x", None, (), "inv:tag:x"),
        ("k", 0, (), "ttl of key `k`"),
        ("k", -1, (), "ttl of key `k`"),
        ("k", 10**10, (), "100 years"),
        ("k", None, ("",), "tag ''"),
    ],
)
def test_bad_input_is_refused_before_anything_is_stored(
    redis_node: object, key: str, ttl: float | None, tags: tuple[str, ...], named: str
) -> None:
    cache = Cache.from_url(redis_node.url)  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match=named.replace("(", r"\(")):
        cache.set(key, b"v", ttl=ttl, tags=tags)
    assert cache.client.dbsize() == 0


def test_a_url_that_is_not_redis_is_named() -> None:
    with pytest.raises(InvalidInput, match="http://x"):
        Cache.from_url("http://x")


def test_a_redis_that_is_down_raises_and_stores_nothing() -> None:
    import redis

    # Reads raise only when not failing open (test_fail_open.py: the default).
    url = f"redis://127.0.0.1:{free_port()}"
    cache = Cache.from_url(url, fail_open=False, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        cache.set("k", b"v", tags=["t"])
    with pytest.raises(redis.ConnectionError):
        cache.get("k")


def test_the_host_invalidates_a_tag_written_here(serve: object, redis_node: object) -> None:
    cache = Cache.from_url(redis_node.url)  # type: ignore[attr-defined]
    cache.set("offer:1", b"{}", ttl=600, tags=["offers:vehicle:VIN-A"])
    cache.set("offer:2", b"{}", ttl=600, tags=["offers:vehicle:VIN-B"])
    body = json.dumps({"tags": ["offers:vehicle:VIN-A"]}).encode()
    request = urllib.request.Request(
        serve.url + "/v1/invalidate",
        data=body,
        method="POST",  # type: ignore[attr-defined]
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202
    wait_until("the tagged key is gone", lambda: cache.get("offer:1") is None)
    assert cache.get("offer:2") == b"{}", "the other tag's key stays"
    assert not cache.client.exists(index_key("offers:vehicle:VIN-A"))
