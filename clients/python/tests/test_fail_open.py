"""Reads fail open: with Redis unreachable, `Cache` reads miss and
`get_or_fill` returns its loader's value without storing it, logged once
per outage and counted; writes raise; `fail_open=False` raises on reads
too. Against real `redis-server`s that the tests kill or stop (SIGSTOP, so
that reads time out and the node comes back with its data), and ports
where nothing listens."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from conftest import RedisNode, binary, free_port
from redis.backoff import NoBackoff
from redis.retry import Retry

from invalidator import Cache
from invalidator.cache import LEASE_PREFIX, OUTAGE_QUIET_SECONDS

# Quick failures: no retries, short timeouts (redis-py 8 retries 10 times).
QUICK = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3, "retry": Retry(NoBackoff(), 0)}


def quick(url: str, **options: object) -> Cache:
    return Cache.from_url(url, **{**QUICK, **options})


def outage_log(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "invalidator.cache"]


def test_reads_on_a_killed_node_miss_and_load_without_storing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = RedisNode()
    cache = quick(node.url)
    cache.set("page", b"cached")
    assert cache.get("page") == b"cached"
    node.stop()
    caplog.set_level(logging.INFO, logger="invalidator.cache")

    assert cache.get("page") is None
    assert cache.get_many(["page", "other"]) == {}
    assert cache.has_key("page") is False
    loads = []

    def load() -> bytes:
        loads.append(1)
        return b"from the database"

    assert cache.get_or_fill("page", load, ttl=60, tags=["t"]) == b"from the database"
    assert cache.get_or_fill("page", load) == b"from the database"
    assert len(loads) == 2, "nothing was stored: each read loads"
    assert cache.fail_open_reads == 5
    assert cache.outages == 1
    assert cache.stats == {"fail_open_reads": 5, "outages": 1, "in_outage": True}
    [(level, message)] = outage_log(caplog)
    assert level == logging.WARNING
    assert "Redis unreachable (ConnectionError" in message, message
    assert f":{node.port}" in message, "the log names the address"


def test_writes_raise_while_reads_fail_open() -> None:
    node = RedisNode()
    cache = quick(node.url)
    cache.set("n", b"1")
    node.stop()
    writes = {
        "set": lambda: cache.set("k", b"v"),
        "set with tags": lambda: cache.set("k", b"v", tags=["t"]),
        "add": lambda: cache.add("k", b"v"),
        "touch": lambda: cache.touch("k", 10),
        "incr": lambda: cache.incr("n"),
        "set_many": lambda: cache.set_many({"a": b"1", "b": b"2"}),
        "delete": lambda: cache.delete("k"),
        "delete_many": lambda: cache.delete_many(["a", "b"]),
    }
    for name, write in writes.items():
        with pytest.raises(redis.exceptions.ConnectionError):
            write()
            pytest.fail(f"{name} did not raise")
    assert cache.fail_open_reads == 0
    assert cache.outages == 1


def test_a_loaders_exception_propagates_with_redis_down() -> None:
    cache = quick(f"redis://127.0.0.1:{free_port()}")

    def fail() -> bytes:
        raise RuntimeError("the database is down too")

    with pytest.raises(RuntimeError, match="the database is down too"):
        cache.get_or_fill("k", fail)


def test_a_loaders_exception_propagates_when_redis_dies_while_loading() -> None:
    node = RedisNode()
    cache = quick(node.url)

    def die_then_fail() -> bytes:
        node.stop()
        raise RuntimeError("query failed")

    # The lease cannot be given back; the loader's error, not Redis's, is raised.
    with pytest.raises(RuntimeError, match="query failed"):
        cache.get_or_fill("k", die_then_fail)


def test_redis_dying_while_loading_returns_the_value_unstored() -> None:
    node = RedisNode()
    cache = quick(node.url)

    def die_then_load() -> bytes:
        node.stop()
        return b"loaded"

    assert cache.get_or_fill("k", die_then_load) == b"loaded"
    assert cache.fail_open_reads == 1


def test_fail_open_false_raises_and_never_loads() -> None:
    node = RedisNode()
    cache = quick(node.url, fail_open=False)
    assert cache.fail_open is False
    node.stop()
    loads = []
    reads = {
        "get": lambda: cache.get("k"),
        "get_many": lambda: cache.get_many(["k"]),
        "has_key": lambda: cache.has_key("k"),
        "get_or_fill": lambda: cache.get_or_fill("k", lambda: loads.append(1) or b"v"),
    }
    for name, read in reads.items():
        with pytest.raises(redis.exceptions.ConnectionError):
            read()
            pytest.fail(f"{name} did not raise")
    assert loads == []
    assert cache.fail_open_reads == 0 and cache.outages == 1


def test_a_port_where_nothing_listens_misses() -> None:
    cache = quick(f"redis://127.0.0.1:{free_port()}")
    assert cache.get("k") is None
    assert cache.get_or_fill("k", lambda: "loaded") == b"loaded"
    assert cache.fail_open_reads == 2


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: reads time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_a_server_that_never_answers_times_out_and_misses(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    cache = quick(f"redis://127.0.0.1:{silent_port}")
    started = time.monotonic()
    assert cache.get("k") is None
    assert cache.get_or_fill("k", lambda: b"loaded") == b"loaded"
    assert time.monotonic() - started < 5, "the socket timeout bounds each read"
    [(level, message)] = outage_log(caplog)
    assert level == logging.WARNING and "TimeoutError" in message, message
    with pytest.raises(redis.exceptions.TimeoutError):
        quick(f"redis://127.0.0.1:{silent_port}", fail_open=False).get("k")


def test_a_stalled_node_comes_back_with_nothing_stored_and_it_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGSTOP: connections are accepted but nothing answers (timeouts),
    and SIGCONT brings the same data back."""
    caplog.set_level(logging.INFO, logger="invalidator.cache")
    node = RedisNode()
    try:
        cache = quick(node.url)
        cache.set("kept", b"old value", ttl=60)
        node.process.send_signal(signal.SIGSTOP)
        try:
            assert cache.get("kept") is None
            for _ in range(3):
                assert cache.get_or_fill("filled", lambda: b"loaded", ttl=60) == b"loaded"
        finally:
            node.process.send_signal(signal.SIGCONT)
        assert cache.fail_open_reads == 4
        # What the stalled node received meanwhile it runs now; none of it
        # stores a loaded value (a late lease marker reads as a miss).
        time.sleep(OUTAGE_QUIET_SECONDS + 0.2)
        assert cache.get("kept") == b"old value", "the same data came back"
        raw = redis.Redis.from_url(node.url).get("filled")
        assert raw is None or raw.startswith(LEASE_PREFIX), raw
        assert cache.get("filled") is None
        assert cache.get("kept") == b"old value"
        logged = outage_log(caplog)
        assert [level for level, _ in logged] == [logging.WARNING, logging.INFO], logged
        assert "TimeoutError" in logged[0][1]
        assert logged[1][1] == "Redis reachable again (4 reads failed open so far)"
        assert cache.stats == {"fail_open_reads": 4, "outages": 1, "in_outage": False}
    finally:
        node.stop()


def test_a_cluster_that_cannot_be_reached_misses_and_raises_on_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = quick(f"redis+cluster://127.0.0.1:{free_port()}")  # made without connecting
    assert cache.get("k") is None
    assert cache.get_or_fill("k", lambda: b"loaded") == b"loaded"
    with pytest.raises(redis.exceptions.ConnectionError, match="cannot reach the cluster"):
        cache.set("k", b"v")
    assert cache.fail_open_reads == 2 and cache.outages == 1
    assert len(outage_log(caplog)) == 1


def test_a_cluster_whose_nodes_die_misses_and_raises_on_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="invalidator.cache")
    nodes = [
        RedisNode(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
        for _ in range(3)
    ]
    try:
        cli = binary("redis-cli", "REDIS_CLI", "install it (Debian: apt-get install redis-tools)")
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 30
        for node in nodes:  # every node: one that has not converged says CLUSTERDOWN
            while True:
                info = subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True
                ).stdout
                if "cluster_state:ok" in info:
                    break
                assert time.monotonic() < deadline, f"the cluster never became ready:\n{info}"
                time.sleep(0.05)
        cache = quick(f"redis+cluster://{addresses[0]}")
        keys = [f"k{i}" for i in range(12)]  # spread over the three nodes
        cache.set_many({k: b"v" for k in keys})
        assert len(cache.get_many(keys)) == 12
        nodes[1].stop()
        values = [cache.get(k) for k in keys]
        assert None in values and b"v" in values, "the dead node's keys miss, the others hit"
        # The other nodes' answers in between did not end the outage: one
        # warning, no "reachable again".
        assert [level for level, _ in outage_log(caplog)] == [logging.WARNING]
        assert cache.get_many(keys) == {}
        for node in nodes:
            node.stop()
        assert cache.get("k0") is None
        assert cache.get_or_fill("k0", lambda: b"loaded") == b"loaded"
        with pytest.raises(redis.exceptions.ConnectionError):
            cache.set("k0", b"v")
        assert cache.fail_open_reads >= 4
        assert [level for level, _ in outage_log(caplog)] == [logging.WARNING]
    finally:
        for node in nodes:
            node.stop()
