"""The cache client against real Redis servers, and against the host: a
tag written here is invalidated by `invalidator serve`."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, RedisNode, free_port, wait_until

from invalidator import Cache, InvalidInput, _scripts, index_key

HOST_LUA = ROOT / "host/src/layout/lua"
PACKAGE = Path(__file__).resolve().parents[1]


def host_scripts() -> dict[str, bytes]:
    scripts = {p.name: p.read_bytes() for p in HOST_LUA.glob("*.lua")}
    assert scripts, f"no scripts in {HOST_LUA}"
    return scripts


def test_a_built_wheel_carries_exactly_the_hosts_scripts(tmp_path: Path) -> None:
    # setuptools builds in `build/` and packages whatever it finds there:
    # an earlier build's scripts would hide a build that brings in none.
    shutil.rmtree(PACKAGE / "build", ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    build = subprocess.run(
        [*pip, "-w", str(tmp_path), str(PACKAGE)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout}\n{build.stderr}"
    [wheel] = tmp_path.glob("invalidator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {
            name.removeprefix("invalidator/lua/"): archive.read(name)
            for name in archive.namelist()
            if fnmatch.fnmatch(name, "invalidator/lua/*.lua")
        }
    host = host_scripts()
    assert sorted(packaged) == sorted(host)
    for name, text in host.items():
        assert packaged[name] == text, f"the wheel's {name} differs from {HOST_LUA / name}"
    leftover = PACKAGE / "src/invalidator/lua"
    assert not leftover.exists(), f"the build left copies in {leftover}"


def test_the_package_loads_and_runs_the_hosts_scripts(redis_node: RedisNode) -> None:
    loaded = {
        "tagged_set.lua": _scripts.TAGGED_SET,
        "index_add.lua": _scripts.INDEX_ADD,
        "tag_chunk.lua": _scripts.TAG_CHUNK,
        "lease_take.lua": _scripts.LEASE_TAKE,
        "lease_fill.lua": _scripts.LEASE_FILL,
        "lease_release.lua": _scripts.LEASE_RELEASE,
    }
    host = host_scripts()
    for name, text in loaded.items():
        assert text.encode() == host[name], f"the package's {name} is not {HOST_LUA / name}"
    sha = hashlib.sha1(host["tagged_set.lua"]).hexdigest()
    cache = Cache.from_url(redis_node.url)
    assert cache.client.script_exists(sha) == [False]
    cache.set("py:scripts", b"v", tags=["scripts"])
    assert cache.client.script_exists(sha) == [True], "Redis ran another tagged_set.lua"


def test_scripts_found_nowhere_are_an_error_naming_where_they_were_sought(
    tmp_path: Path,
) -> None:
    tmp_path = tmp_path.resolve()
    package = tmp_path / "invalidator"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copyfile(_scripts.__file__, package / "_scripts.py")
    run = subprocess.run(
        [sys.executable, "-c", "import invalidator._scripts"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert run.returncode != 0
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("FileNotFoundError:"), run.stderr
    assert str(package / "lua") in error
    assert str(tmp_path.parents[2] / "host/src/layout/lua") in error


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
