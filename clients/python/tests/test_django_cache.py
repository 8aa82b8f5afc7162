"""`invalidator.contrib.django.cache.InvalidatorCache` against real Redis
servers (a single node and a cluster): Django's own cache tests
(`tests/cache/tests.py`, `BaseCacheTests`, as its `RedisCacheTests` runs
them), ported; then what is ours: the key layout a rule names, lease-
protected `get_or_set`, tags, failing open, and `serve` invalidating keys
written through the backend, with and without a key prefix.

Django's settings are configured once per process, and test_django.py
configures them for itself, so the backends here are made as Django's
cache handler makes them, `InvalidatorCache(LOCATION, params)`, with no
settings; one test runs Django's own `caches` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import RedisNode, Serve, free_port
from django.core.cache.backends.base import DEFAULT_TIMEOUT, CacheKeyWarning
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

from invalidator import InvalidInput, index_key
from invalidator.cache import LEASE_PREFIX
from invalidator.contrib.django.cache import InvalidatorCache

KEY_ERRORS_WITH_MEMCACHED_MSG = (
    "Cache key contains characters that will cause errors if used with memcached: %r"
)
QUICK = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3, "retry": Retry(NoBackoff(), 0)}


# Functions and classes for the data type tests, as Django's.
def f() -> int:
    return 42


class C:
    def m(n):  # type: ignore[no-untyped-def]
        return 24


class Unpicklable:
    def __getstate__(self) -> Any:
        raise pickle.PickleError()


def custom_key_func(key: str, key_prefix: str, version: Any) -> str:
    """A customized cache key function, as Django's."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


class Backends:
    """The caches Django's tests use, on one Redis: `default`, `prefix`,
    `v2`, `custom_key` and `custom_key2`."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.all = {
            "default": self.make(),
            "prefix": self.make(KEY_PREFIX=f"cacheprefix{os.getpid()}"),
            "v2": self.make(VERSION=2),
            "custom_key": self.make(KEY_FUNCTION=custom_key_func),
            "custom_key2": self.make(KEY_FUNCTION="test_django_cache.custom_key_func"),
        }

    def make(self, **params: Any) -> InvalidatorCache:
        return InvalidatorCache(self.location, params)

    def __getitem__(self, name: str) -> InvalidatorCache:
        return self.all[name]

    @property
    def redis(self) -> redis.Redis | redis.RedisCluster:
        return self.all["default"].cache.client


@pytest.fixture(params=["single", "cluster"])
def caches(request: pytest.FixtureRequest) -> Iterator[Backends]:
    if request.param == "single":
        location = request.getfixturevalue("redis_node").url
    else:
        location = request.getfixturevalue("redis_cluster")
    backends = Backends(location)
    backends["default"].clear()
    yield backends
    backends["default"].clear()


@pytest.fixture
def cache(caches: Backends) -> InvalidatorCache:
    return caches["default"]


# --- Django's BaseCacheTests -------------------------------------------------


def test_simple(cache):
    cache.set("key", "value")
    assert cache.get("key") == "value"


def test_default_used_when_none_is_set(cache):
    cache.set("key_default_none", None)
    assert cache.get("key_default_none", default="default") is None


def test_add(cache):
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_prefix(caches, cache):
    cache.set("somekey", "value")
    assert caches["prefix"].has_key("somekey") is False
    caches["prefix"].set("somekey", "value2")
    assert cache.get("somekey") == "value"
    assert caches["prefix"].get("somekey") == "value2"


def test_non_existent(cache):
    assert cache.get("does_not_exist") is None
    assert cache.get("does_not_exist", "bang!") == "bang!"


def test_get_many(cache):
    cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}


def test_delete(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.get("key1") == "spam"
    assert cache.delete("key1") is True
    assert cache.get("key1") is None
    assert cache.get("key2") == "eggs"


def test_delete_nonexistent(cache):
    assert cache.delete("nonexistent_key") is False


def test_has_key(cache):
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") is True
    assert cache.has_key("goodbye1") is False
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True
    cache.set("null", None)
    assert cache.has_key("null") is True


def test_in(cache):
    cache.set("hello2", "goodbye2")
    assert "hello2" in cache
    assert "goodbye2" not in cache
    cache.set("null", None)
    assert "null" in cache


def test_incr(cache):
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.get("answer") == 52
    assert cache.incr("answer", -10) == 42
    with pytest.raises(ValueError):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError):
        cache.incr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(redis.ResponseError):  # Django's RedisCacheTests: ResponseError
        cache.incr("null")


def test_decr(cache):
    cache.set("answer", 43)
    assert cache.decr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.decr("answer", 10) == 32
    assert cache.get("answer") == 32
    assert cache.decr("answer", -10) == 42
    with pytest.raises(ValueError):
        cache.decr("does_not_exist")
    with pytest.raises(ValueError):
        cache.incr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(redis.ResponseError):
        cache.decr("null")


def test_close(cache):
    assert hasattr(cache, "close")
    cache.close()
    cache.set("after", "close")  # the shared client goes on
    assert cache.get("after") == "close"


def test_data_types(cache):
    tests = {
        "string": "this is a string",
        "int": 42,
        "bool": True,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "function": f,
        "class": C,
    }
    for key, value in tests.items():
        cache.set(key, value)
        assert cache.get(key) == value, key
    assert type(cache.get("bool")) is bool, "a bool is pickled, not stored as an integer"


# Django's tests use 1 s timeouts and 2 s sleeps; these backends keep float
# timeouts to the millisecond, so the same tests run at a quarter of that.


def test_expiration(cache):
    cache.set("expire1", "very quickly", 0.25)
    cache.set("expire2", "very quickly", 0.25)
    cache.set("expire3", "very quickly", 0.25)
    time.sleep(0.5)
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert cache.has_key("expire3") is False


def test_touch(cache):
    cache.set("expire1", "very quickly", timeout=0.25)
    assert cache.touch("expire1", timeout=1) is True
    time.sleep(0.5)
    assert cache.has_key("expire1") is True
    time.sleep(0.75)
    assert cache.has_key("expire1") is False
    # touch() works without the timeout argument (the default timeout).
    cache.set("expire1", "very quickly", timeout=0.25)
    assert cache.touch("expire1") is True
    time.sleep(0.5)
    assert cache.has_key("expire1") is True
    assert cache.touch("nonexistent") is False


def test_unicode(cache):
    stuff = {
        "ascii": "ascii_value",
        "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
        "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2",
        "ascii2": {"x": 1},
    }
    for key, value in stuff.items():
        cache.set(key, value)
        assert cache.get(key) == value
    for key, value in stuff.items():
        assert cache.delete(key) is True
        assert cache.add(key, value) is True
        assert cache.get(key) == value
    for key in stuff:
        assert cache.delete(key) is True
    cache.set_many(stuff)
    for key, value in stuff.items():
        assert cache.get(key) == value


def test_binary_string(cache):
    value = "value_to_be_compressed"
    compressed_value = zlib.compress(value.encode())
    cache.set("binary1", compressed_value)
    compressed_result = cache.get("binary1")
    assert compressed_value == compressed_result
    assert value == zlib.decompress(compressed_result).decode()
    assert cache.add("binary1-add", compressed_value) is True
    compressed_result = cache.get("binary1-add")
    assert compressed_value == compressed_result
    cache.set_many({"binary1-set_many": compressed_value})
    compressed_result = cache.get("binary1-set_many")
    assert compressed_value == compressed_result
    assert value == zlib.decompress(compressed_result).decode()


def test_set_many(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.get("key1") == "spam"
    assert cache.get("key2") == "eggs"


def test_set_many_returns_empty_list_on_success(cache):
    assert cache.set_many({"key1": "spam", "key2": "eggs"}) == []


def test_set_many_expiration(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"}, 0.25)
    time.sleep(0.5)
    assert cache.get("key1") is None
    assert cache.get("key2") is None


def test_set_many_empty_data(cache):
    assert cache.set_many({}) == []


def test_delete_many(cache):
    cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
    cache.delete_many(["key1", "key2"])
    assert cache.get("key1") is None
    assert cache.get("key2") is None
    assert cache.get("key3") == "ham"


def test_delete_many_no_keys(cache):
    assert cache.delete_many([]) is None


def test_clear(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"})
    cache.clear()
    assert cache.get("key1") is None
    assert cache.get("key2") is None


def test_long_timeout(cache):
    cache.set("key1", "eggs", 60 * 60 * 24 * 30 + 1)  # 30 days + 1 second
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", 60 * 60 * 24 * 30 + 1) is True
    assert cache.get("key2") == "ham"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 60 * 60 * 24 * 30 + 1)
    assert cache.get("key3") == "sausage"
    assert cache.get("key4") == "lobster bisque"
    assert 0 < cache.cache.client.ttl("key1") <= 60 * 60 * 24 * 30 + 1, "a relative timeout"


def test_forever_timeout(caches, cache):
    cache.set("key1", "eggs", None)
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", None) is True
    assert cache.get("key2") == "ham"
    assert cache.add("key1", "new eggs", None) is False
    assert cache.get("key1") == "eggs"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    assert cache.get("key3") == "sausage"
    assert cache.get("key4") == "lobster bisque"
    cache.set("key5", "belgian fries", timeout=0.25)
    assert cache.touch("key5", timeout=None) is True
    time.sleep(0.5)
    assert cache.get("key5") == "belgian fries"
    for key in ("key1", "key2", "key3", "key4", "key5"):
        assert caches.redis.ttl(key) == -1, f"{key} never expires"


def test_zero_timeout(cache):
    cache.set("key1", "eggs", 0)
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", 0) is True
    assert cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
    assert cache.get("key3") is None
    assert cache.get("key4") is None
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=0) is True
    assert cache.get("key5") is None


def test_negative_timeout_stores_nothing_and_deletes(cache):
    cache.set("key1", "eggs")
    cache.set("key1", "spam", -1)
    assert cache.get("key1") is None
    assert cache.get_or_set("key2", lambda: "loaded", -5) == "loaded"
    assert cache.has_key("key2") is False


def test_float_timeout(cache):
    cache.set("key1", "spam", 100.2)
    assert cache.get("key1") == "spam"


def test_default_timeout_is_the_configured_one(caches):
    default = caches.make()
    assert default.default_timeout == 300
    default.set("k300", "v")
    assert 299 <= caches.redis.ttl("k300") <= 300
    short = caches.make(TIMEOUT=60)
    short.set("k60", "v")
    short.set_many({"k60b": "v"})
    short.add("k60c", "v")
    assert short.get_or_set("k60d", lambda: "v") == "v"
    for key in ("k60", "k60b", "k60c", "k60d"):
        assert 59 <= caches.redis.ttl(key) <= 60, key
    never = caches.make(TIMEOUT=None)
    never.set("forever", "v")
    assert caches.redis.ttl("forever") == -1


def test_get_backend_timeout_method(cache):
    assert cache.get_backend_timeout(10) == 10
    assert cache.get_backend_timeout(-5) == 0
    assert cache.get_backend_timeout(None) is None
    assert cache.get_backend_timeout(DEFAULT_TIMEOUT) == 300


def _perform_invalid_key_test(cache, key, expected_warning, key_func=None):
    def func(key, *args):
        return key

    old_func = cache.key_func
    cache.key_func = key_func or func
    tests = [
        ("add", [key, 1]),
        ("get", [key]),
        ("set", [key, 1]),
        ("incr", [key]),
        ("decr", [key]),
        ("touch", [key]),
        ("delete", [key]),
        ("get_many", [[key, "b"]]),
        ("set_many", [{key: 1, "b": 2}]),
        ("delete_many", [[key, "b"]]),
        ("get_or_set", [key, 1]),
        ("has_key", [key]),
    ]
    try:
        for operation, args in tests:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                getattr(cache, operation)(*args)
            cache_warnings = [w for w in caught if issubclass(w.category, CacheKeyWarning)]
            assert cache_warnings, f"{operation} did not warn"
            assert str(cache_warnings[0].message) == expected_warning, operation
    finally:
        cache.key_func = old_func


def test_invalid_key_characters(cache):
    key = "key with spaces and 清"
    _perform_invalid_key_test(cache, key, KEY_ERRORS_WITH_MEMCACHED_MSG % key)


def test_invalid_key_length(cache):
    key = ("a" * 250) + "清"
    expected_warning = (
        "Cache key will cause errors if used with memcached: %r (longer than %s)" % (key, 250)  # noqa: UP031
    )
    _perform_invalid_key_test(cache, key, expected_warning)


def test_invalid_with_version_key_length(cache):
    def key_func(key, *args):
        return key + ":1"

    key = "a" * 249
    expected_warning = (
        f"Cache key will cause errors if used with memcached: {key_func(key)!r} (longer than 250)"
    )
    _perform_invalid_key_test(cache, key, expected_warning, key_func=key_func)


def test_the_default_key_function_warns_on_the_key_as_given(cache):
    # No prefix: the key itself is made, and warned about (Django's own
    # default key function would warn about ":1:key with spaces").
    with pytest.warns(CacheKeyWarning, match="'key with spaces'"):
        cache.set("key with spaces", "v")
    with pytest.warns(CacheKeyWarning):
        assert cache.get("key with spaces") == "v"


def test_cache_versioning_get_set(caches, cache):
    v2 = caches["v2"]
    cache.set("answer1", 42)
    assert cache.get("answer1") == 42
    assert cache.get("answer1", version=1) == 42
    assert cache.get("answer1", version=2) is None
    assert v2.get("answer1") is None
    assert v2.get("answer1", version=1) == 42
    assert v2.get("answer1", version=2) is None

    cache.set("answer2", 42, version=2)
    assert cache.get("answer2") is None
    assert cache.get("answer2", version=1) is None
    assert cache.get("answer2", version=2) == 42
    assert v2.get("answer2") == 42
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) == 42

    v2.set("answer3", 42)
    assert cache.get("answer3") is None
    assert cache.get("answer3", version=1) is None
    assert cache.get("answer3", version=2) == 42
    assert v2.get("answer3") == 42
    assert v2.get("answer3", version=1) is None
    assert v2.get("answer3", version=2) == 42

    v2.set("answer4", 42, version=1)
    assert cache.get("answer4") == 42
    assert cache.get("answer4", version=1) == 42
    assert cache.get("answer4", version=2) is None
    assert v2.get("answer4") is None
    assert v2.get("answer4", version=1) == 42
    assert v2.get("answer4", version=2) is None


def test_cache_versioning_add(caches, cache):
    v2 = caches["v2"]
    assert cache.add("answer1", 42, version=2) is True
    assert cache.get("answer1", version=1) is None
    assert cache.get("answer1", version=2) == 42
    assert cache.add("answer1", 37, version=2) is False
    assert cache.get("answer1", version=1) is None
    assert cache.get("answer1", version=2) == 42
    assert cache.add("answer1", 37, version=1) is True
    assert cache.get("answer1", version=1) == 37
    assert cache.get("answer1", version=2) == 42

    assert v2.add("answer2", 42) is True
    assert cache.get("answer2", version=1) is None
    assert cache.get("answer2", version=2) == 42
    assert v2.add("answer2", 37) is False
    assert cache.get("answer2", version=1) is None
    assert cache.get("answer2", version=2) == 42
    assert v2.add("answer2", 37, version=1) is True
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) == 42

    assert v2.add("answer3", 42, version=1) is True
    assert cache.get("answer3", version=1) == 42
    assert cache.get("answer3", version=2) is None
    assert v2.add("answer3", 37, version=1) is False
    assert cache.get("answer3", version=1) == 42
    assert cache.get("answer3", version=2) is None
    assert v2.add("answer3", 37) is True
    assert cache.get("answer3", version=1) == 42
    assert cache.get("answer3", version=2) == 37


def test_cache_versioning_has_key(caches, cache):
    cache.set("answer1", 42)
    assert cache.has_key("answer1") is True
    assert cache.has_key("answer1", version=1) is True
    assert cache.has_key("answer1", version=2) is False
    assert caches["v2"].has_key("answer1") is False
    assert caches["v2"].has_key("answer1", version=1) is True
    assert caches["v2"].has_key("answer1", version=2) is False


def test_cache_versioning_delete(caches, cache):
    cache.set("answer1", 37, version=1)
    cache.set("answer1", 42, version=2)
    assert cache.delete("answer1") is True
    assert cache.get("answer1", version=1) is None
    assert cache.get("answer1", version=2) == 42

    cache.set("answer2", 37, version=1)
    cache.set("answer2", 42, version=2)
    assert cache.delete("answer2", version=2) is True
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) is None

    cache.set("answer3", 37, version=1)
    cache.set("answer3", 42, version=2)
    assert caches["v2"].delete("answer3") is True
    assert cache.get("answer3", version=1) == 37
    assert cache.get("answer3", version=2) is None

    cache.set("answer4", 37, version=1)
    cache.set("answer4", 42, version=2)
    assert caches["v2"].delete("answer4", version=1) is True
    assert cache.get("answer4", version=1) is None
    assert cache.get("answer4", version=2) == 42


def test_cache_versioning_incr_decr(caches, cache):
    v2 = caches["v2"]
    cache.set("answer1", 37, version=1)
    cache.set("answer1", 42, version=2)
    assert cache.incr("answer1") == 38
    assert cache.get("answer1", version=1) == 38
    assert cache.get("answer1", version=2) == 42
    assert cache.decr("answer1") == 37
    assert cache.get("answer1", version=1) == 37
    assert cache.get("answer1", version=2) == 42

    cache.set("answer2", 37, version=1)
    cache.set("answer2", 42, version=2)
    assert cache.incr("answer2", version=2) == 43
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) == 43
    assert cache.decr("answer2", version=2) == 42
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) == 42

    cache.set("answer3", 37, version=1)
    cache.set("answer3", 42, version=2)
    assert v2.incr("answer3") == 43
    assert cache.get("answer3", version=1) == 37
    assert cache.get("answer3", version=2) == 43
    assert v2.decr("answer3") == 42
    assert cache.get("answer3", version=1) == 37
    assert cache.get("answer3", version=2) == 42

    cache.set("answer4", 37, version=1)
    cache.set("answer4", 42, version=2)
    assert v2.incr("answer4", version=1) == 38
    assert cache.get("answer4", version=1) == 38
    assert cache.get("answer4", version=2) == 42
    assert v2.decr("answer4", version=1) == 37
    assert cache.get("answer4", version=1) == 37
    assert cache.get("answer4", version=2) == 42


def test_cache_versioning_get_set_many(caches, cache):
    v2 = caches["v2"]
    cache.set_many({"ford1": 37, "arthur1": 42})
    assert cache.get_many(["ford1", "arthur1"]) == {"ford1": 37, "arthur1": 42}
    assert cache.get_many(["ford1", "arthur1"], version=1) == {"ford1": 37, "arthur1": 42}
    assert cache.get_many(["ford1", "arthur1"], version=2) == {}
    assert v2.get_many(["ford1", "arthur1"]) == {}
    assert v2.get_many(["ford1", "arthur1"], version=1) == {"ford1": 37, "arthur1": 42}
    assert v2.get_many(["ford1", "arthur1"], version=2) == {}

    cache.set_many({"ford2": 37, "arthur2": 42}, version=2)
    assert cache.get_many(["ford2", "arthur2"]) == {}
    assert cache.get_many(["ford2", "arthur2"], version=1) == {}
    assert cache.get_many(["ford2", "arthur2"], version=2) == {"ford2": 37, "arthur2": 42}
    assert v2.get_many(["ford2", "arthur2"]) == {"ford2": 37, "arthur2": 42}
    assert v2.get_many(["ford2", "arthur2"], version=1) == {}
    assert v2.get_many(["ford2", "arthur2"], version=2) == {"ford2": 37, "arthur2": 42}

    v2.set_many({"ford3": 37, "arthur3": 42})
    assert cache.get_many(["ford3", "arthur3"]) == {}
    assert cache.get_many(["ford3", "arthur3"], version=1) == {}
    assert cache.get_many(["ford3", "arthur3"], version=2) == {"ford3": 37, "arthur3": 42}
    assert v2.get_many(["ford3", "arthur3"]) == {"ford3": 37, "arthur3": 42}
    assert v2.get_many(["ford3", "arthur3"], version=1) == {}
    assert v2.get_many(["ford3", "arthur3"], version=2) == {"ford3": 37, "arthur3": 42}

    v2.set_many({"ford4": 37, "arthur4": 42}, version=1)
    assert cache.get_many(["ford4", "arthur4"]) == {"ford4": 37, "arthur4": 42}
    assert cache.get_many(["ford4", "arthur4"], version=1) == {"ford4": 37, "arthur4": 42}
    assert cache.get_many(["ford4", "arthur4"], version=2) == {}
    assert v2.get_many(["ford4", "arthur4"]) == {}
    assert v2.get_many(["ford4", "arthur4"], version=1) == {"ford4": 37, "arthur4": 42}
    assert v2.get_many(["ford4", "arthur4"], version=2) == {}


def test_incr_version(caches, cache):
    v2 = caches["v2"]
    cache.set("answer", 42, version=2)
    assert cache.get("answer") is None
    assert cache.get("answer", version=1) is None
    assert cache.get("answer", version=2) == 42
    assert cache.get("answer", version=3) is None
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer") is None
    assert cache.get("answer", version=1) is None
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42

    v2.set("answer2", 42)
    assert v2.get("answer2") == 42
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) == 42
    assert v2.get("answer2", version=3) is None
    assert v2.incr_version("answer2") == 3
    assert v2.get("answer2") is None
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) is None
    assert v2.get("answer2", version=3) == 42

    with pytest.raises(ValueError):
        cache.incr_version("does_not_exist")
    cache.set("null", None)
    assert cache.incr_version("null") == 2


def test_decr_version(caches, cache):
    v2 = caches["v2"]
    cache.set("answer", 42, version=2)
    assert cache.get("answer") is None
    assert cache.get("answer", version=1) is None
    assert cache.get("answer", version=2) == 42
    assert cache.decr_version("answer", version=2) == 1
    assert cache.get("answer") == 42
    assert cache.get("answer", version=1) == 42
    assert cache.get("answer", version=2) is None

    v2.set("answer2", 42)
    assert v2.get("answer2") == 42
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) == 42
    assert v2.decr_version("answer2") == 1
    assert v2.get("answer2") is None
    assert v2.get("answer2", version=1) == 42
    assert v2.get("answer2", version=2) is None

    with pytest.raises(ValueError):
        cache.decr_version("does_not_exist", version=2)
    cache.set("null", None, version=2)
    assert cache.decr_version("null", version=2) == 1


def test_custom_key_func(caches, cache):
    cache.set("answer1", 42)
    assert cache.get("answer1") == 42
    assert caches["custom_key"].get("answer1") is None
    assert caches["custom_key2"].get("answer1") is None
    caches["custom_key"].set("answer2", 42)
    assert cache.get("answer2") is None
    assert caches["custom_key"].get("answer2") == 42
    assert caches["custom_key2"].get("answer2") == 42
    assert caches.redis.exists("CUSTOM--1-answer2") == 1, "the key function made the key"


def test_add_fail_on_pickleerror(cache):
    with pytest.raises(pickle.PickleError):
        cache.add("unpicklable", Unpicklable())


def test_set_fail_on_pickleerror(cache):
    with pytest.raises(pickle.PickleError):
        cache.set("unpicklable", Unpicklable())


def test_get_or_set(cache):
    assert cache.get("projector") is None
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("null", None) is None
    # The previous get_or_set() stored None.
    assert cache.get("null", "default") is None
    assert cache.get_or_set("projector", 43) == 42, "only if absent, as add()"


def test_get_or_set_callable(cache):
    def my_callable():
        return "value"

    assert cache.get_or_set("mykey", my_callable) == "value"
    assert cache.get_or_set("mykey", my_callable()) == "value"
    assert cache.get_or_set("null", lambda: None) is None
    assert cache.get("null", "default") is None


def test_get_or_set_version(cache):
    msg = "get_or_set() missing 1 required positional argument: 'default'"
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    with pytest.raises(TypeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        cache.get_or_set("brian")
    with pytest.raises(TypeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        cache.get_or_set("brian", version=1)
    assert cache.get("brian", version=1) is None
    assert cache.get_or_set("brian", 42, version=1) == 42
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    assert cache.get("brian", version=3) is None


def test_get_or_set_racing(caches, cache):
    """Django's: when the value cannot be stored (another caller holds the
    key), the default is returned. Here another caller's lease holds it."""
    caches.redis.set("key", LEASE_PREFIX + b"someone-else", px=10_000)
    assert cache.get_or_set("key", "default") == "default"
    assert cache.get_or_set("key", lambda: "loaded") == "loaded"
    assert caches.redis.get("key") == LEASE_PREFIX + b"someone-else", "nothing was stored"


def test_the_async_api(caches, cache):
    async def run() -> None:
        await cache.aset("a", 1, tags=["async"])
        assert await cache.aget("a") == 1
        assert await cache.aincr("a", 2) == 3
        assert await cache.adecr("a") == 2
        assert await cache.aadd("a", 5) is False
        assert await cache.aget_or_set("b", lambda: "loaded") == "loaded"
        assert await cache.aget_many(["a", "b", "c"]) == {"a": 2, "b": "loaded"}
        assert await cache.ahas_key("b") is True
        assert await cache.atouch("b", None) is True
        assert await cache.aset_many({"c": "x", "d": "y"}) == []
        await cache.adelete_many(["c", "d"])
        assert await cache.aget_many(["c", "d"]) == {}
        assert await cache.adelete("b") is True

    asyncio.run(run())
    assert caches.redis.zscore(index_key("async"), "a") is not None


# --- What is ours ------------------------------------------------------------


def test_keys_are_the_keys_a_rule_names(caches, cache):
    cache.set("turnus_data_1", {"page": 1})
    cache.set("user_profile_2", "profile")
    assert caches.redis.exists("turnus_data_1", "user_profile_2") == 2
    cache.set("turnus_data_1", "v2 key", version=2)
    caches["prefix"].set("turnus_data_1", "prefixed")
    caches["v2"].set("turnus_data_3", "v2")
    prefix = caches["prefix"].key_prefix
    assert caches.redis.get(f"{prefix}:1:turnus_data_1") is not None
    assert caches.redis.get(":2:turnus_data_1") is not None
    assert caches.redis.get(":2:turnus_data_3") is not None
    # A version given as text is the same version.
    assert cache.get("turnus_data_1", version="1") == {"page": 1}


def test_integers_are_stored_as_integers_and_the_rest_pickled(caches, cache):
    cache.set("count", 41)
    assert caches.redis.get("count") == b"41"
    assert caches.redis.incr("count") == 42
    assert cache.get("count") == 42
    assert cache.get_or_set("filled", lambda: 7) == 7
    assert caches.redis.get("filled") == b"7"
    assert cache.get_or_set("filled", lambda: 8) == 7
    cache.set("text", "7")
    assert pickle.loads(caches.redis.get("text")) == "7"
    assert cache.get("text") == "7"
    cache.set("flag", True)
    assert cache.get("flag") is True


def test_a_lease_marker_reads_as_a_miss(caches, cache):
    caches.redis.set("leased", LEASE_PREFIX + b"token", px=10_000)
    assert cache.get("leased", "default") == "default"
    assert cache.get_many(["leased"]) == {}
    assert cache.has_key("leased") is False
    assert "leased" not in cache
    with pytest.raises(ValueError, match="leased"):
        cache.incr("leased")
    assert cache.touch("leased", 60) is False
    assert cache.add("leased", "mine") is False, "the lease holder's value wins"
    assert 0 < caches.redis.pttl("leased") <= 10_000, "the lease keeps its own life"
    assert cache.delete("leased") is True, "a delete is an invalidation: it defeats the lease"
    assert caches.redis.exists("leased") == 0


def test_tags_are_written_in_invalidators_layout(caches, cache):
    cache.set("offer:1", {"price": 1}, 60, tags=["vehicle:A", "offers"])
    for tag in ("vehicle:A", "offers"):
        score = caches.redis.zscore(index_key(tag), "offer:1")
        assert score is not None and score != float("inf"), tag
    assert cache.add("offer:2", "x", None, tags=["vehicle:A"]) is True
    assert caches.redis.zscore(index_key("vehicle:A"), "offer:2") == float("inf")
    assert cache.get_or_set("offer:3", lambda: "y", 60, tags=["vehicle:B"]) == "y"
    assert caches.redis.zscore(index_key("vehicle:B"), "offer:3") is not None
    before = caches.redis.zscore(index_key("offers"), "offer:1")
    assert cache.touch("offer:1", None, tags=["vehicle:A", "offers"]) is True
    assert caches.redis.zscore(index_key("offers"), "offer:1") == float("inf") != before
    assert caches.redis.ttl("offer:1") == -1
    # Prefixed keys are indexed as stored; tags themselves are not prefixed.
    caches["prefix"].set("offer:4", "z", tags=["vehicle:A"])
    prefix = caches["prefix"].key_prefix
    assert caches.redis.zscore(index_key("vehicle:A"), f"{prefix}:1:offer:4") is not None
    with pytest.raises(InvalidInput, match="tag ''"):
        cache.set("offer:5", "v", tags=[""])


def test_a_key_inside_the_tag_indexes_is_refused(cache):
    with pytest.raises(ValueError, match="inv:tag:x"):
        cache.set("inv:tag:x", "v")
    with pytest.raises(ValueError, match="inv:tag:x"):
        cache.get("inv:tag:x")


def test_get_or_set_does_not_store_a_value_loaded_before_an_invalidation(caches, cache):
    """The race Django's get_or_set has: the value is read from the
    database, a commit changes the row and `serve` unlinks the key, then
    the old value is stored. With the lease, it is not."""
    loads = []

    def load_then_a_commit_lands() -> dict[str, str]:
        loads.append(1)
        value = {"name": "read before the commit"}
        caches.redis.unlink("turnus_data_1")  # what serve does for the commit
        return value

    got = cache.get_or_set("turnus_data_1", load_then_a_commit_lands, tags=["t1"])
    assert got == {"name": "read before the commit"}, "the caller gets what it loaded"
    assert caches.redis.exists("turnus_data_1") == 0, "nothing is stored"
    assert cache.get("turnus_data_1") is None
    assert cache.get_or_set("turnus_data_1", lambda: {"name": "fresh"}) == {"name": "fresh"}
    assert cache.get("turnus_data_1") == {"name": "fresh"}
    assert len(loads) == 1


def test_concurrent_get_or_set_wait_for_one_load(caches):
    cache = caches.make(OPTIONS={"wait_seconds": 5})
    started = threading.Event()
    results: list[Any] = []

    def slow() -> str:
        started.set()
        time.sleep(0.3)
        return "loaded once"

    holder = threading.Thread(target=lambda: results.append(cache.get_or_set("k", slow)))
    holder.start()
    assert started.wait(5)
    assert cache.get("k") is None, "the lease reads as a miss"
    assert cache.get_or_set("k", lambda: pytest.fail("loaded twice")) == "loaded once"
    holder.join()
    assert results == ["loaded once"]


def test_a_failing_default_propagates_and_frees_the_key(caches, cache):
    def fail() -> str:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get_or_set("k", fail)
    assert caches.redis.exists("k") == 0, "the lease was given back"


def test_backends_of_one_process_share_one_client(caches):
    a = caches.make()
    b = caches.make(KEY_PREFIX="other", TIMEOUT=5)
    assert a.cache is b.cache, "same location and options: one client, one pool"
    c = caches.make(OPTIONS={"socket_timeout": 5})
    assert c.cache is not a.cache
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(caches.make().cache))
    thread.start()
    thread.join()
    assert results == [a.cache], "threads share it too"


@pytest.mark.parametrize(
    ("location", "options", "named"),
    [
        ("http://127.0.0.1:6379", {}, "http://127.0.0.1:6379"),
        (["redis://a:1", "redis://b:1"], {}, "one Redis URL"),
        ("redis://127.0.0.1:1", {"fail_open": "yes"}, "fail_open"),
        ("redis://127.0.0.1:1", {"lease_seconds": 0}, "lease_seconds"),
        ("redis://127.0.0.1:1", {"wait_seconds": -1}, "wait_seconds"),
    ],
)
def test_a_bad_configuration_is_named(location, options, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        InvalidatorCache(location, {"OPTIONS": options})


def test_options_go_to_redis_py_and_culling_options_are_ignored(redis_node):
    cache = InvalidatorCache(
        [redis_node.url],
        {"OPTIONS": {"MAX_ENTRIES": 30, "CULL_FREQUENCY": 0, "socket_timeout": 2.5}},
    )
    for i in range(40):
        cache.set(f"k{i}", i)
    assert cache.get_many([f"k{i}" for i in range(40)]) == {f"k{i}": i for i in range(40)}
    pool = cache.cache.client.connection_pool
    assert pool.connection_kwargs["socket_timeout"] == 2.5


# --- Failing open ------------------------------------------------------------


def test_reads_fail_open_and_writes_raise(caplog):
    node = RedisNode()
    cache = InvalidatorCache(node.url, {"OPTIONS": dict(QUICK)})
    cache.set("turnus_data_1", "cached")
    assert cache.get("turnus_data_1") == "cached"
    node.stop()
    loads = []

    def load() -> str:
        loads.append(1)
        return "from the database"

    assert cache.get("turnus_data_1") is None
    assert cache.get("turnus_data_1", "default") == "default"
    assert cache.get_many(["turnus_data_1"]) == {}
    assert cache.has_key("turnus_data_1") is False
    assert cache.get_or_set("turnus_data_1", load) == "from the database"
    assert cache.get_or_set("turnus_data_1", load) == "from the database"
    assert cache.get_or_set("turnus_data_1", "plain") == "plain"
    assert len(loads) == 2, "nothing was stored"
    assert cache.health == {
        "fail_open_reads": 7,
        "outages": 1,
        "in_outage": True,
        "skipped_while_down": 6,
    }
    writes = {
        "set": lambda: cache.set("k", "v"),
        "add": lambda: cache.add("k", "v"),
        "touch": lambda: cache.touch("k"),
        "incr": lambda: cache.incr("k"),
        "delete": lambda: cache.delete("k"),
        "set_many": lambda: cache.set_many({"k": "v"}),
        "delete_many": lambda: cache.delete_many(["k"]),
        "clear": lambda: cache.clear(),
    }
    for name, write in writes.items():
        with pytest.raises(redis.exceptions.ConnectionError):
            write()
            pytest.fail(f"{name} did not raise")
    warnings_logged = [r for r in caplog.records if r.name == "invalidator.cache"]
    assert len(warnings_logged) == 1, [r.getMessage() for r in warnings_logged]


def test_fail_open_false_raises_on_reads():
    cache = InvalidatorCache(
        f"redis://127.0.0.1:{free_port()}", {"OPTIONS": {**QUICK, "fail_open": False}}
    )
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.get("k")
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.get_or_set("k", lambda: pytest.fail("the default was loaded"))


def test_a_cluster_that_cannot_be_reached_at_start_fails_open():
    cache = InvalidatorCache(f"redis+cluster://127.0.0.1:{free_port()}", {"OPTIONS": QUICK})
    assert cache.get("k", "default") == "default"
    assert cache.get_or_set("k", lambda: "loaded") == "loaded"
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.set("k", "v")


# --- With serve --------------------------------------------------------------


def kinder(turnus_id: int, row_id: int = 1) -> dict[str, Any]:
    """A commit updating a child of `turnus_id`: the turnus rule names
    `turnus_data_{turnus_id}`."""
    row = {"id": row_id, "turnus_id": turnus_id, "name": "anna"}
    return {
        "txn": f"kinder-{row_id}-{time.monotonic_ns()}",
        "writes": [
            {"table": "kinder", "op": "update", "key": {"id": row_id}, "before": row, "after": row}
        ],
    }


def commit(serve: Serve, body: dict[str, Any]) -> None:
    """Posts a commit to serve; answered once its invalidations are applied."""
    request = urllib.request.Request(
        serve.url + "/v1/commits?wait=true", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200, answer.read()


def test_serve_invalidates_a_key_written_through_the_backend(redis_node):
    service = Serve(redis_node.url)
    try:
        cache = InvalidatorCache(redis_node.url, {})
        cache.set("turnus_data_1", {"page": 1})
        cache.set("turnus_data_2", {"page": 2})
        commit(service, kinder(1))
        assert cache.get("turnus_data_1") is None, "".join(service.log[-50:])
        assert cache.get("turnus_data_2") == {"page": 2}
    finally:
        service.stop()


def test_serve_invalidates_a_prefixed_key_with_its_key_prefix(redis_node):
    """KEY_PREFIX "site" and VERSION 2 store `site:2:turnus_data_1`;
    serve, told `key_prefix = "site:2:"`, unlinks it (needs the host's
    `[pipeline] key_prefix`)."""
    service = Serve(redis_node.url, env={"INVALIDATOR_PIPELINE__KEY_PREFIX": "site:2:"})
    try:
        cache = InvalidatorCache(redis_node.url, {"KEY_PREFIX": "site", "VERSION": 2})
        raw = redis.Redis.from_url(redis_node.url)
        cache.set("turnus_data_1", {"page": 1})
        cache.set("turnus_data_2", {"page": 2})
        raw.set("turnus_data_1", b"an unprefixed key: not the application's")
        assert raw.exists("site:2:turnus_data_1") == 1
        commit(service, kinder(1))
        assert cache.get("turnus_data_1") is None, "".join(service.log[-50:])
        assert cache.get("turnus_data_2") == {"page": 2}
        assert raw.get("turnus_data_1") is not None, "only the prefixed key is the rule's"
    finally:
        service.stop()


def test_a_commit_while_get_or_set_loads_defeats_its_lease(redis_node):
    service = Serve(redis_node.url)
    try:
        cache = InvalidatorCache(redis_node.url, {})

        def load_then_commit() -> str:
            value = "read before the commit"
            commit(service, kinder(1))
            return value

        assert cache.get_or_set("turnus_data_1", load_then_commit) == "read before the commit"
        assert cache.get("turnus_data_1") is None, "the old value was not stored"
        assert cache.get_or_set("turnus_data_1", lambda: "fresh") == "fresh"
        assert cache.get("turnus_data_1") == "fresh"
    finally:
        service.stop()


# --- Through Django's own cache handler --------------------------------------

HANDLER = """
import json, sys
from django.conf import settings
settings.configure(CACHES={"default": {
    "BACKEND": "invalidator.contrib.django.cache.InvalidatorCache",
    "LOCATION": sys.argv[1],
    "OPTIONS": {"socket_timeout": 5},
}})
import django
django.setup()
from django.core.cache import cache, caches
cache.set("turnus_data_1", {"page": 1})
print(json.dumps({
    "class": type(caches["default"]).__name__,
    "value": cache.get("turnus_data_1"),
    "filled": cache.get_or_set("user_profile_2", lambda: "profile"),
}))
"""


def test_djangos_cache_handler_makes_the_backend_from_settings(redis_node, tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-c", HANDLER, redis_node.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "class": "InvalidatorCache",
        "value": {"page": 1},
        "filled": "profile",
    }
    raw = redis.Redis.from_url(redis_node.url)
    assert pickle.loads(raw.get("turnus_data_1")) == {"page": 1}
    assert pickle.loads(raw.get("user_profile_2")) == "profile"


def test_a_near_cache_is_an_option_and_its_hits_are_counted(redis_node: RedisNode) -> None:
    backend = InvalidatorCache(
        redis_node.url, {"OPTIONS": {"local": {"max_items": 100, "max_age": 30}}}
    )
    local = backend.cache.local
    assert local is not None and local.wait_tracking(10)
    backend.set("turnus_data_1", {"n": 1})
    deadline = time.monotonic() + 2
    while local.peek("turnus_data_1") is None:
        assert backend.get("turnus_data_1") == {"n": 1}
        assert time.monotonic() < deadline, "the value is never held"
        time.sleep(0.01)
    assert backend.get("turnus_data_1") == {"n": 1}
    assert backend.stats()["turnus"]["local_hits"] >= 1
    # Another process's write reaches this one's near cache.
    redis.Redis(port=redis_node.port).delete("turnus_data_1")
    deadline = time.monotonic() + 2
    while local.peek("turnus_data_1") is not None:
        assert time.monotonic() < deadline, "the delete never reached the near cache"
        time.sleep(0.01)
    assert backend.get("turnus_data_1") is None
    local.close()


@pytest.mark.parametrize(
    ("local", "says"),
    [
        ("yes", "give a dict of invalidator.LocalCache's arguments"),
        ({"size": 10}, "has ['size'], which LocalCache does not take"),
        ({"max_items": 0}, "max_items is 0"),
    ],
)
def test_a_near_cache_option_that_cannot_work_is_refused_naming_it(local: Any, says: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="OPTIONS\\['local'\\]") as refused:
        InvalidatorCache("redis://127.0.0.1:1/0", {"OPTIONS": {"local": local}})
    assert says in str(refused.value)
