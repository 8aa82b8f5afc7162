"""`BackgroundPublisher` against a real `invalidator serve` over a real
Redis, and against a serve that hangs, refuses or is not there: publishing
never waits, what fails is retried until serve is back, what cannot be
delivered in time is counted and logged by transaction, and a full queue
drops (counted and logged) rather than grows."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pytest
from conftest import RedisNode, Serve, ServeAt, StalledPort, free_port, wait_until

from invalidator import Cache, InvalidInput, Publisher
from invalidator.background import BackgroundPublisher


def geld(i: int, txn: str | None = None) -> dict[str, Any]:
    """A payment the turnus rule turns into the key `turnus_data_{i}`."""
    return {
        "txn": txn or f"t{i}",
        "writes": [
            {"table": "geld", "op": "insert", "key": {"id": i}, "after": {"id": i, "turnus_id": i}}
        ],
    }


@pytest.fixture
def cache(redis_node: RedisNode) -> Cache:
    return Cache.from_url(redis_node.url)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_commits_are_batched_and_delivered(serve: Serve, cache: Cache) -> None:
    for i in range(300):
        cache.set(f"turnus_data_{i}", b"page")
    background = BackgroundPublisher(Publisher.http(serve.url))
    try:
        for i in range(300):
            assert background.publish(geld(i))
        assert background.flush(10), background
        assert (background.published, background.queued) == (300, 0)
        assert (background.retries, background.undelivered, background.dropped) == (0, 0, 0)
        wait_until(
            "every key is gone",
            lambda: all(cache.get(f"turnus_data_{i}") is None for i in range(300)),
        )
    finally:
        background.close()


def test_publishing_to_a_serve_that_hangs_returns_at_once_and_a_retry_delivers_when_it_is_back(
    redis_node: RedisNode, cache: Cache
) -> None:
    cache.set("turnus_data_4", b"page")
    stalled = StalledPort()
    background = BackgroundPublisher(Publisher.http(stalled.url), delivery_timeout=30)
    service = None
    try:
        started = time.perf_counter()
        assert background.publish(geld(4))
        took = time.perf_counter() - started
        assert took < 0.05, f"publish waited {took:.3f} s on a serve that hangs"
        time.sleep(0.3)  # the request is sent, and hangs
        assert background.queued == 1 and background.published == 0
        assert cache.get("turnus_data_4") == b"page"
        # The hung connection is reset, and nothing listens until serve starts.
        stalled.release()
        wait_until("a failed attempt", lambda: background.retries >= 1)
        service = ServeAt(redis_node.url, stalled.port)
        wait_until("the key is gone", lambda: cache.get("turnus_data_4") is None)
        assert background.flush(10)
        assert (background.published, background.undelivered) == (1, 0)
    finally:
        background.close()
        if service is not None:
            service.stop()


def test_a_commit_that_cannot_be_delivered_in_time_is_counted_and_logged_by_transaction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    background = BackgroundPublisher(Publisher.http(nowhere), delivery_timeout=0.6)
    try:
        started = time.monotonic()
        background.publish(geld(1, txn="order-4711"))
        background.publish({"txn": "order-4712", "writes": []})
        assert background.flush(10)
        took = time.monotonic() - started
        assert 0.6 <= took < 3, f"given up after {took:.2f} s, with a bound of 0.6 s"
        assert (background.undelivered, background.published, background.dropped) == (2, 0, 0)
        assert background.retries >= 2, "back-off from 50 ms leaves room for a few attempts"
        logged = errors(caplog)
        assert any(
            "`order-4711` (1 write to geld)" in m and "given up" in m and nowhere in m
            for m in logged
        ), logged
        assert any("`order-4712` (0 writes)" in m for m in logged), logged
    finally:
        background.close()


def test_a_full_queue_drops_counts_and_logs_instead_of_growing(
    redis_node: RedisNode, cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    stalled = StalledPort()
    background = BackgroundPublisher(Publisher.http(stalled.url), queue_size=3)
    service = None
    try:
        queued = [background.publish(geld(i, txn=f"q{i}")) for i in range(5)]
        assert queued == [True, True, True, False, False]
        assert (background.dropped, background.queued) == (2, 3)
        logged = errors(caplog)
        assert any("`q3` (1 write to geld) dropped" in m and "full (3" in m for m in logged)
        assert any("`q4`" in m for m in logged), logged
        for i in range(5):
            cache.set(f"turnus_data_{i}", b"page")
        stalled.release()
        service = ServeAt(redis_node.url, stalled.port)
        assert background.flush(15)
        assert (background.published, background.undelivered) == (3, 0)
        wait_until(
            "the queued commits' keys are gone",
            lambda: all(cache.get(f"turnus_data_{i}") is None for i in range(3)),
        )
        assert cache.get("turnus_data_3") == b"page", "a dropped commit is not sent"
    finally:
        background.close()
        if service is not None:
            service.stop()


def test_a_refusal_is_not_retried_and_only_the_refused_commit_of_a_batch_is_given_up(
    redis_node: RedisNode, cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    secured = Serve(redis_node.url, env={"INVALIDATOR_HTTP__TOKEN": "s3cret"})
    try:
        wrong = BackgroundPublisher(Publisher.http(secured.url, token="wrong"))
        wrong.publish(geld(1, txn="unauthorized-1"))
        assert wrong.flush(5)
        assert (wrong.undelivered, wrong.retries, wrong.published) == (1, 0, 0)
        assert any("`unauthorized-1`" in m and "401 unauthorized" in m for m in errors(caplog))
        wrong.close()

        for i in range(8):
            cache.set(f"turnus_data_{i}", b"page")
        right = BackgroundPublisher(Publisher.http(secured.url, token="s3cret"))
        # An insert without `after`: our check lets it pass, serve refuses
        # it (400), and with it the whole request it is in.
        refused = {"txn": "no-after", "writes": [{"table": "geld", "op": "insert", "key": {}}]}
        # Queued together, so that they go in one batch: the thread waits
        # on the lock held here.
        with right._lock:
            for i in range(8):
                right._queue.append(_queued(right, geld(i)))
                if i == 5:
                    right._queue.append(_queued(right, refused))
        right.publish(geld(8))
        assert right.flush(10)
        assert (right.published, right.undelivered, right.retries) == (9, 1, 0)
        assert any("`no-after`" in m and "insert needs `after`" in m for m in errors(caplog))
        wait_until(
            "every other commit's key is gone",
            lambda: all(cache.get(f"turnus_data_{i}") is None for i in range(8)),
        )
        right.close()
    finally:
        secured.stop()


def _queued(background: BackgroundPublisher, commit: dict[str, Any]) -> Any:
    from invalidator.background import _Queued

    return _Queued(commit, time.monotonic() + background.delivery_timeout, checked=True)


def test_close_gives_up_what_is_left_and_later_publishes_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stalled = StalledPort()
    background = BackgroundPublisher(Publisher.http(stalled.url))
    try:
        background.publish(geld(1, txn="left-1"))
        background.publish(geld(2, txn="left-2"))
        started = time.monotonic()
        assert background.close(timeout=0.3) is False
        assert time.monotonic() - started < 2
        assert (background.undelivered, background.queued) == (2, 0)
        logged = errors(caplog)
        closed = "still queued when the publisher closed"
        assert any("`left-1`" in m and closed in m for m in logged), logged
        assert any("`left-2`" in m for m in logged), logged
        assert background.publish(geld(3, txn="late")) is False
        assert background.dropped == 1
        assert any("`late`" in m and "closed" in m for m in errors(caplog))
    finally:
        stalled.release()


def test_a_forked_child_publishes_through_a_thread_of_its_own(serve: Serve, cache: Cache) -> None:
    """As in a server that forks its workers after loading the application:
    the parent's thread does not exist in the child."""
    background = BackgroundPublisher(Publisher.http(serve.url))
    try:
        cache.set("turnus_data_1", b"page")
        cache.set("turnus_data_2", b"page")
        background.publish(geld(1))
        assert background.flush(5)
        pid = os.fork()
        if pid == 0:
            try:
                ok = background.publish(geld(2)) and background.flush(5)
                ok = ok and background.queued == 0
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child's commit was not delivered"
        wait_until("the child's key is gone", lambda: cache.get("turnus_data_2") is None)
        assert cache.get("turnus_data_1") is None
    finally:
        background.close()


def test_a_stream_publisher_in_the_background(redis_node: RedisNode, cache: Cache) -> None:
    service = Serve(redis_node.url, ["--stream", "commits"])
    background = BackgroundPublisher(Publisher.stream(redis_node.url, "commits"))
    try:
        cache.set("turnus_data_9", b"page")
        background.publish(geld(9))
        assert background.flush(5)
        assert background.published == 1
        wait_until("the key is gone", lambda: cache.get("turnus_data_9") is None)
    finally:
        background.close()
        service.stop()


def test_a_commit_queued_unchecked_is_checked_in_the_background(
    serve: Serve, cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    background = BackgroundPublisher(Publisher.http(serve.url))
    try:
        cache.set("turnus_data_3", b"page")
        assert background.publish({"txn": "bad", "writes": [{"op": "upsert"}]}, check_now=False)
        assert background.publish(["not", "a", "commit"], check_now=False)  # type: ignore[arg-type]
        assert background.publish(geld(3), check_now=False)
        assert background.flush(5)
        assert (background.undelivered, background.published, background.retries) == (2, 1, 0)
        logged = errors(caplog)
        assert any("`bad` (1 write)" in m and "writes[0].table" in m for m in logged), logged
        assert any("a list that is not a commit" in m for m in logged), logged
        wait_until("the good commit's key is gone", lambda: cache.get("turnus_data_3") is None)
    finally:
        background.close()


def test_a_mistake_is_raised_to_its_author_and_bad_bounds_are_refused() -> None:
    background = BackgroundPublisher(Publisher.http(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(InvalidInput, match=r"commit\.txn"):
            background.publish({"writes": []})
        assert background.queued == 0
    finally:
        background.close()
    publisher = Publisher.http("http://127.0.0.1:1")
    for name, value in [
        ("queue_size", 0),
        ("queue_size", 1.5),
        ("delivery_timeout", 0),
        ("delivery_timeout", float("nan")),
        ("exit_timeout", -1),
        ("batch_size", True),
    ]:
        with pytest.raises(InvalidInput, match=f"`{name}`.*{value!r}"):
            BackgroundPublisher(publisher, **{name: value})
