"""Checking a commit in the JSON event format before it is sent, so that a
mistake is named here rather than refused by the server (or, on a stream,
dead-lettered later).

```
{"txn": "t-1", "source": "app", "writes": [{"table": "customers", "op": "update",
  "key": {"id": "C1"}, "before": {...}, "after": {...}}]}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput

_COMMIT_FIELDS = {"txn", "source", "writes"}
_WRITE_FIELDS = {"table", "op", "key", "before", "after"}
_OPS = {"insert", "update", "delete"}


def check_commit(commit: Any, where: str = "commit") -> None:
    """Raises `InvalidInput`, naming the place, unless `commit` is a valid
    commit; unknown fields are refused, as the server refuses them."""
    if not isinstance(commit, Mapping):
        raise InvalidInput(f"{where} is a {type(commit).__name__}, not a mapping")
    unknown = set(commit) - _COMMIT_FIELDS
    if unknown:
        raise InvalidInput(f"{where} has unknown field(s) {sorted(unknown)}")
    txn = commit.get("txn")
    if not isinstance(txn, str):
        raise InvalidInput(f"{where}: `txn` must be text, not {txn!r}")
    source = commit.get("source")
    if source is not None and not isinstance(source, str):
        raise InvalidInput(f"{where}: `source` must be text, not {source!r}")
    writes = commit.get("writes")
    if not isinstance(writes, list):
        raise InvalidInput(f"{where}: `writes` must be a list, not {writes!r}")
    for i, write in enumerate(writes):
        _check_write(write, f"{where} write [{i}]")


def _check_write(write: Any, where: str) -> None:
    if not isinstance(write, Mapping):
        raise InvalidInput(f"{where} is a {type(write).__name__}, not a mapping")
    unknown = set(write) - _WRITE_FIELDS
    if unknown:
        raise InvalidInput(f"{where} has unknown field(s) {sorted(unknown)}")
    table = write.get("table")
    if not isinstance(table, str) or not table:
        raise InvalidInput(f"{where}: `table` must be non-empty text, not {table!r}")
    op = write.get("op")
    if op not in _OPS:
        raise InvalidInput(f"{where}: `op` must be one of insert, update, delete, not {op!r}")
    if "key" not in write:
        raise InvalidInput(f"{where}: `key` is missing")
    for image in ("key", "before", "after"):
        if image in write and (image == "key" or write[image] is not None):
            _check_row(write[image], f"{where} `{image}`")


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, Mapping):
        raise InvalidInput(f"{where} must be a mapping of columns, not {row!r}")
    for column, value in row.items():
        if not isinstance(column, str):
            raise InvalidInput(f"{where}: column name {column!r} is not text")
        if value is not None and not isinstance(value, bool | int | float | str):
            raise InvalidInput(
                f"{where}: column `{column}` holds a {type(value).__name__}; values are "
                "null, booleans, integers, floats or text"
            )
