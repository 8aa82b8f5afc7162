"""The project's own Lua scripts, the host's (`host/src/layout/lua/`), so
that tags are indexed exactly as the host invalidates them.

The repository holds one copy, the host's: the package's build copies it
into the built package's `lua/` folder (see `setup.py`). An editable install
has no such folder, and reads the scripts from the repository, found from
this file. Each script is read as its exact bytes: the text Redis is sent
hashes to the SHA1 of the host's file."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def _repository_lua() -> Path:
    """`host/src/layout/lua/` of the repository this file would lie in, as
    `clients/python/src/invalidator/_scripts.py`."""
    root = Path(__file__).resolve()
    for _ in range(5):
        root = root.parent
    return root / "host" / "src" / "layout" / "lua"


def _folder() -> Traversable:
    """The packaged `lua/` folder, or else the repository's."""
    packaged = resources.files("invalidator") / "lua"
    if packaged.is_dir():
        return packaged
    repository = _repository_lua()
    if repository.is_dir():
        return repository
    raise FileNotFoundError(
        f"the Lua scripts of invalidator were not found: not in {packaged} (the "
        f"installed package's) nor in {repository} (a clone of the repository's, "
        "for an editable install); reinstall the package"
    )


FOLDER = _folder()


def load(name: str) -> str:
    """The text of the script `name` (`tagged_set`, say), byte for byte."""
    return (FOLDER / f"{name}.lua").read_bytes().decode("utf-8")


#: Sets a value and registers it under its tags, atomically (one slot).
TAGGED_SET = load("tagged_set")
#: Registers a key already set under one tag (the cluster form).
INDEX_ADD = load("index_add")
#: Invalidates one chunk of a tag, atomically.
TAG_CHUNK = load("tag_chunk")
#: Reads a key, or takes a lease on it to fill it.
LEASE_TAKE = load("lease_take")
#: Fills a key under a lease, unless an invalidation defeated it.
LEASE_FILL = load("lease_fill")
#: Gives a lease back.
LEASE_RELEASE = load("lease_release")
