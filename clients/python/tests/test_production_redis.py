"""`Cache.from_url` on the deployments production runs, against real
servers the tests start: TLS with client certificates (`rediss://`,
`rediss+cluster://`), Sentinel (`redis+sentinel://`, through a failover,
and `rediss+sentinel://` with passwords), and the URLs it refuses.

A tag is invalidated here as `invalidator serve` invalidates it: with the
host's own `tag_chunk.lua`, sent on the cache's own connection (over TLS,
to the primary the sentinels name)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _sentinel import SentinelGroup
from _tls import Certs, new_ca, tls_cluster, tls_node
from conftest import RedisNode, free_port

from invalidator import Cache, InvalidInput, _scripts, index_key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_redis(certs: Certs) -> Iterator[RedisNode]:
    node = tls_node(certs)
    yield node
    node.stop()


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup()
    yield group
    group.stop()


def invalidate_tag(cache: Cache, tag: str) -> int:
    """Invalidates `tag` as `serve` does, chunk by chunk with the host's
    script; how many keys went."""
    chunk = cache.client.register_script(_scripts.TAG_CHUNK)
    deleted = 0
    while True:
        gone, left = chunk(keys=[index_key(tag)], args=[100])
        deleted += gone
        if not left:
            return deleted


def use(cache: Cache) -> None:
    """Sets (tagged), fills and invalidates: what an application does."""
    cache.set("offer:1", b"{}", ttl=60, tags=["offers"])
    assert cache.get("offer:1") == b"{}"
    assert cache.get_or_fill("offer:2", lambda: b"loaded", ttl=60, tags=["offers"]) == b"loaded"
    assert cache.get_or_fill("offer:2", lambda: b"not loaded again") == b"loaded"
    assert invalidate_tag(cache, "offers") == 2
    assert cache.get("offer:1") is None
    assert cache.get("offer:2") is None
    assert cache.get_or_fill("offer:2", lambda: b"reloaded", ttl=60) == b"reloaded"


# --- TLS ---------------------------------------------------------------------


def test_a_cache_over_tls_with_a_client_certificate(certs: Certs, tls_redis: RedisNode) -> None:
    url = f"rediss://127.0.0.1:{tls_redis.port}/0"
    cache = Cache.from_url(url, fail_open=False, **certs.options())
    use(cache)
    pool = cache.client.connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert pool.connection_kwargs["ssl_certfile"] == certs.options()["ssl_certfile"]
    assert cache.client.get("offer:2") == b"reloaded", "on the TLS port, the only one it has"

    no_certificate = Cache.from_url(url, fail_open=False, ssl_ca_certs=str(certs.ca))
    with pytest.raises(redis.exceptions.ConnectionError):
        no_certificate.get("offer:2")


def test_a_ca_that_did_not_sign_the_server_certificate_is_refused(
    certs: Certs, tls_redis: RedisNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"rediss://127.0.0.1:{tls_redis.port}"
    options = {**certs.options(), "ssl_ca_certs": str(new_ca("other", tmp_path))}
    cache = Cache.from_url(url, fail_open=False, **options)
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        cache.get("k")
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.set("k", b"v")
    # Failing open, as the default is, a read misses and the warning says why.
    caplog.set_level(logging.WARNING, logger="invalidator.cache")
    failing_open = Cache.from_url(url, **options)
    assert failing_open.get("k") is None
    assert "certificate verify failed" in caplog.text
    # Verification turned off, the same CA is let through.
    unverified = Cache.from_url(url, fail_open=False, **{**options, "ssl_cert_reqs": "none"})
    unverified.set("k", b"v")
    assert unverified.get("k") == b"v"


def test_a_cluster_over_tls_found_from_any_of_its_nodes(certs: Certs) -> None:
    nodes = tls_cluster(certs)
    try:
        # The first node named is not one: the second is asked instead.
        seeds = f"127.0.0.1:{free_port()},127.0.0.1:{nodes[1].port}"
        cache = Cache.from_url(f"rediss+cluster://{seeds}", fail_open=False, **certs.options())
        keys = [f"k{i}" for i in range(20)]
        cache.set_many(dict.fromkeys(keys, b"v"), ttl=60)
        assert cache.get_many(keys) == dict.fromkeys(keys, b"v")
        cache.set("offer:1", b"{}", ttl=60, tags=["offers"])
        assert cache.client.zscore(index_key("offers"), "offer:1") is not None
        assert cache.get_or_fill("offer:2", lambda: b"loaded", tags=["offers"]) == b"loaded"
        assert cache.get("offer:2") == b"loaded"
        masters = {node.port for node in cache.client.get_primaries()}
        assert masters == {node.port for node in nodes}, "every node is reached over TLS"
        assert cache.delete_many(["offer:1", "offer:2", *keys]) == 22
    finally:
        for node in nodes:
            node.stop()


# --- Sentinel ----------------------------------------------------------------


def test_a_cache_on_sentinel_follows_a_failover(sentinel_group: SentinelGroup) -> None:
    group = sentinel_group
    cache = Cache.from_url(group.url(), fail_open=False)
    use(cache)
    assert group.client(group.primary.port).get("offer:2") == b"reloaded", "on the primary"
    cache.set("before", b"1")
    replica = group.client(group.replica.port)
    group.wait("the replica has the key", lambda: replica.get("before") == b"1")
    reader = Cache.from_url(group.url(), retry_after=0)
    assert reader.get("before") == b"1"

    group.primary.process.kill()  # SIGKILL
    group.primary.process.wait()
    assert reader.get("before") is None, "a read fails open while there is no primary"
    group.wait(
        "the sentinels promote the replica", lambda: group.master_port() == group.replica.port
    )
    group.wait("the sentinels list it as the primary", lambda: group.serves(group.replica.port))

    # The same Cache: its connection to the old primary is gone, and the
    # one retry asks the sentinels again.
    cache.set("after", b"v", ttl=60, tags=["t"])
    assert cache.get("after") == b"v"
    assert replica.get("after") == b"v", "written on the new primary"
    assert replica.zscore(index_key("t"), "after") is not None
    assert cache.get("before") == b"1"
    assert reader.get("before") == b"1", "the reader is back too"
    assert cache.client.connection_pool.master_address == ("127.0.0.1", group.replica.port)


def test_a_cache_on_sentinel_over_tls_with_passwords(certs: Certs) -> None:
    group = SentinelGroup(certs, password="pr1mary", sentinel_password="s3ntinel")
    try:
        url = group.url()
        assert url.startswith("rediss+sentinel://:pr1mary@")
        assert url.endswith("/mymaster?sentinel_password=s3ntinel")
        cache = Cache.from_url(url, fail_open=False, **certs.options())
        use(cache)
        assert group.client(group.primary.port).get("offer:2") == b"reloaded"
        sentinels = cache.client.connection_pool.sentinel_manager.sentinels
        assert all(s.connection_pool.connection_kwargs["ssl_certfile"] for s in sentinels)

        # The sentinels refuse a client without their password, the
        # primary one without its own.
        wrong = url.replace("s3ntinel", "wrong")
        with pytest.raises(redis.exceptions.ConnectionError, match="No master found"):
            Cache.from_url(wrong, fail_open=False, **certs.options()).get("k")
        no_password = url.replace(":pr1mary@", "")
        with pytest.raises(redis.exceptions.AuthenticationError):
            Cache.from_url(no_password, fail_open=False, **certs.options()).get("k")
    finally:
        group.stop()


def test_a_cache_on_sentinel_connects_on_first_use() -> None:
    sentinels = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    cache = Cache.from_url(f"redis+sentinel://:s3cret@{sentinels}/mymaster", retry_after=5)
    assert cache.get("k") is None, "no sentinel answers: a read fails open"
    with pytest.raises(redis.exceptions.ConnectionError) as raised:
        cache.set("k", b"v")
    assert f"redis+sentinel://{sentinels}/mymaster is considered down" in str(raised.value)
    assert "s3cret" not in str(raised.value)


# --- URLs refused ------------------------------------------------------------


def test_a_sentinel_url_without_a_master_name_is_named_without_its_password() -> None:
    with pytest.raises(InvalidInput) as raised:
        Cache.from_url("redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380")
    message = str(raised.value)
    assert "`redis+sentinel://127.0.0.1:26379,127.0.0.1:26380`" in message
    assert "no master name" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://x", "`http://x` is not a Redis URL"),
        ("redis+sentinels://h:1/m", "is not a Redis URL"),
        ("redis://:pw@", "`redis://`: no host"),
        ("redis://h:abc", "port `abc` of `h:abc`"),
        ("redis://h:0", "port `0`"),
        ("redis://h:65536", "port `65536`"),
        ("rediss://h:6379/zero", "database `zero`"),
        ("redis://a:1,b:2", "a single node has one host"),
        ("redis://::1:6379", "brackets"),
        ("redis://[::1:6379", "does not close it"),
        ("redis+cluster://", "no host"),
        ("rediss+cluster://a:1,b:x", "port `x` of `b:x`"),
        ("redis+cluster://a:1/3", "a cluster has no database number"),
        ("redis+cluster://a:1?db=3", "a cluster has no database number"),
        ("redis+sentinel://u:pw@/mymaster", "no host"),
        ("redis+sentinel://h:1,h:x/mymaster", "port `x` of `h:x`"),
        ("rediss+sentinel://h:1", "no master name"),
        ("redis+sentinel://h:1/mymaster/x", "database `x`"),
        ("redis+sentinel://h:1/mymaster/0/1", "more than a master name and a database"),
        ("redis+sentinel://h:1/m?sentinel_pasword=x", "unknown query parameter `sentinel_pasword`"),
        ("redis://h:1?sentinel_password=x", "`sentinel_password` is for the sentinels"),
        ("redis://h:1?socket_timeout=soon", "socket_timeout"),
    ],
)
def test_a_malformed_url_is_refused_naming_it(url: str, named: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Cache.from_url(url)
    assert named in str(raised.value)
    assert "pw@" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "options", "named"),
    [
        ("redis://h:1", {"ssl_ca_certs": "ca.pem"}, "use rediss://... for TLS"),
        ("redis+cluster://h:1", {"ssl_certfile": "c.pem"}, "use rediss+cluster://"),
        ("redis+sentinel://h:1/m", {"ssl": True}, "use rediss+sentinel://"),
        ("unix:///tmp/redis.sock", {"ssl_ca_certs": "ca.pem"}, "a Unix socket has no TLS"),
        ("rediss://h:1", {"ssl": False}, "a TLS URL"),
        ("rediss+sentinel://h:1/m", {"sentinel_kwargs": 1}, "sentinel_kwargs is 1 (int)"),
    ],
)
def test_tls_options_that_would_go_nowhere_are_refused(
    url: str, options: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(named)):
        Cache.from_url(url, **options)  # type: ignore[arg-type]


def test_every_scheme_is_made_without_connecting() -> None:
    dead = f"127.0.0.1:{free_port()}"
    for url in [
        f"redis://{dead}/1",
        f"rediss://{dead}",
        f"redis+cluster://{dead},{dead}",
        f"rediss+cluster://{dead}",
        f"redis+sentinel://{dead},[::1]:26379/mymaster/2?socket_timeout=0.5",
        f"rediss+sentinel://u:p@{dead}/my%20master?sentinel_username=s&sentinel_password=p%40",
        "unix:///tmp/no-such.sock?db=2",
    ]:
        started = time.monotonic()
        Cache.from_url(url, ssl_ca_certs="ca.pem") if "rediss" in url else Cache.from_url(url)
        assert time.monotonic() - started < 0.1, url
    cache = Cache.from_url(
        f"rediss+sentinel://u:p@{dead}/my%20master/2?sentinel_username=s&sentinel_password=p%40+",
        ssl_ca_certs="ca.pem",
        socket_timeout=0.25,
    )
    pool = cache.client.connection_pool
    assert pool.service_name == "my master"
    assert pool.connection_kwargs["db"] == 2
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == ("u", "p")
    [sentinel] = pool.sentinel_manager.sentinels
    sentinel_options = sentinel.connection_pool.connection_kwargs
    assert (sentinel_options["username"], sentinel_options["password"]) == ("s", "p@+")
    assert sentinel_options["ssl_ca_certs"] == "ca.pem"
    assert sentinel_options["socket_timeout"] == 0.25
