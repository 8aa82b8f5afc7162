"""Turning ORM values into the commit format's scalars, shared by the
integrations."""

from __future__ import annotations

import math
from typing import Any

Scalar = None | bool | int | float | str

#: The smallest signed 64-bit integer; commits carry no integer beyond.
_I64 = -(2**63)


def scalar(value: Any) -> Scalar:
    """`value` as a commit value: null, boolean, integer, float or text.
    Anything else (decimals, dates, UUIDs, JSON) becomes its text, as the
    Postgres source gives it."""
    if isinstance(value, float) and not math.isfinite(value):
        # NaN and the infinities are valid in a database column but not in
        # JSON: as text, the write still reaches serve and its row's
        # invalidations are not given up.
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not _I64 <= value < -_I64:
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)


def table_name(schema: str | None, table: str) -> str:
    """`schema.table`, or plain `table` in the default schema, as the Postgres
    source names tables."""
    if schema in (None, "", "public"):
        return table
    return f"{schema}.{table}"
