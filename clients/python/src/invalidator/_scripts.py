"""The project's own Lua scripts, loaded from the package: the same files
as the host's (`host/src/sink/lua/`), so that tags are indexed exactly as
the host invalidates them. A test checks that the copies are identical."""

from __future__ import annotations

from importlib import resources


def load(name: str) -> str:
    """The text of the bundled script `name` (`tagged_set`, say)."""
    return (resources.files("invalidator") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


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
