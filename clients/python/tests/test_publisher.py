"""Publishers against a real `invalidator serve`: commits posted over HTTP
or added to a Redis stream invalidate the keys their rules name."""

from __future__ import annotations

import socket
import threading
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
        ({"writes": []}, r"commit\.txn"),
        ({"txn": "t", "writes": [{"table": "t", "op": "upsert", "key": {}}]}, r"writes\[0\]\.op"),
        ({"txn": "t", "writes": [{"table": "t", "op": "insert"}]}, r"writes\[0\]\.key is missing"),
        ({"txn": "t", "writes": [], "befor": {}}, "unknown field"),
        (
            {
                "txn": "t",
                "writes": [{"table": "t", "op": "insert", "key": {"id": [1]}, "after": {}}],
            },
            "list",
        ),
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


class CountingProxy:
    """A TCP proxy in front of serve that counts the connections made
    through it, and can cut them all, as a server closing idle ones does."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Closes every connection through the proxy."""
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.open = []

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_publishes_reuse_one_connection_and_replace_one_the_server_closed(
    serve: Serve, redis_node: Any
) -> None:
    cache = Cache.from_url(redis_node.url)
    proxy = CountingProxy(serve.url)
    try:
        publisher = Publisher.http(proxy.url)
        for i in range(20):
            cache.set(f"turnus_data_{i}", b"page")
            publisher.publish(geld(i))
        assert proxy.accepted == 1, f"{proxy.accepted} connections for 20 publishes"
        wait_until(
            "every key is gone",
            lambda: all(cache.get(f"turnus_data_{i}") is None for i in range(20)),
        )
        # Closed while idle: the next publish finds out only when it sends,
        # and goes on over a new connection, without an error.
        proxy.cut()
        cache.set("turnus_data_20", b"page")
        publisher.publish(geld(20))
        assert proxy.accepted == 2
        wait_until("the key is gone", lambda: cache.get("turnus_data_20") is None)
        publisher.close()
    finally:
        proxy.close()


def test_threads_share_a_publisher_over_a_few_connections(serve: Serve, redis_node: Any) -> None:
    cache = Cache.from_url(redis_node.url)
    proxy = CountingProxy(serve.url)
    try:
        publisher = Publisher.http(proxy.url)
        failures: list[BaseException] = []
        cache.set("turnus_data_324", b"page")

        def publish_from_a_thread(t: int) -> None:
            try:
                for i in range(25):
                    publisher.publish(geld(t * 100 + i))
            except BaseException as e:
                failures.append(e)

        threads = [threading.Thread(target=publish_from_a_thread, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert 1 <= proxy.accepted <= 4, f"{proxy.accepted} connections for 4 threads"
        wait_until("the last commit's key is gone", lambda: cache.get("turnus_data_324") is None)
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [("127.0.0.1:8080", "not an http"), ("ftp://h", "not an http"), ("http://h:x", "bad port")],
)
def test_a_url_that_is_not_serves_is_refused(url: str, named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        Publisher.http(url)
