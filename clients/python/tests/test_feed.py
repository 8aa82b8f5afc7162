"""`serve --feed`: one entry per applied batch in a Redis stream, listing
the keys it removed, whether named as keys, found by a pattern's sweep or
under a tag; what a warmer reads."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import RedisNode, Serve, wait_until

from invalidator import Cache

FEED = "inv:feed"
ORIGIN_FIELDS = {"txn", "source", "rule", "version", "cause", "failed"}


@pytest.fixture
def serve_feed(redis_node: RedisNode) -> Iterator[Serve]:
    """`serve` writing its feed to `FEED`, listing at most 3 keys found by
    patterns and tags per entry."""
    service = Serve(redis_node.url, ["--feed", FEED, "--feed-keys", "3"])
    yield service
    service.stop()


def post(serve: Serve, path: str, body: Any) -> None:
    request = urllib.request.Request(
        f"{serve.url}{path}?wait=true", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def entries(cache: Cache) -> list[dict[str, Any]]:
    """The feed's entries, their JSON fields read."""
    found = []
    for entry_id, raw in cache.client.xrange(FEED):
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        for name in ("origins", "keys", "patterns", "tags", "removed"):
            fields[name] = json.loads(fields[name])
        fields["id"] = entry_id.decode()
        found.append(fields)
    return found


def entry_with(cache: Cache, field: str, target: str) -> dict[str, Any]:
    """The entry whose `field` names `target`, once written (the feed is
    written after the batch is applied, by a task of its own)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [e for e in entries(cache) if target in e[field]]
        return bool(found)

    wait_until(f"an entry with {target} in its {field}", written)
    assert len(found) == 1, found
    return found[0]


def test_the_feed_lists_the_keys_removed_by_key_pattern_and_tag(
    redis_node: RedisNode, serve_feed: Serve
) -> None:
    cache = Cache.from_url(redis_node.url)
    began = int(time.time() * 1000)

    # By key: only the keys that existed are listed as removed.
    cache.set("turnus_data_1", b"page")
    post(
        serve_feed,
        "/v1/commits",
        {
            "txn": "t-key",
            "source": "app",
            "writes": [
                {"table": "kinder", "op": "insert", "key": {"id": 1}, "after": {"turnus_id": 1}},
                {"table": "kinder", "op": "insert", "key": {"id": 2}, "after": {"turnus_id": 99}},
            ],
        },
    )
    by_key = entry_with(cache, "keys", "turnus_data_1")
    assert sorted(by_key["keys"]) == ["turnus_data_1", "turnus_data_99"]
    assert (by_key["patterns"], by_key["tags"]) == ([], [])
    assert by_key["removed"] == ["turnus_data_1"]
    assert (by_key["removed_count"], by_key["cut"]) == ("1", "0")
    assert began <= int(by_key["at"]) <= int(time.time() * 1000)
    turnus = [o for o in by_key["origins"] if o["rule"] == "turnus"]
    assert turnus, by_key["origins"]
    assert set(turnus[0]) == ORIGIN_FIELDS
    assert (turnus[0]["txn"], turnus[0]["source"], turnus[0]["cause"]) == ("t-key", "app", "rule")
    assert turnus[0]["failed"] is False

    # By pattern: the sweep's keys, at most 3 listed, all counted.
    for i in range(2, 7):
        cache.set(f"turnus_data_{i}", b"page")
    cache.set("other_2", b"x")
    post(
        serve_feed,
        "/v1/commits",
        {
            "txn": "t-pattern",
            "writes": [{"table": "auslagerorte", "op": "update", "key": {"id": 1}, "after": {}}],
        },
    )
    by_pattern = entry_with(cache, "patterns", "turnus_data_*")
    assert len(by_pattern["removed"]) == 3
    assert set(by_pattern["removed"]) < {f"turnus_data_{i}" for i in range(2, 7)}
    assert (by_pattern["removed_count"], by_pattern["cut"]) == ("5", "1")
    assert cache.client.exists(*[f"turnus_data_{i}" for i in range(2, 7)]) == 0
    assert cache.get("other_2") == b"x"

    # A pattern that removes fewer keys than the bound lists them all.
    cache.set("user_profile_1", b"p")
    cache.set("user_profile_2", b"p")
    post(serve_feed, "/v1/invalidate", {"patterns": ["user_profile_*"]})
    manual = entry_with(cache, "patterns", "user_profile_*")
    assert sorted(manual["removed"]) == ["user_profile_1", "user_profile_2"]
    assert (manual["removed_count"], manual["cut"]) == ("2", "0")
    assert [o["cause"] for o in manual["origins"]] == ["manual"]

    # By tag: the members of its index that existed.
    cache.set("shop:1:product:7", b"p", tags=["shop:1:products"])
    cache.set("shop:1:page", b"p", tags=["shop:1:catalog"])
    cache.set("shop:2:page", b"p", tags=["shop:2:catalog"])
    post(
        serve_feed,
        "/v1/commits",
        {
            "txn": "t-tag",
            "writes": [
                {
                    "table": "products",
                    "op": "update",
                    "key": {"id": 7},
                    "after": {"id": 7, "shop_id": 1},
                }
            ],
        },
    )
    by_tag = entry_with(cache, "tags", "shop:1:products")
    assert "shop:1:catalog" in by_tag["tags"]
    assert sorted(by_tag["removed"]) == ["shop:1:page", "shop:1:product:7"]
    assert (by_tag["removed_count"], by_tag["cut"]) == ("2", "0")
    assert any(o["rule"] == "pos" and o["txn"] == "t-tag" for o in by_tag["origins"])
    assert cache.get("shop:2:page") == b"p"
