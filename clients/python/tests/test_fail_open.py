"""Reads fail open: with Redis unreachable, `Cache` reads miss and
`get_or_fill` returns its loader's value without storing it, logged once
per outage and counted; writes raise; `fail_open=False` raises on reads
too. Failing open is fast: after a command finds Redis unreachable, the
circuit breaker skips it for `retry_after` seconds, then one command tries
it again; `from_url`'s default timeouts and retries bound what that one
command costs. Against real `redis-server`s that the tests kill or stop
(SIGSTOP: connections are accepted by the kernel but nothing answers, so
reads time out, and the node comes back with its data), and ports where
nothing listens."""

from __future__ import annotations

import logging
import pickle
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from conftest import RedisNode, binary, free_port
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

from invalidator import Cache, InvalidInput
from invalidator.cache import (
    DEFAULT_RETRY_AFTER,
    DEFAULT_SOCKET_TIMEOUT,
    LEASE_PREFIX,
    OUTAGE_QUIET_SECONDS,
    RedisDown,
)
from invalidator.contrib.django.cache import InvalidatorCache

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
    assert cache.health == {
        "fail_open_reads": 5,
        "outages": 1,
        "in_outage": True,
        "skipped_while_down": 4,  # the first read found it down, the others skipped it
    }
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
        assert cache.health == {
            "fail_open_reads": 4,
            "outages": 1,
            "in_outage": False,
            "skipped_while_down": 3,
        }
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
        # A long window: what follows must happen inside it on a slow machine too.
        cache = quick(f"redis+cluster://{addresses[0]}", retry_after=5)
        keys = [f"k{i}" for i in range(12)]  # spread over the three nodes
        cache.set_many({k: b"v" for k in keys})
        assert len(cache.get_many(keys)) == 12
        nodes[1].stop()
        values = [cache.get(k) for k in keys]
        assert None in values and b"v" in values, "the dead node's keys miss, the others hit"
        dead = [k for k, v in zip(keys, values, strict=True) if v is None]
        alive = [k for k in keys if k not in dead]
        # A breaker per node: the dead node was tried once, its other keys
        # skipped; the live nodes' keys were not.
        assert cache.skipped_while_down == len(dead) - 1
        # The other nodes' answers in between did not end the outage: one
        # warning, no "reachable again".
        assert [level for level, _ in outage_log(caplog)] == [logging.WARNING]
        assert cache.get_many(keys) == {k: b"v" for k in alive}, "the live nodes still answer"
        cache.set(alive[0], b"written", ttl=60)
        assert cache.get(alive[0]) == b"written"
        started = time.monotonic()
        with pytest.raises(RedisDown, match=f"node 127.0.0.1:{nodes[1].port}"):
            cache.set(dead[0], b"v")
        with pytest.raises(RedisDown):
            cache.set_many({alive[0]: b"1", dead[0]: b"2"})
        assert time.monotonic() - started < 0.1, "a write to the dead node raises at once"
        assert cache.get(alive[0]) == b"written", "a write needing a dead node sends nothing"
        # from_url's defaults, in a cluster: bounded timeouts, one retry.
        defaults = Cache.from_url(f"redis+cluster://{addresses[0]}")
        assert defaults.get(alive[0]) == b"written"
        assert defaults.client.retry.get_retries() == 1
        node_pool = defaults.client.get_default_node().redis_connection.connection_pool
        assert node_pool.connection_kwargs["socket_timeout"] == DEFAULT_SOCKET_TIMEOUT
        assert node_pool.connection_kwargs["socket_connect_timeout"] == DEFAULT_SOCKET_TIMEOUT
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


# --- The circuit breaker -----------------------------------------------------


class Stalled:
    """A real redis-server, SIGSTOPped on demand: the kernel still accepts
    connections (its listen backlog), but nothing answers, as with a host
    that is gone or a firewall dropping packets."""

    def __init__(self) -> None:
        self.node = RedisNode()
        self.stopped = False

    @property
    def url(self) -> str:
        return self.node.url

    def stop(self) -> None:
        self.node.process.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        self.node.process.send_signal(signal.SIGCONT)
        self.stopped = False

    def close(self) -> None:
        if self.stopped:
            self.resume()
        self.node.stop()


@pytest.fixture
def stalled() -> Iterator[Stalled]:
    server = Stalled()
    yield server
    server.close()


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_a_stalled_redis_is_skipped_for_retry_after_then_used_again(stalled: Stalled) -> None:
    window = 2.0  # longer than the default, so that a slow machine stays inside it
    cache = quick(stalled.url, retry_after=window)
    assert cache.retry_after == window
    cache.set("kept", b"old value", ttl=60)
    stalled.stop()

    miss, first = timed(lambda: cache.get("kept"))
    failed_at = time.monotonic()
    assert miss is None
    assert 0.25 <= first < 1.5, f"the first read waits for its 0.3 s timeout: {first:.3f} s"

    loads = []

    def load() -> bytes:
        loads.append(1)
        return b"from the database"

    reads: list[Callable[[], object]] = [
        lambda: cache.get("kept"),
        lambda: cache.get_many(["kept", "other"]),
        lambda: cache.has_key("kept"),
        lambda: cache.get_or_fill("filled", load, ttl=60, tags=["t"]),
        lambda: cache.get("other"),
    ]
    answers, took = timed(lambda: [reads[i % len(reads)]() for i in range(50)])
    assert took < 0.1, f"50 reads within the window took {took:.3f} s: they waited on Redis"
    assert answers == [None, {}, False, b"from the database", None] * 10
    assert len(loads) == 10, "each get_or_fill loaded, nothing was stored"
    assert cache.health == {
        "fail_open_reads": 51,
        "outages": 1,
        "in_outage": True,
        "skipped_while_down": 50,
    }

    writes: dict[str, Callable[[], object]] = {
        "set": lambda: cache.set("k", b"v"),
        "set with tags": lambda: cache.set("k", b"v", ttl=60, tags=["t"]),
        "add": lambda: cache.add("k", b"v"),
        "touch": lambda: cache.touch("kept", 10),
        "incr": lambda: cache.incr("n"),
        "set_many": lambda: cache.set_many({"a": b"1", "b": b"2"}),
        "delete": lambda: cache.delete("kept"),
        "delete_many": lambda: cache.delete_many(["a", "kept"]),
    }
    for name, write in writes.items():
        started = time.monotonic()
        with pytest.raises(RedisDown) as raised:
            write()
            pytest.fail(f"{name} did not raise")
        assert time.monotonic() - started < 0.05, f"{name} waited on Redis"
        error = raised.value
        assert isinstance(error, redis.exceptions.ConnectionError), "existing excepts catch it"
        message = str(error)
        assert f"Redis at redis://127.0.0.1:{stalled.node.port}/0 is considered down until" in (
            message
        ), message
        assert "TimeoutError" in message and "nothing was sent" in message, message
        assert error.where == f"redis://127.0.0.1:{stalled.node.port}/0"
        assert error.until == pytest.approx(
            time.time() + failed_at + window - time.monotonic(), abs=0.1
        )
    assert cache.skipped_while_down == 50 + len(writes)
    assert cache.fail_open_reads == 51, "writes are not reads failing open"
    assert time.monotonic() - failed_at < window, "all of the above happened inside the window"

    # The window passes with Redis still stalled: one read tries it again
    # (and waits its timeout), the others keep skipping it meanwhile.
    time.sleep(max(0.0, failed_at + window + 0.05 - time.monotonic()))
    durations: list[float] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        answer, took = timed(lambda: cache.get("kept"))
        assert answer is None
        durations.append(took)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slow = [d for d in durations if d >= 0.25]
    assert len(durations) == 8 and len(slow) == 1, f"one read tried Redis: {durations}"
    assert max(d for d in durations if d < 0.25) < 0.1, durations
    reopened_at = time.monotonic()
    _, took = timed(lambda: cache.get("kept"))
    assert took < 0.05, "the failed try opened the breaker again"
    assert cache.skipped_while_down == 50 + len(writes) + 7 + 1

    # Redis is back: after the window, the next read closes the breaker,
    # and values are served and stored again.
    stalled.resume()
    time.sleep(max(0.0, reopened_at + window + 0.05 - time.monotonic()))
    assert cache.get("kept") == b"old value"
    assert cache.get_or_fill("filled", load, ttl=60) == b"from the database"
    assert cache.get_or_fill("filled", load) == b"from the database"
    assert len(loads) == 11, "stored this time: the second call did not load"
    cache.set("k", b"v")
    assert cache.get("k") == b"v"
    assert cache.skipped_while_down == 50 + len(writes) + 8, "nothing skipped since"


def test_fail_open_false_raises_at_once_while_redis_is_down(stalled: Stalled) -> None:
    cache = quick(stalled.url, fail_open=False)
    stalled.stop()
    with pytest.raises(redis.exceptions.TimeoutError):
        cache.get("k")
    reads: dict[str, Callable[[], object]] = {
        "get": lambda: cache.get("k"),
        "get_many": lambda: cache.get_many(["k", "l"]),
        "has_key": lambda: cache.has_key("k"),
        "get_or_fill": lambda: cache.get_or_fill("k", lambda: pytest.fail("loaded")),
    }
    for name, read in reads.items():
        started = time.monotonic()
        with pytest.raises(RedisDown, match="is considered down until"):
            read()
            pytest.fail(f"{name} did not raise")
        assert time.monotonic() - started < 0.05, f"{name} waited on Redis"
    assert cache.health == {
        "fail_open_reads": 0,
        "outages": 1,
        "in_outage": True,
        "skipped_while_down": 4,
    }


def test_from_url_bounds_one_read_against_a_stalled_redis(stalled: Stalled) -> None:
    """No timeouts given: `from_url`'s defaults apply (redis-py's own wait
    for ever and retry 10 times)."""
    stalled.stop()
    cache = Cache.from_url(stalled.url)
    miss, took = timed(lambda: cache.get("k"))
    assert miss is None
    assert DEFAULT_SOCKET_TIMEOUT * 0.9 <= took < 3 * DEFAULT_SOCKET_TIMEOUT, took
    with pytest.raises(RedisDown):
        cache.set("k", b"v")
    writer = Cache.from_url(stalled.url)
    started = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError):
        writer.set("k", b"v")
    took = time.monotonic() - started
    assert took < 1.8 * DEFAULT_SOCKET_TIMEOUT, f"a timeout is not retried: {took:.3f} s"


def test_from_url_defaults_yield_to_the_callers_options(redis_node: RedisNode) -> None:
    kwargs = Cache.from_url(redis_node.url).client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == DEFAULT_SOCKET_TIMEOUT
    assert kwargs["socket_connect_timeout"] == DEFAULT_SOCKET_TIMEOUT
    assert kwargs["retry"].get_retries() == 1
    given = Retry(NoBackoff(), 3)
    kwargs = Cache.from_url(
        redis_node.url, socket_timeout=2.5, retry=given
    ).client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 2.5
    assert kwargs["socket_connect_timeout"] == DEFAULT_SOCKET_TIMEOUT
    assert kwargs["retry"].get_retries() == 3
    kwargs = Cache.from_url(
        redis_node.url + "/0?socket_timeout=4"
    ).client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 4, "the URL's options win too"
    cache = Cache.from_url(redis_node.url)
    cache.set("k", b"v")
    assert cache.get("k") == b"v"
    assert cache.retry_after == DEFAULT_RETRY_AFTER


def test_the_error_names_the_redis_without_its_password() -> None:
    port = free_port()
    cache = quick(f"redis://:s3cret@127.0.0.1:{port}/2")
    assert cache.get("k") is None
    with pytest.raises(RedisDown) as raised:
        cache.set("k", b"v")
    assert f"Redis at redis://127.0.0.1:{port}/2 is considered down" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert type(copy) is RedisDown and str(copy).startswith(str(raised.value)[:60])
    assert (copy.where, copy.until, copy.cause) == (
        raised.value.where,
        raised.value.until,
        raised.value.cause,
    )
    cluster = quick(f"redis+cluster://user:s3cret@127.0.0.1:{port}")
    assert cluster.get("k") is None
    with pytest.raises(RedisDown) as raised:
        cluster.set("k", b"v")
    assert f"Redis at redis+cluster://127.0.0.1:{port} is considered down" in str(raised.value)
    assert "cannot reach the cluster" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_retry_after_zero_turns_the_breaker_off() -> None:
    cache = quick(f"redis://127.0.0.1:{free_port()}", retry_after=0)
    for _ in range(3):
        assert cache.get("k") is None
        with pytest.raises(redis.exceptions.ConnectionError) as raised:
            cache.set("k", b"v")
        assert not isinstance(raised.value, RedisDown), "every command tried Redis"
    assert cache.health["skipped_while_down"] == 0 and cache.fail_open_reads == 3


@pytest.mark.parametrize("bad", [-1, "1", True, float("nan"), float("inf")])
def test_a_bad_retry_after_is_named(bad: object) -> None:
    with pytest.raises(InvalidInput, match="retry_after"):
        Cache.from_url("redis://127.0.0.1:1", retry_after=bad)  # type: ignore[arg-type]


def test_the_django_backend_fails_fast_and_takes_retry_after_seconds(stalled: Stalled) -> None:
    with pytest.raises(ImproperlyConfigured, match="retry_after_seconds"):
        InvalidatorCache(stalled.url, {"OPTIONS": {"retry_after_seconds": -1}})
    backend = InvalidatorCache(stalled.url, {"OPTIONS": {"retry_after_seconds": 3}})
    assert backend.cache.retry_after == 3
    kwargs = backend.cache.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == DEFAULT_SOCKET_TIMEOUT, "from_url's defaults apply"
    backend.set("page", "cached")
    assert backend.get("page") == "cached"
    stalled.stop()
    miss, first = timed(lambda: backend.get("page", "default"))
    assert miss == "default"
    assert first < 3 * DEFAULT_SOCKET_TIMEOUT, first
    answers, took = timed(
        lambda: [backend.get_or_set("page", lambda: "from the database") for _ in range(50)]
    )
    assert answers == ["from the database"] * 50
    assert took < 0.1, f"50 reads within the window took {took:.3f} s"
    with pytest.raises(RedisDown, match="considered down"):
        backend.set("page", "new")
    assert backend.health["skipped_while_down"] == 51
