"""Checking a commit in the JSON event format before it is sent, so that a
mistake is named here rather than refused by the server (or, on a stream,
dead-lettered later).

```
{"txn": "t-1", "source": "app", "writes": [{"table": "customers", "op": "update",
  "key": {"id": "C1"}, "before": {...}, "after": {...}}]}
```

What passes is what `invalidator serve` accepts (`host/src/commit/json.rs`):
no unknown field; text that is UTF-8 (a Python string may hold a lone
surrogate, which `json` writes as an escape the server refuses); row images
that fit the operation (an insert has `after` and no `before`, an update
has `after`, a delete no `after`; `null` counts as absent); column values
that are JSON scalars, integers within 64 signed bits (the server refuses
some beyond them, and reads the others as rounded floats) and finite floats
(`json` writes NaN and infinities, which are not JSON). Errors name the
field's path: `commit.writes[0].after.price`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput, shown, utf8

_COMMIT_FIELDS = ("txn", "source", "writes")
_WRITE_FIELDS = ("table", "op", "key", "before", "after")
_OPS = ("insert", "update", "delete")
#: The integers a column value may hold: the server's `i64`.
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


def check_commit(commit: Any, where: str = "commit") -> None:
    """Raises `InvalidInput`, naming the path of the offending field (`where`
    is the commit's own), unless `commit` is a commit the server accepts;
    unknown fields are refused, as the server refuses them."""
    if not isinstance(commit, Mapping):
        raise InvalidInput(f"{where} is a {type(commit).__name__}, not a mapping")
    _no_unknown_fields(commit, _COMMIT_FIELDS, where)
    txn = commit.get("txn")
    if not isinstance(txn, str):
        raise InvalidInput(f"{where}.txn must be text, not {shown(txn)}")
    utf8(txn, f"{where}.txn")
    source = commit.get("source")
    if source is not None:
        if not isinstance(source, str):
            raise InvalidInput(f"{where}.source must be text or None, not {shown(source)}")
        utf8(source, f"{where}.source")
    writes = commit.get("writes")
    if not isinstance(writes, list):
        raise InvalidInput(f"{where}.writes must be a list, not {shown(writes)}")
    for i, write in enumerate(writes):
        _check_write(write, f"{where}.writes[{i}]")


def json_default(value: Any) -> Any:
    """`json.dumps`'s `default` for a checked commit: `check_commit` takes
    any mapping (an ORM's row, a `MappingProxyType`), `json` writes only
    dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(commits: Any) -> str:
    """Checked commits (one, or a list) as JSON."""
    return json.dumps(commits, default=json_default)


def _check_write(write: Any, where: str) -> None:
    if not isinstance(write, Mapping):
        raise InvalidInput(f"{where} is a {type(write).__name__}, not a mapping")
    _no_unknown_fields(write, _WRITE_FIELDS, where)
    table = write.get("table")
    if not isinstance(table, str) or not table:
        raise InvalidInput(f"{where}.table must be non-empty text, not {shown(table)}")
    utf8(table, f"{where}.table")
    op = write.get("op")
    # Tested as text first: a list or a dict is not hashable.
    if not isinstance(op, str) or op not in _OPS:
        raise InvalidInput(f"{where}.op must be one of insert, update, delete, not {shown(op)}")
    if "key" not in write:
        raise InvalidInput(f"{where}.key is missing")
    before, after = write.get("before"), write.get("after")
    if op in ("insert", "update") and after is None:
        raise InvalidInput(f"{where}: an {op} needs `after`, the row as written")
    if op == "insert" and before is not None:
        raise InvalidInput(f"{where}: an insert cannot have `before`")
    if op == "delete" and after is not None:
        raise InvalidInput(f"{where}: a delete cannot have `after`")
    _check_row(write["key"], f"{where}.key")
    for image, row in (("before", before), ("after", after)):
        if row is not None:
            _check_row(row, f"{where}.{image}")


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, Mapping):
        raise InvalidInput(f"{where} must be a mapping of columns, not {shown(row)}")
    for column, value in row.items():
        if not isinstance(column, str):
            raise InvalidInput(f"{where} has a column named {shown(column)}, not text")
        utf8(column, f"{where} (the name of column {column!r})")
        _check_value(value, _field(where, column))


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not I64_MIN <= value <= I64_MAX:
            raise InvalidInput(
                f"{where} is {shown(value, False)}, outside the 64 signed bits an integer must "
                f"fit in ({I64_MIN} to {I64_MAX}); send a larger number as text"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            named = "NaN" if math.isnan(value) else repr(value)
            raise InvalidInput(
                f"{where} is {named}, which JSON cannot carry; give a finite float, text or None"
            )
    elif isinstance(value, str):
        utf8(value, where)
    else:
        raise InvalidInput(
            f"{where} holds a {type(value).__name__}; values are null, booleans, integers, "
            "floats or text"
        )


def _no_unknown_fields(mapping: Mapping[Any, Any], known: tuple[str, ...], where: str) -> None:
    unknown = [field for field in mapping if not (isinstance(field, str) and field in known)]
    if unknown:
        # By repr: the fields may be of types that do not compare.
        named = ", ".join(sorted(shown(field, False) for field in unknown))
        raise InvalidInput(f"{where} has unknown field(s) {named}; known: {', '.join(known)}")


def _field(where: str, column: str) -> str:
    """`where.column`, or `where['a column']` when the name is no identifier."""
    return f"{where}.{column}" if column.isidentifier() else f"{where}[{column!r}]"
