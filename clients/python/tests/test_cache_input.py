"""What `Cache` (and the Django backend over it) refuses, against a real
Redis: tags given as one string (which would tag the key with each of its
characters), values that begin with the lease marker's prefix (which
would read as a miss for ever), and arguments of the wrong type or out of
range, each with `InvalidInput` naming the argument, never redis-py's
`DataError`, a `TypeError` or a `ValueError` of the standard library, and
with nothing stored. Then property tests with hypothesis: any input is
either stored and read back as given, or refused with `InvalidInput`."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import RedisNode
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given, settings
from hypothesis import strategies as st

from invalidator import Cache, InvalidInput, index_key
from invalidator.cache import LEASE_PREFIX, MAX_TTL_SECONDS, TAG_PREFIX
from invalidator.contrib.django.cache import InvalidatorCache


@pytest.fixture(scope="module")
def node() -> Iterator[RedisNode]:
    node = RedisNode()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def shared(node: RedisNode) -> Cache:
    return Cache.from_url(node.url)


@pytest.fixture
def cache(shared: Cache) -> Cache:
    shared.client.flushdb()
    return shared


@pytest.fixture
def django(node: RedisNode, cache: Cache) -> InvalidatorCache:
    return InvalidatorCache(node.url, {})


def stored(cache: Cache) -> list[bytes]:
    return sorted(cache.client.keys("*"))


# --- Tags given as one string --------------------------------------------

TAGGERS: list[tuple[str, Callable[[Cache, Any], Any]]] = [
    ("set", lambda c, tags: c.set("k", b"v", tags=tags)),
    ("add", lambda c, tags: c.add("k", b"v", tags=tags)),
    ("touch", lambda c, tags: c.touch("k", 60, tags=tags)),
    ("get_or_fill", lambda c, tags: c.get_or_fill("k", lambda: b"v", tags=tags)),
]


@pytest.mark.parametrize("tags", ["inventory", b"inventory"])
@pytest.mark.parametrize(("method", "call"), TAGGERS, ids=[name for name, _ in TAGGERS])
def test_tags_given_as_one_string_are_refused(
    cache: Cache, method: str, call: Callable[[Cache, Any], Any], tags: Any
) -> None:
    if method == "touch":
        cache.set("k", b"v")
    with pytest.raises(InvalidInput, match=r"tags of key `k` is .*inventory.*give a list"):
        call(cache, tags)
    assert not cache.client.keys(f"{TAG_PREFIX}*"), "no index may be written"
    assert stored(cache) == ([b"k"] if method == "touch" else [])


DJANGO_TAGGERS: list[tuple[str, Callable[[InvalidatorCache, Any, Any], Any]]] = [
    ("set", lambda d, timeout, tags: d.set("k", 1, timeout, tags=tags)),
    ("add", lambda d, timeout, tags: d.add("k", 1, timeout, tags=tags)),
    ("touch", lambda d, timeout, tags: d.touch("k", timeout, tags=tags)),
    ("get_or_set", lambda d, timeout, tags: d.get_or_set("k", 1, timeout, tags=tags)),
]


@pytest.mark.parametrize("timeout", [60, 0])
@pytest.mark.parametrize(
    ("method", "call"), DJANGO_TAGGERS, ids=[name for name, _ in DJANGO_TAGGERS]
)
def test_the_django_backend_refuses_tags_given_as_one_string(
    django: InvalidatorCache,
    cache: Cache,
    method: str,
    call: Callable[[InvalidatorCache, Any, Any], Any],
    timeout: int,
) -> None:
    # With a timeout of 0 nothing is stored: refused all the same, so that
    # the mistake shows whatever the timeout.
    django.set("k", 1)
    with pytest.raises(InvalidInput, match=r"tags of key `k` is the string 'inventory'"):
        call(django, timeout, "inventory")
    assert stored(cache) == [b"k"]
    assert not cache.client.keys(f"{TAG_PREFIX}*")


# --- Values that begin with the lease marker's prefix --------------------

LEASE_LIKE = [LEASE_PREFIX, LEASE_PREFIX + b"x", bytearray(LEASE_PREFIX + b"y"), "\x00inv:lease:z"]
WRITERS: list[tuple[str, Callable[[Cache, Any], Any]]] = [
    ("set", lambda c, v: c.set("k", v)),
    ("set tagged", lambda c, v: c.set("k", v, tags=["t"])),
    ("add", lambda c, v: c.add("k", v)),
    ("set_many", lambda c, v: c.set_many({"ok": b"fine", "k": v})),
    ("get_or_fill", lambda c, v: c.get_or_fill("k", lambda: v, tags=["t"])),
]


@pytest.mark.parametrize("value", LEASE_LIKE, ids=repr)
@pytest.mark.parametrize(("method", "call"), WRITERS, ids=[name for name, _ in WRITERS])
def test_a_value_beginning_with_the_lease_prefix_is_refused(
    cache: Cache, method: str, call: Callable[[Cache, Any], Any], value: Any
) -> None:
    with pytest.raises(InvalidInput, match=r"key `k`.* begins with .*lease"):
        call(cache, value)
    # Nothing stored, not even set_many's good value, and a lease taken by
    # get_or_fill is given back: the next fill stores at once instead of
    # waiting for a lease no one will fill. (The lease's index entry stays,
    # as when a loader raises: it names a key that holds nothing.)
    assert [k for k in stored(cache) if not k.startswith(TAG_PREFIX.encode())] == []
    started = time.monotonic()
    assert cache.get_or_fill("k", lambda: b"good", tags=["t"], wait=5) == b"good"
    assert time.monotonic() - started < 1
    assert cache.get("k") == b"good"


def test_the_django_backend_refuses_raw_values_beginning_with_the_lease_prefix(
    node: RedisNode, cache: Cache
) -> None:
    # Pickled values begin with pickle's protocol byte; a serializer that
    # passes bytes as they are can collide.
    raw = InvalidatorCache(node.url, {"OPTIONS": {"serializer": RawSerializer}})
    for write in (
        lambda: raw.set("k", LEASE_PREFIX + b"1"),
        lambda: raw.add("k", LEASE_PREFIX + b"1"),
        lambda: raw.set_many({"k": LEASE_PREFIX + b"1"}),
        lambda: raw.get_or_set("k", lambda: LEASE_PREFIX + b"1"),
    ):
        with pytest.raises(InvalidInput, match="lease"):
            write()
    assert stored(cache) == []
    raw.set("k", b"fine")
    assert raw.get("k") == b"fine"


class RawSerializer:
    def dumps(self, value: bytes) -> bytes:
        return value

    def loads(self, data: bytes) -> bytes:
        return data


# --- Arguments of the wrong type or out of range -------------------------


def call_with(**kwargs: Any) -> Callable[[Cache], Any]:
    """`get_or_fill("k", ...)` with `kwargs`."""
    loader = kwargs.pop("loader", lambda: b"v")
    return lambda c: c.get_or_fill("k", loader, **kwargs)


WRONG: list[tuple[str, Callable[[Cache], Any], str]] = [
    ("value None", lambda c: c.set("k", None), r"value of key `k` is None \(NoneType\)"),
    ("value int", lambda c: c.set("k", 5), r"value of key `k` is 5 \(int\)"),
    ("value float", lambda c: c.set("k", 1.5), r"value of key `k` is 1.5 \(float\)"),
    ("value bool", lambda c: c.set("k", True), r"value of key `k` is True \(bool\)"),
    ("value list", lambda c: c.add("k", [b"v"]), r"value of key `k`"),
    ("value surrogate", lambda c: c.set("k", "a\ud800"), r"value of key `k` .*surrogate"),
    ("set_many value", lambda c: c.set_many({"k": None}), r"value of key `k`"),
    ("set_many list", lambda c: c.set_many([("k", b"v")]), r"values .*mapping"),
    ("ttl str", lambda c: c.set("k", b"v", ttl="60"), r"ttl of key `k` is '60' \(str\)"),
    ("ttl bool", lambda c: c.set("k", b"v", ttl=True), r"ttl of key `k` is True \(bool\)"),
    ("touch ttl str", lambda c: c.touch("k", ttl="60"), r"ttl of key `k` is '60'"),
    ("set_many ttl", lambda c: c.set_many({"k": b"v"}, ttl="1"), r"ttl of key `k`"),
    ("ttl huge", lambda c: c.set("k", b"v", ttl=10**5000), r"ttl of key `k` is <an integer of"),
    ("empty set_many ttl", lambda c: c.set_many({}, ttl=True), r"ttl"),
    ("lease nan", call_with(lease=math.nan), r"lease of key `k` is nan"),
    ("lease inf", call_with(lease=math.inf), r"lease of key `k` is inf"),
    ("lease negative", call_with(lease=-1), r"lease of key `k` is -1"),
    ("lease zero", call_with(lease=0), r"lease of key `k` is 0"),
    ("lease str", call_with(lease="10"), r"lease of key `k` is '10' \(str\)"),
    ("lease bool", call_with(lease=True), r"lease of key `k` is True"),
    ("lease too long", call_with(lease=MAX_TTL_SECONDS * 2), r"lease of key `k`"),
    ("lease huge", call_with(lease=10**5000), r"lease of key `k` is <an integer of"),
    ("wait nan", call_with(wait=math.nan), r"wait of key `k` is nan"),
    ("wait inf", call_with(wait=math.inf), r"wait of key `k` is inf"),
    ("wait negative", call_with(wait=-0.5), r"wait of key `k` is -0.5"),
    ("wait str", call_with(wait="0.5"), r"wait of key `k` is '0.5'"),
    ("wait None", call_with(wait=None), r"wait of key `k` is None"),
    ("loader not callable", call_with(loader=b"v"), r"loader of key `k` is b'v' \(bytes\)"),
    ("loader gives None", call_with(loader=lambda: None), r"loader of key `k` returned is None"),
    ("loader gives int", call_with(loader=lambda: 3), r"loader of key `k` returned is 3"),
    ("loader surrogate", call_with(loader=lambda: "\udcff"), r"loader of key `k` .*surrogate"),
    ("delta bool", lambda c: c.incr("k", True), r"delta of key `k` is True"),
    ("delta too big", lambda c: c.incr("k", 2**63), r"delta of key `k` .*64 signed bits"),
    ("delta huge", lambda c: c.incr("k", -(10**5000)), r"delta of key `k` is <an integer of"),
    ("key surrogate", lambda c: c.set("k\ud800", b"v"), r"key 'k\\ud800' .*surrogate"),
    ("get key surrogate", lambda c: c.get("\udc00"), r"key '\\udc00' .*surrogate"),
    ("tag surrogate", lambda c: c.set("k", b"v", tags=["\ud800"]), r"tag '\\ud800' of key `k`"),
    ("tags None", lambda c: c.set("k", b"v", tags=None), r"tags of key `k` is None"),
    ("tags int", lambda c: c.touch("k", tags=5), r"tags of key `k` is 5 \(int\)"),
    ("get_many text", lambda c: c.get_many("abc"), r"keys .*'abc'.*give a list"),
    ("delete_many text", lambda c: c.delete_many("abc"), r"keys .*'abc'.*give a list"),
    ("get_many int", lambda c: c.get_many(5), r"keys .*5 \(int\)"),
    ("from_url bytes", lambda c: Cache.from_url(b"redis://x"), r"b'redis://x'"),
    ("fail_open str", lambda c: Cache(c.client, fail_open="no"), r"fail_open"),
]


@pytest.mark.parametrize(("call", "named"), [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_wrong_arguments_are_invalid_input_naming_them(
    cache: Cache, call: Callable[[Cache], Any], named: str
) -> None:
    cache.set("a", b"1")  # `delete_many("abc")` must not delete it
    with pytest.raises(InvalidInput, match=named):
        call(cache)
    assert stored(cache) == [b"a"]


@pytest.mark.parametrize(
    "timeout", ["60", True, math.nan, object(), 10**400], ids=["text", "bool", "nan", "obj", "huge"]
)
def test_the_django_backend_names_a_wrong_timeout(
    django: InvalidatorCache, cache: Cache, timeout: Any
) -> None:
    django.set("k", 1)
    for call in (
        lambda: django.set("k", 2, timeout),
        lambda: django.add("j", 2, timeout),
        lambda: django.touch("k", timeout),
        lambda: django.set_many({"k": 2}, timeout),
        lambda: django.get_or_set("j", 2, timeout),
    ):
        with pytest.raises(InvalidInput, match="timeout"):
            call()
    assert django.get("k") == 1, "a NaN timeout (max(0, nan) is 0) must not delete the key"
    assert stored(cache) == [b"k"]


@pytest.mark.parametrize(
    "options",
    [
        {"lease_seconds": math.inf},
        {"lease_seconds": MAX_TTL_SECONDS * 2},
        {"wait_seconds": math.inf},
        {"wait_seconds": math.nan},
        {"retry_after_seconds": math.inf},
    ],
    ids=repr,
)
def test_the_django_backend_refuses_seconds_get_or_fill_would_refuse_at_each_call(
    options: dict[str, float],
) -> None:
    # Named at configuration, not at every get_or_set (or, for
    # retry_after, when the first command makes the client).
    (name,) = options
    with pytest.raises(ImproperlyConfigured, match=name):
        InvalidatorCache("redis://127.0.0.1:1", {"OPTIONS": options})


# --- Properties ----------------------------------------------------------

#: Text that is sometimes not UTF-8: lone surrogates mixed in.
texts = st.one_of(
    st.text(max_size=10),
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=10),
)
#: Keys `Cache` takes.
good_keys = st.text(min_size=1, max_size=10).filter(lambda k: not k.startswith(TAG_PREFIX))
keys = st.one_of(texts, texts.map(lambda t: TAG_PREFIX + t), st.binary(max_size=4), st.none())
values = st.one_of(
    st.binary(max_size=20),
    texts,
    st.binary(max_size=4).map(lambda b: LEASE_PREFIX + b),
    texts.map(lambda t: LEASE_PREFIX.decode() + t),
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
)
tag_lists = st.one_of(
    st.lists(texts, max_size=3),
    st.lists(st.one_of(texts, st.binary(max_size=3), st.none()), max_size=3),
    texts,
    st.binary(max_size=5),
    st.none(),
    st.integers(),
)
numbers_of_any_kind = st.one_of(
    st.none(),
    st.floats(),
    st.integers(),
    st.booleans(),
    texts,
    st.sampled_from([0.001, 60, 3600.5, MAX_TTL_SECONDS]),
)


def utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def valid_key(key: Any) -> bool:
    return isinstance(key, str) and key != "" and utf8(key) and not key.startswith(TAG_PREFIX)


def as_stored(value: Any) -> bytes | None:
    """The bytes `value` is stored as, or None if it must be refused."""
    if isinstance(value, str):
        if not utf8(value):
            return None
        value = value.encode()
    if not isinstance(value, bytes | bytearray) or bytes(value).startswith(LEASE_PREFIX):
        return None
    return bytes(value)


def valid_tags(tags: Any) -> bool:
    return isinstance(tags, list) and all(isinstance(t, str) and t and utf8(t) for t in tags)


def seconds(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def valid_ttl(ttl: Any) -> bool:
    return ttl is None or (seconds(ttl) and 0 < ttl <= MAX_TTL_SECONDS)


def valid_lease(lease: Any) -> bool:
    return seconds(lease) and 0 < lease <= MAX_TTL_SECONDS


def valid_wait(wait: Any) -> bool:
    return seconds(wait) and 0 <= wait < math.inf


def check_stored(cache: Cache, key: str, data: bytes, ttl: Any, tags: list[str]) -> None:
    if ttl is None or ttl >= 10:  # a shorter one may have expired already
        assert cache.get(key) == data
    for tag in tags:
        assert cache.client.zscore(index_key(tag), key) is not None, tag


PROPERTY = settings(max_examples=150, deadline=None, database=None)


@PROPERTY
@given(key=keys, value=values, ttl=numbers_of_any_kind, tags=tag_lists)
def test_set_stores_what_it_is_given_or_raises_invalid_input(
    shared: Cache, key: Any, value: Any, ttl: Any, tags: Any
) -> None:
    shared.client.flushdb()
    data = as_stored(value)
    valid = valid_key(key) and data is not None and valid_ttl(ttl) and valid_tags(tags)
    try:
        shared.set(key, value, ttl=ttl, tags=tags)
    except InvalidInput:
        assert not valid, "refused what is valid"
        assert shared.client.dbsize() == 0, "refused, yet stored"
        return
    assert valid, "stored what is not valid"
    assert data is not None
    check_stored(shared, key, data, ttl, tags)


@PROPERTY
@given(
    key=keys,
    value=values,
    ttl=numbers_of_any_kind,
    tags=tag_lists,
    lease=numbers_of_any_kind,
    wait=numbers_of_any_kind,
)
def test_get_or_fill_stores_its_loaders_value_or_raises_invalid_input(
    shared: Cache, key: Any, value: Any, ttl: Any, tags: Any, lease: Any, wait: Any
) -> None:
    shared.client.flushdb()
    data = as_stored(value)
    valid_input = (
        valid_key(key) and valid_ttl(ttl) and valid_tags(tags) and valid_lease(lease)
    ) and valid_wait(wait)
    try:
        got = shared.get_or_fill(key, lambda: value, ttl=ttl, tags=tags, lease=lease, wait=wait)
    except InvalidInput:
        assert not (valid_input and data is not None), "refused what is valid"
        # Nothing stored, the lease given back, its index entries aside
        # (they point at nothing, and are pruned by the next writer).
        assert not [k for k in shared.client.keys("*") if not k.startswith(b"inv:tag:")]
        return
    assert valid_input and data is not None, "took what is not valid"
    assert got == data
    if lease >= 1:  # a shorter one may have expired before the fill
        check_stored(shared, key, data, ttl, tags)


WRITE_METHODS = ["set", "add", "set_many", "get_or_fill"]


@PROPERTY
@given(
    method=st.sampled_from(WRITE_METHODS),
    key=good_keys,
    suffix=st.one_of(st.binary(max_size=8), texts),
)
def test_a_value_beginning_with_the_lease_prefix_is_always_refused(
    shared: Cache, method: str, key: str, suffix: bytes | str
) -> None:
    shared.client.flushdb()
    value = LEASE_PREFIX + suffix if isinstance(suffix, bytes) else LEASE_PREFIX.decode() + suffix
    with pytest.raises(InvalidInput):
        if method == "set":
            shared.set(key, value)
        elif method == "add":
            shared.add(key, value)
        elif method == "set_many":
            shared.set_many({key: value})
        else:
            shared.get_or_fill(key, lambda: value)
    assert shared.client.dbsize() == 0


@PROPERTY
@given(
    method=st.sampled_from(["set", "add", "touch", "get_or_fill"]),
    key=good_keys,
    tags=st.one_of(texts, st.binary(max_size=8)),
)
def test_tags_given_as_a_string_are_always_refused(
    shared: Cache, method: str, key: str, tags: str | bytes
) -> None:
    shared.client.flushdb()
    with pytest.raises(InvalidInput):
        if method == "set":
            shared.set(key, b"v", tags=tags)
        elif method == "add":
            shared.add(key, b"v", tags=tags)
        elif method == "touch":
            shared.touch(key, tags=tags)
        else:
            shared.get_or_fill(key, lambda: b"v", tags=tags)
    assert shared.client.dbsize() == 0
