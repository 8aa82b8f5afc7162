"""Publishers against a real `invalidator serve`: commits posted over HTTP
or added to a Redis stream invalidate the keys their rules name."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Serve, free_port, wait_until

from invalidator import Cache, InvalidInput, Publisher, ServerError


def geld(i: int) -> dict[str, Any]:
    """A payment the turnus rule turns into the key `turnus_data_{i}`."""
    return {
        "txn": f"t{i}",
        "writes": [
            {"table": "geld", "op": "insert", "key": {"id": i}, "after": {"id": i, "turnus_id": i}}
        ],
    }


def test_commits_posted_over_http_invalidate_their_keys(serve: Serve, redis_node: Any) -> None:
    cache = Cache.from_url(redis_node.url)
    for i in range(3):
        cache.set(f"turnus_data_{i}", b"page")
    cache.set("unrelated", b"x")
    publisher = Publisher.http(serve.url)
    publisher.publish(geld(0))
    publisher.publish_many([geld(1), geld(2)])
    wait_until(
        "every key is gone",
        lambda: all(cache.get(f"turnus_data_{i}") is None for i in range(3)),
    )
    assert cache.get("unrelated") == b"x"


def test_commits_added_to_a_stream_invalidate_their_keys(redis_node: Any) -> None:
    service = Serve(redis_node.url, ["--stream", "commits"])
    try:
        cache = Cache.from_url(redis_node.url)
        cache.set("turnus_data_7", b"page")
        Publisher.stream(redis_node.url, "commits").publish(geld(7))
        wait_until("the key is gone", lambda: cache.get("turnus_data_7") is None)
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("commit", "named"),
    [
        ("not a commit", "not a mapping"),
        ({"writes": []}, "`txn`"),
        ({"txn": "t", "writes": [{"table": "t", "op": "upsert", "key": {}}]}, "`op`"),
        ({"txn": "t", "writes": [{"table": "t", "op": "insert"}]}, "`key` is missing"),
        ({"txn": "t", "writes": [], "befor": {}}, "unknown field"),
        ({"txn": "t", "writes": [{"table": "t", "op": "insert", "key": {"id": [1]}}]}, "list"),
    ],
)
def test_something_that_is_not_a_commit_is_refused_before_anything_is_sent(
    commit: Any, named: str
) -> None:
    # Nothing listens there: a refusal that got as far as sending would be
    # a connection error instead.
    publisher = Publisher.http(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InvalidInput, match=named):
        publisher.publish(commit)
    with pytest.raises(InvalidInput, match=r"commit \[1\]"):
        publisher.publish_many([geld(1), commit])


def test_a_server_refusal_raises_with_its_code(redis_node: Any) -> None:
    secured = Serve(redis_node.url, env={"INVALIDATOR_HTTP__TOKEN": "s3cret"})
    try:
        with pytest.raises(ServerError) as refused:
            Publisher.http(secured.url).publish(geld(1))
        assert (refused.value.status, refused.value.code) == (401, "unauthorized")
        Publisher.http(secured.url, token="s3cret").publish(geld(1))
    finally:
        secured.stop()
