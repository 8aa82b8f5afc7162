"""Turning ORM values into the commit format's scalars, shared by the
integrations."""

from __future__ import annotations

from typing import Any

Scalar = None | bool | int | float | str


def scalar(value: Any) -> Scalar:
    """`value` as a commit value: null, boolean, integer, float or text.
    Anything else (decimals, dates, UUIDs, JSON) becomes its text, as the
    Postgres source gives it."""
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
