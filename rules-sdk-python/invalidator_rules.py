"""The rules SDK for Python: write a cache-invalidation rule in Python.

A rule is a module: what it says about itself in ``RULE``, what a commit
invalidates in ``on_commit``, and one last line for componentize-py::

    from invalidator_rules import Commit, RuleInfo, Target, Targets, export

    RULE = RuleInfo("profiles", "1.0.0", tables=["user_profiles"], fallback=[Target.pattern("user_profile_*")])

    def on_commit(commit: Commit, out: Targets) -> None:
        for write in commit.writes_to("user_profiles"):
            for user in write.each("user_id"):
                out.key(f"user_profile_{user}")

    WitWorld = export(__name__)

Build it into a component with ``componentize-py -d wit -w rule componentize
--stub-wasi profiles -o profiles.wasm``: the component then imports nothing
but the host's ``log``. :func:`export` checks the module (it raises naming
what is missing) and reads ``RULE`` and ``on_commit`` once, at build time.

Log with :mod:`logging`, imported at the top of the module
(``log = logging.getLogger(__name__)``, then ``log.info(...)``): inside the
component, :func:`export` then puts a handler on the root logger that hands
every record to the host's log, tagged with the rule's name (see
:func:`host_handler`; ``TRACE`` is the level below ``DEBUG``). Natively,
records go wherever Python's logging sends them. A rule that does not
import :mod:`logging` does not carry it: its modules would make every
instance larger, and every call slower.

The same module runs natively under ``pytest`` through :func:`evaluate`, on
commits made by :func:`commit` from plain dicts, in the shape of the
``.test.jsonl`` fixtures::

    import profiles
    from invalidator_rules import Target, commit, evaluate

    def test_a_profile_is_keyed_by_its_user() -> None:
        write = {"table": "user_profiles", "op": "insert", "key": {"id": 1}, "after": {"id": 1, "user_id": 2}}
        assert evaluate(profiles, commit([write])) == {Target.key("user_profile_2")}

The commit arrives in the flat layout of ``wit/rules.wit``: one text of every
name and text value, and lists of numbers. This module hides it behind the
same accessors as the Rust SDK. Text spans are UTF-8 byte offsets; the text
is encoded once per call (and not at all when it is ASCII, where byte and
character offsets agree), never once per access.

Values are plain Python values: ``None``, ``bool``, ``int``, ``float`` and
``str``. Note that ``f"{1.0}"`` is ``"1.0"`` where Rust writes ``1``: build
keys from floats the way the application that reads them does.
"""

from __future__ import annotations

import gc
import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSet, Sequence
from enum import StrEnum
from itertools import count, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Required, TypedDict

if TYPE_CHECKING:
    import logging

__all__ = [
    "TRACE",
    "Commit",
    "Kind",
    "MissingColumn",
    "Op",
    "Row",
    "RuleError",
    "RuleInfo",
    "RuleModule",
    "Target",
    "Targets",
    "WriteDict",
    "WrongType",
    "Write",
    "commit",
    "evaluate",
    "export",
    "host_handler",
]

# Kind codes of `column-kinds`, op codes of `write-ops`, and the absent row
# image, as `wit/rules.wit` defines them.
_NULL, _BOOLEAN, _INTEGER, _FLOAT, _TEXT = 0, 1, 2, 3, 4
_INSERT, _UPDATE, _DELETE = 0, 1, 2
_ABSENT = 0xFFFF_FFFF_FFFF_FFFF
_LOW = 0xFFFF_FFFF
_SIGN = 1 << 63
_FLOAT_BITS = struct.Struct("<Q")
_FLOAT_VALUE = struct.Struct("<d")


class Op(StrEnum):
    """The operation of a write. A ``str``: ``Op.UPDATE == "update"``, the
    words of the ``.test.jsonl`` fixtures."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


class Kind(StrEnum):
    """What a :class:`Target` names. A ``str``: ``Kind.KEY == "key"``."""

    #: One exact cache key.
    KEY = "key"
    #: Every key matching a Redis glob pattern.
    PATTERN = "pattern"
    #: Every key registered under a tag.
    TAG = "tag"


class _Target(NamedTuple):
    kind: Kind
    value: str


class Target(_Target):
    """Something to invalidate: a key, a Redis glob pattern, or a tag. Make
    one with :meth:`key`, :meth:`pattern` or :meth:`tag`; ``Target("tag",
    "x")`` works too, and refuses a kind that is none of them."""

    __slots__ = ()

    def __new__(cls, kind: Kind | str, value: str) -> Target:
        return super().__new__(cls, Kind(kind), value)

    @classmethod
    def key(cls, key: str) -> Target:
        """One exact cache key."""
        return cls(Kind.KEY, key)

    @classmethod
    def pattern(cls, pattern: str) -> Target:
        """Every key matching a Redis glob pattern."""
        return cls(Kind.PATTERN, pattern)

    @classmethod
    def tag(cls, tag: str) -> Target:
        """Every key registered under a tag."""
        return cls(Kind.TAG, tag)

    def __repr__(self) -> str:
        return f"Target.{self.kind.value}({self.value!r})"


class Targets(MutableSet[Target]):
    """The targets a rule gives for a commit: a set of :class:`Target`, so
    duplicates collapse. Add to it with :meth:`key`, :meth:`pattern` and
    :meth:`tag`.

    Underneath, one set of strings per kind: adding a key is then one
    ``set.add`` of the string, with no ``Target`` made for it (this is the
    hot path of most rules)."""

    __slots__ = ("keys", "patterns", "tags")

    def __init__(self, targets: Iterable[Target] = ()) -> None:
        #: The exact cache keys.
        self.keys: set[str] = set()
        #: The Redis glob patterns.
        self.patterns: set[str] = set()
        #: The tags.
        self.tags: set[str] = set()
        for target in targets:
            self.add(target)

    def key(self, key: str) -> Targets:
        """Adds one exact cache key."""
        self.keys.add(key)
        return self

    def pattern(self, pattern: str) -> Targets:
        """Adds every key matching a Redis glob pattern."""
        self.patterns.add(pattern)
        return self

    def tag(self, tag: str) -> Targets:
        """Adds every key registered under a tag."""
        self.tags.add(tag)
        return self

    def _set(self, kind: object) -> set[str] | None:
        return (
            self.keys
            if kind == Kind.KEY
            else self.patterns
            if kind == Kind.PATTERN
            else self.tags
            if kind == Kind.TAG
            else None
        )

    def add(self, value: Target) -> None:
        """Adds a target made with :class:`Target`."""
        kind, target = value
        found = self._set(kind)
        if found is None:
            raise ValueError(f"unknown target kind {kind!r}; expected key, pattern or tag")
        found.add(target)

    def discard(self, value: Target) -> None:
        """Removes a target, if present."""
        kind, target = value
        found = self._set(kind)
        if found is not None:
            found.discard(target)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, tuple) or len(value) != 2:
            return False
        found = self._set(value[0])
        return found is not None and value[1] in found

    def __iter__(self) -> Iterator[Target]:
        for kind, found in ((Kind.KEY, self.keys), (Kind.PATTERN, self.patterns), (Kind.TAG, self.tags)):
            for target in found:
                yield Target(kind, target)

    def __len__(self) -> int:
        return len(self.keys) + len(self.patterns) + len(self.tags)

    def __repr__(self) -> str:
        return f"Targets({sorted(self)!r})"


class RuleInfo(NamedTuple):
    """What a rule says about itself: a rule module's ``RULE``.

    ``name`` is unique among the rules, such as ``dealership``; ``version``
    the rule's own, such as ``1.2.0``. ``tables`` are the tables whose writes
    the rule wants (empty: every table); ``fallback`` the targets the host
    applies when the rule fails on a commit, so that a broken rule
    invalidates too much rather than leaving stale data.
    """

    name: str
    version: str
    tables: Iterable[str] = ()
    fallback: Iterable[Target] = ()


class RuleError(Exception):
    """Why a rule could not answer for a commit; the host then applies the
    rule's fallback targets. Raise it with your own words for anything the
    typed errors below do not say."""


class MissingColumn(RuleError):
    """A column the rule needs is in neither row image."""

    def __init__(self, table: str, column: str) -> None:
        super().__init__(f"missing column `{column}` in table `{table}`")
        self.table = table
        self.column = column


class WrongType(RuleError):
    """A column holds a value of a type the rule cannot use."""

    def __init__(self, table: str, column: str) -> None:
        super().__init__(f"column `{column}` in table `{table}` has the wrong type")
        self.table = table
        self.column = column


class _Raw(Protocol):
    """The WIT `commit` record, as componentize-py or :func:`commit` makes
    it. The lists of 64-bit numbers are bytes, 8 a number,
    little-endian."""

    txn: str
    source: str | None
    text: str
    column_names: bytes
    column_kinds: bytes
    column_values: bytes
    write_tables: bytes
    write_ops: bytes
    write_keys: bytes
    write_befores: bytes
    write_afters: bytes


def _numbers(raw: bytes) -> memoryview:
    """A list of 64-bit numbers, read in place: indexing it makes one int."""
    return memoryview(raw).cast("B").cast("Q")


class Commit:
    """A committed transaction: its id, its source, and the rows it wrote.

    A rule only sees the writes to the tables it subscribes to.
    """

    __slots__ = (
        "_raw",
        "_text",
        "_decode",
        "_spans",
        "_named",
        "_wanted",
        "_single",
        "_kinds",
        "_values",
        "_keys",
        "_befores",
        "_afters",
    )

    def __init__(self, raw: _Raw) -> None:
        self._raw = raw
        text = raw.text
        if text.isascii():
            # Byte offsets are character offsets; slice the str.
            self._text: Any = text
            self._decode = False
        else:
            self._text = text.encode()
            self._decode = True
        # Filled on first use, once per call (see `_find`).
        self._spans: list[int] = []
        self._named: dict[int, str] = {}
        self._wanted: dict[str, frozenset[int]] = {}
        self._single: dict[str, int] = {}
        self._kinds = raw.column_kinds
        self._values = _numbers(raw.column_values)
        self._keys = _numbers(raw.write_keys)
        self._befores = _numbers(raw.write_befores)
        self._afters = _numbers(raw.write_afters)

    def _names_of(self, spans: list[int]) -> dict[int, str]:
        """The text of each distinct span in ``spans``, added to `_named`.

        The host lays out each distinct name once and points every use of
        it at the same span, so there are few: names are compared by span,
        and sliced once per call, not once per column."""
        named = self._named
        for span in set(spans).difference(named):
            named[span] = self._span(span)
        return named

    def _find(self, start: int, end: int, column: str) -> int:
        """The index of ``column`` among columns ``start`` to ``end``, or
        -1: the index of a span that names it, searched in C."""
        span = self._single.get(column, -1)
        if span >= 0:
            try:
                return self._spans.index(span, start, end)
            except ValueError:
                return -1
        wanted = self._wanted.get(column)
        if wanted is None:
            if not self._spans:
                self._spans = _numbers(self._raw.column_names).tolist()
            named = self._names_of(self._spans)
            wanted = self._wanted[column] = frozenset(s for s, n in named.items() if n == column)
            if len(wanted) == 1:
                [self._single[column]] = wanted
                return self._find(start, end, column)
        # Several spans name the column (a producer that did not share
        # them), or none.
        spans = self._spans
        for i in range(start, min(end, len(spans))):
            if spans[i] in wanted:
                return i
        return -1

    def _column_names(self) -> list[str]:
        """Every column's name."""
        if not self._spans:
            self._spans = _numbers(self._raw.column_names).tolist()
        return list(map(self._names_of(self._spans).__getitem__, self._spans))

    @property
    def txn(self) -> str:
        """The transaction id."""
        return self._raw.txn

    @property
    def source(self) -> str | None:
        """The application or stream the commit came from, if known."""
        return self._raw.source

    def _span(self, packed: int) -> str:
        start = packed >> 32
        piece = self._text[start : start + (packed & _LOW)]
        return piece.decode() if self._decode else piece

    def _value(self, i: int) -> Any:
        kind = self._kinds[i]
        if kind == _INTEGER:
            bits = self._values[i]
            return bits - (1 << 64) if bits >> 63 else bits
        if kind == _TEXT:
            return self._span(self._values[i])
        if kind == _FLOAT:
            return _FLOAT_VALUE.unpack(_FLOAT_BITS.pack(self._values[i]))[0]
        if kind == _BOOLEAN:
            return self._values[i] != 0
        # Null, or a kind this SDK does not know.
        return None

    def writes(self) -> list[Write]:
        """Every write, in commit order."""
        raw = self._raw
        spans = _numbers(raw.write_tables).tolist()
        tables = map(self._names_of(spans).__getitem__, spans)
        ops = map(_OPS.get, raw.write_ops, repeat(_OP_UPDATE))
        # Made by C loops: a `Write` is a tuple, so making one runs no
        # Python code.
        return list(map(_new_write, repeat(Write), zip(repeat(self), count(), tables, ops)))

    def writes_to(self, table: str) -> Iterator[Write]:
        """The writes to ``table``, in commit order."""
        return (w for w in self.writes() if w.table == table)


class Row:
    """A row image: its columns' names and values."""

    __slots__ = ("_commit", "_start", "_end")

    def __init__(self, commit: Commit, run: int) -> None:
        self._commit = commit
        count = len(commit._kinds)
        self._start = min(run >> 32, count)
        self._end = min(self._start + (run & _LOW), count)

    def _find(self, column: str) -> int:
        """The index of ``column``, or -1."""
        return self._commit._find(self._start, self._end, column)

    def __contains__(self, column: object) -> bool:
        return isinstance(column, str) and self._find(column) >= 0

    def get(self, column: str) -> Any:
        """The column's value; ``None`` when it is null or absent (use ``in``
        to tell them apart)."""
        i = self._find(column)
        return self._commit._value(i) if i >= 0 else None

    def items(self) -> list[tuple[str, Any]]:
        """Every column's name and value, in order."""
        c = self._commit
        names = c._column_names()
        return [(names[i], c._value(i)) for i in range(self._start, self._end)]

    def __len__(self) -> int:
        return self._end - self._start

    def __repr__(self) -> str:
        return repr(dict(self.items()))


_MISSING = object()


class Write(tuple):  # type: ignore[type-arg]
    """One row written by a transaction.

    (A tuple underneath, so that :meth:`Commit.writes` makes them in C; use
    its attributes and methods, not its items.)
    """

    __slots__ = ()

    #: The table written.
    table: str = property(itemgetter(2))  # type: ignore[assignment]
    #: :attr:`Op.INSERT`, :attr:`Op.UPDATE` or :attr:`Op.DELETE`. An op code
    #: the SDK does not know reads as an update: that errs toward
    #: invalidating.
    op: Op = property(itemgetter(3))  # type: ignore[assignment]

    def _row(self, runs: memoryview) -> Row | None:
        run = runs[self[1]]
        return None if run == _ABSENT else Row(self[0], run)

    @property
    def key(self) -> Row:
        """The primary-key columns."""
        return Row(self[0], self[0]._keys[self[1]])

    @property
    def before(self) -> Row | None:
        """The row before the write, if the source sent it."""
        return self._row(self[0]._befores)

    @property
    def after(self) -> Row | None:
        """The row after the write; ``None`` for deletes."""
        return self._row(self[0]._afters)

    def _lookup(self, runs: memoryview, column: str) -> Any:
        commit = self[0]
        run = runs[self[1]]
        if run == _ABSENT:
            return _MISSING
        start = run >> 32
        i = commit._find(start, start + (run & _LOW), column)
        return commit._value(i) if i >= 0 else _MISSING

    def _new(self, column: str) -> Any:
        return self._lookup(self[0]._afters, column)

    def _old(self, column: str) -> Any:
        return self._lookup(self[0]._befores, column)

    def _current(self, column: str) -> Any:
        for value in (self._new(column), self._old(column)):
            if value is not _MISSING:
                return value
        return self._lookup(self[0]._keys, column)

    def get(self, column: str) -> Any:
        """The column's current value: from the row after the write, else
        from the row before it (deletes), else from the primary key. ``None``
        when it is null or no image has it (see :meth:`value`)."""
        value = self._current(column)
        return None if value is _MISSING else value

    def new_value(self, column: str) -> Any:
        """The column's value after the write; ``None`` if absent or null."""
        value = self._new(column)
        return None if value is _MISSING else value

    def old_value(self, column: str) -> Any:
        """The column's value before the write; ``None`` if absent or null."""
        value = self._old(column)
        return None if value is _MISSING else value

    def changed(self, column: str) -> bool:
        """Whether the write changed the column. Inserts and deletes change
        every column. So does an update without a ``before`` image, or one
        where neither image has the column: when in doubt, invalidate."""
        commit, index = self[0], self[1]
        if self[3] is not _OP_UPDATE or commit._befores[index] == _ABSENT or commit._afters[index] == _ABSENT:
            return True
        old, new = self._old(column), self._new(column)
        if old is _MISSING and new is _MISSING:
            return True
        return not _same(old, new)

    def changed_any(self, columns: Iterable[str]) -> bool:
        """Whether the write changed any of ``columns``."""
        return any(self.changed(c) for c in columns)

    def each(self, column: str) -> list[Any]:
        """The distinct non-null values of the column around this write: the
        new one, and the old one when it differs. Falls back to the primary
        key when neither image has the column; raises :class:`MissingColumn`
        when no image has it at all."""
        # The hot path of most rules: `_find` and `_value` are inlined for
        # the common case, a column named by one span holding an integer
        # that is not negative; and written out for each image rather than
        # looped over both, which cost 15% of a whole rule natively.
        commit, index = self[0], self[1]
        new = old = _MISSING
        span = commit._single.get(column, -1)
        if span < 0:
            return self._each(column)
        spans, kinds, values = commit._spans, commit._kinds, commit._values
        run = commit._afters[index]
        if run != _ABSENT:
            start = run >> 32
            try:
                i = spans.index(span, start, start + (run & _LOW))
                new = values[i]
                if kinds[i] != _INTEGER or new >= _SIGN:
                    new = commit._value(i)
            except ValueError:
                pass
        run = commit._befores[index]
        if run != _ABSENT:
            start = run >> 32
            try:
                i = spans.index(span, start, start + (run & _LOW))
                old = values[i]
                if kinds[i] != _INTEGER or old >= _SIGN:
                    old = commit._value(i)
            except ValueError:
                pass
        if new is _MISSING or old is _MISSING or new is None or old is None:
            return self._distinct(column, new, old)
        return [new] if old == new and type(old) is type(new) else [new, old]

    def _each(self, column: str) -> list[Any]:
        """`each` through `_find`: the first lookup of a column in a call,
        and columns named by several spans."""
        new, old = self._new(column), self._old(column)
        return self._distinct(column, new, old)

    def _distinct(self, column: str, new: Any, old: Any) -> list[Any]:
        commit = self[0]
        if new is _MISSING:
            if old is _MISSING:
                key = self._lookup(commit._keys, column)
                if key is _MISSING:
                    raise MissingColumn(self[2], column)
                return [] if key is None else [key]
            return [] if old is None else [old]
        if new is None:
            return [] if old is None or old is _MISSING else [old]
        if old is None or old is _MISSING or (old == new and type(old) is type(new)):
            return [new]
        return [new, old]

    def value(self, column: str) -> Any:
        """The column's current value (null as ``None``); raises
        :class:`MissingColumn` when no image has it."""
        value = self._current(column)
        if value is _MISSING:
            raise MissingColumn(self[2], column)
        return value

    def _typed(self, column: str, ok: Any) -> Any:
        value = self.value(column)
        if value is None or ok(value):
            return value
        raise WrongType(self[2], column)

    def text(self, column: str) -> str | None:
        """The column's current value as text; ``None`` when null."""
        return self._typed(column, lambda v: isinstance(v, str))

    def integer(self, column: str) -> int | None:
        """The column's current value as an integer; ``None`` when null."""
        # `bool` is an `int` in Python; a boolean is not a number here.
        return self._typed(column, lambda v: isinstance(v, int) and not isinstance(v, bool))

    def float(self, column: str) -> float | None:
        """The column's current value as a number; ``None`` when null."""
        value = self._typed(column, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        return None if value is None else float(value)

    def boolean(self, column: str) -> bool | None:
        """The column's current value as a boolean; ``None`` when null."""
        return self._typed(column, lambda v: isinstance(v, bool))

    def __repr__(self) -> str:
        return (
            f"Write(table={self.table!r}, op={self.op!r}, key={self.key!r}, "
            f"before={self.before!r}, after={self.after!r})"
        )


# The ops, read once (an enum's attribute is slower to read than a global),
# and the op codes of `write-ops` they stand for.
_OP_INSERT, _OP_UPDATE, _OP_DELETE = Op.INSERT, Op.UPDATE, Op.DELETE
_OPS = {_INSERT: _OP_INSERT, _UPDATE: _OP_UPDATE, _DELETE: _OP_DELETE}
_CODES = {op: code for code, op in _OPS.items()}
_new_write = tuple.__new__


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same type: in Python ``1 == 1.0 == True``, in a
    database they are different values."""
    return type(a) is type(b) and a == b


class RuleModule(Protocol):
    """What :func:`export` and :func:`evaluate` take: a rule's module, with
    its ``RULE`` and its ``on_commit``."""

    #: What the rule says about itself.
    RULE: RuleInfo

    def on_commit(self, commit: Commit, out: Targets) -> None:
        """Adds to ``out`` the targets ``commit`` invalidates. Must be pure:
        the same commit always gives the same targets. Raise
        :class:`RuleError` (or let :class:`MissingColumn` and
        :class:`WrongType` through) when it cannot tell."""
        ...


OnCommit = Callable[[Commit, Targets], None]


def _load(rule: RuleModule | str) -> tuple[RuleInfo, OnCommit]:
    """The ``RULE`` and ``on_commit`` of a rule module (or of the module of
    that name), checked: raises :class:`TypeError` or :class:`ValueError`
    saying what is missing or wrong, and in which module."""
    module: Any = rule
    if isinstance(rule, str):
        module = sys.modules.get(rule)
        if module is None:
            raise TypeError(f"no module named {rule!r} is imported; call export(__name__) in the rule's module")
    where = f"rule module {getattr(module, '__name__', module)!r}"
    shape = "a rule module defines RULE = RuleInfo(...) and on_commit(commit, out), then WitWorld = export(__name__)"
    missing = [name for name in ("RULE", "on_commit") if not hasattr(module, name)]
    if missing:
        raise TypeError(f"{where} does not define {' nor '.join(missing)}: {shape}")
    info, on_commit = module.RULE, module.on_commit
    if not isinstance(info, RuleInfo):
        raise TypeError(f"{where}: RULE is a {type(info).__name__}, not a RuleInfo: {shape}")
    if not callable(on_commit):
        raise TypeError(f"{where}: on_commit is a {type(on_commit).__name__}, not a function: {shape}")
    for field in ("name", "version"):
        value = getattr(info, field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}: RULE.{field} must be a non-empty str, not {value!r}")
    if isinstance(info.tables, str):
        raise TypeError(f"{where}: RULE.tables is the str {info.tables!r}; give a list of table names")
    tables = tuple(info.tables)
    for table in tables:
        if not isinstance(table, str) or not table:
            raise TypeError(f"{where}: RULE.tables holds {table!r}, not a table name")
    fallback = tuple(info.fallback)
    for target in fallback:
        if not isinstance(target, Target):
            raise TypeError(
                f"{where}: RULE.fallback holds {target!r}, not a Target; "
                "make one with Target.key(...), Target.pattern(...) or Target.tag(...)"
            )
    return RuleInfo(info.name, info.version, tables, fallback), on_commit


def evaluate(rule: RuleModule, commit: Commit) -> Targets:
    """Runs the rule module ``rule`` on ``commit`` natively, as the host
    would (without the sandbox): for tests. Checks the module as
    :func:`export` does, and raises the rule's :class:`RuleError`."""
    _, on_commit = _load(rule)
    out = Targets()
    on_commit(commit, out)
    return out


# Logging. In a component, `export` hands the records of a rule that imports
# `logging` to the host's log. The SDK imports `logging` only then: its
# modules would add 1 MiB to every instance's snapshotted heap, and time to
# every call of a rule that never logs.

#: The level below ``logging.DEBUG`` (5), which the host logs as ``trace``:
#: ``log.log(TRACE, "...")``.
TRACE = 5

# The host's log levels, by the index `_level` gives.
_LEVEL_NAMES = ("trace", "debug", "info", "warn", "error")


def _level(levelno: int) -> int:
    """The index in the host's levels of a Python level: below ``DEBUG``
    (10) trace, ``DEBUG`` debug, ``INFO`` (20) info, ``WARNING`` (30) warn,
    ``ERROR`` (40) and above error."""
    if levelno >= 40:
        return 4
    if levelno >= 30:
        return 3
    if levelno >= 20:
        return 2
    return 1 if levelno >= 10 else 0


def host_handler(log: Callable[[Any, str], object], levels: Sequence[Any] = _LEVEL_NAMES) -> logging.Handler:
    """A :mod:`logging` handler that hands each record to the host's log,
    which tags it with the rule's name. Inside a component the SDK puts one
    on the root logger, so a rule only writes
    ``logging.getLogger(__name__).info(...)``.

    ``log(level, message)`` is the host's ``log``; ``levels`` the five levels
    it takes (trace, debug, info, warn, error), by default their names.
    Python's levels map to them as: below ``DEBUG`` trace, ``DEBUG`` debug,
    ``INFO`` info, ``WARNING`` warn, ``ERROR`` and ``CRITICAL`` error. A
    record is formatted as the handler's formatter says (the message, and
    the traceback of ``log.exception``); one that cannot be is logged with
    what it holds, rather than lost."""
    import logging

    if len(levels) != len(_LEVEL_NAMES):
        raise ValueError(f"levels must be the host's five levels, {_LEVEL_NAMES}, not {levels!r}")
    by_index = tuple(levels)

    class HostHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                message = self.format(record)
            except Exception as e:  # noqa: BLE001 - a bad format must not lose the line
                message = f"{record.msg!r} % {record.args!r} (not formatted: {type(e).__name__}: {e})"
            log(by_index[_level(record.levelno)], message)

    return HostHandler()


def _record_without_clock(
    name: str,
    level: int,
    pathname: str,
    lineno: int,
    msg: object,
    args: Any,
    exc_info: Any,
    func: str | None = None,
    sinfo: str | None = None,
    **_kwargs: Any,
) -> logging.LogRecord:
    """A log record made without reading the clock, which a component lacks
    (reading it traps): what ``LogRecord`` makes, less the time (0), the
    thread and the process. The record factory inside a component."""
    import logging

    # As `LogRecord`: `log.info("%(a)s", {"a": 1})` formats by name.
    if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]
    record = logging.LogRecord.__new__(logging.LogRecord)
    filename = os.path.basename(pathname)
    vars(record).update(
        name=name,
        msg=msg,
        args=args,
        levelname=logging.getLevelName(level),
        levelno=level,
        pathname=pathname,
        filename=filename,
        module=os.path.splitext(filename)[0],
        exc_info=exc_info,
        exc_text=None,
        stack_info=sinfo,
        lineno=lineno,
        funcName=func,
        created=0.0,
        msecs=0.0,
        relativeCreated=0.0,
        thread=None,
        threadName=None,
        processName=None,
        process=None,
        taskName=None,
    )
    return record


def _source_free_formatter() -> logging.Formatter:
    """A formatter whose tracebacks name each frame's file, line and
    function but show no source: reading it takes the file system, which a
    component lacks (``traceback`` would trap there)."""
    import logging
    from traceback import walk_tb

    class SourceFreeFormatter(logging.Formatter):
        def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
            kind, exc, tb = ei
            lines = ["Traceback (most recent call last):"]
            for frame, lineno in walk_tb(tb):
                code = frame.f_code
                lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}')
            name = kind.__qualname__
            if kind.__module__ not in ("builtins", "__main__"):
                name = f"{kind.__module__}.{name}"
            text = str(exc)
            lines.append(f"{name}: {text}" if text else name)
            return "\n".join(lines)

    return SourceFreeFormatter()


def _log_to_host() -> None:
    """In a component, when the rule imported `logging`: every record to the
    host's log, which filters by its own level and budget; none to standard
    error, nor made with the clock, nor formatted with source lines (the
    sandbox has none of them: reaching for one traps). A record made with
    ``stack_info=True`` still reaches for the source, and traps."""
    import logging

    from wit_world.imports import host, types  # type: ignore[import-not-found]

    handler = host_handler(host.log, [types.Level[name.upper()] for name in _LEVEL_NAMES])
    handler.setFormatter(_source_free_formatter())
    logging.addLevelName(TRACE, "TRACE")
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.NOTSET)
    logging.lastResort = handler
    logging.setLogRecordFactory(_record_without_clock)


def export(rule: str | RuleModule) -> type:
    """The class componentize-py exports for a rule module: end the module
    with ``WitWorld = export(__name__)``.

    Checks the module and reads its ``RULE`` and ``on_commit`` once, here:
    raises :class:`TypeError` or :class:`ValueError` at build time naming
    what is missing or wrong. The class converts between the WIT types and
    this module's, and turns every exception into a rule error, so that the
    host applies the fallback instead of seeing a trap."""
    info, rule_on_commit = _load(rule)

    # Imported now, while componentize-py snapshots the module, and not in
    # each call: every call runs in a fresh instance, which would import
    # (parse and compile) them again each time.
    try:
        from componentize_py_types import Err  # type: ignore[import-not-found]
        from wit_world.imports import types as wit  # type: ignore[import-not-found]
    except ImportError:  # natively: there is no component to export from
        Err = wit = None  # noqa: N806
    # The answer of `describe`, made once; natively, the RULE itself.
    described: Any = info
    if wit is not None:
        described = wit.RuleInfo(info.name, info.version, list(info.tables), [_to_wit(wit, t) for t in info.fallback])
        if "logging" in sys.modules:
            _log_to_host()
        # What the snapshot holds lives as long as the instance: frozen, the
        # collector leaves it out of the collections a call makes, rather
        # than scan it (and dirty its pages, which the host resets after
        # every call) each time.
        gc.freeze()

    class WitWorld:
        def describe(self) -> Any:
            return described

        def on_commit(self, raw: Any) -> list[Any]:
            out = Targets()
            try:
                rule_on_commit(Commit(raw), out)
            except (MissingColumn, WrongType) as e:
                ref = wit.ColumnRef(e.table, e.column)
                kind = wit.RuleError_MissingColumn if isinstance(e, MissingColumn) else wit.RuleError_WrongType
                raise Err(kind(ref)) from None
            except Exception as e:  # noqa: BLE001 - every failure becomes the fallback
                message = str(e) if isinstance(e, RuleError) else f"{type(e).__name__}: {e}"
                raise Err(wit.RuleError_Other(message)) from None
            return [
                *map(wit.Target_Key, out.keys),
                *map(wit.Target_Pattern, out.patterns),
                *map(wit.Target_Tag, out.tags),
            ]

    return WitWorld


def _to_wit(wit: Any, target: Target) -> Any:
    kind, value = target
    if kind == Kind.KEY:
        return wit.Target_Key(value)
    if kind == Kind.TAG:
        return wit.Target_Tag(value)
    return wit.Target_Pattern(value)


RowDict = Mapping[str, Any]


class WriteDict(TypedDict, total=False):
    """A write, for :func:`commit`: as in the ``.test.jsonl`` fixtures.
    ``before`` is absent on inserts (and on updates whose source does not
    send it), ``after`` on deletes; ``key`` defaults to no columns. (Any
    dict will do; annotate one with this type to have it checked.)"""

    table: Required[str]
    op: Required[Op | str]
    key: RowDict
    before: RowDict | None
    after: RowDict | None


_WRITE_FIELDS = frozenset(WriteDict.__annotations__)


def commit(
    writes: Iterable[WriteDict | Mapping[str, Any]] = (), *, txn: str = "t", source: str | None = None
) -> Commit:
    """A :class:`Commit` of ``writes``, for a rule's native tests: each a
    dict in the shape of the ``.test.jsonl`` fixtures, so that
    ``commit(**case["commit"])`` reads a fixture's commit. Rows are dicts of
    column names to ``None``, ``bool``, ``int``, ``float`` or ``str``::

        commit([{"table": "kinder", "op": "update", "key": {"id": 3},
                 "before": {"id": 3, "turnus_id": 1}, "after": {"id": 3, "turnus_id": 2}}])
    """
    flat = _Flat(txn, source)
    for n, write in enumerate(writes, 1):
        if not isinstance(write, Mapping):
            raise TypeError(f"write {n} is a {type(write).__name__}, not a dict")
        unknown = write.keys() - _WRITE_FIELDS
        if unknown:
            raise TypeError(f"write {n} has unknown fields {sorted(unknown)}; expected {sorted(_WRITE_FIELDS)}")
        if "table" not in write or "op" not in write:
            raise TypeError(f"write {n} needs a table and an op, as in {{'table': 'items', 'op': 'insert', ...}}")
        flat.write(write["table"], write["op"], write.get("key") or {}, write.get("before"), write.get("after"))
    return Commit(flat)  # type: ignore[arg-type]


class _Flat:
    """A commit in the WIT layout, built natively by :func:`commit`."""

    def __init__(self, txn: str, source: str | None) -> None:
        self.txn = txn
        self.source = source
        self.text = ""
        self._size = 0
        # Each distinct name laid out once, as the host does.
        self._names: dict[str, int] = {}
        self.column_names = array("Q")
        self.column_kinds = bytearray()
        self.column_values = array("Q")
        self.write_tables = array("Q")
        self.write_ops = bytearray()
        self.write_keys = array("Q")
        self.write_befores = array("Q")
        self.write_afters = array("Q")

    def write(self, table: str, op: Op | str, key: RowDict, before: RowDict | None, after: RowDict | None) -> None:
        code = _CODES.get(op)  # type: ignore[arg-type]
        if code is None:
            raise ValueError(f"unknown op {op!r}; expected insert, update or delete")
        self.write_tables.append(self._name(table))
        self.write_ops.append(code)
        self.write_keys.append(self._row(key))
        self.write_befores.append(_ABSENT if before is None else self._row(before))
        self.write_afters.append(_ABSENT if after is None else self._row(after))

    def _name(self, name: str) -> int:
        span = self._names.get(name)
        if span is None:
            span = self._names[name] = self._text(name)
        return span

    def _text(self, s: str) -> int:
        start, size = self._size, len(s.encode())
        self.text += s
        self._size += size
        return start << 32 | size

    def _row(self, row: RowDict) -> int:
        start = len(self.column_kinds)
        for name, value in row.items():
            self.column_names.append(self._name(name))
            if value is None:
                kind, bits = _NULL, 0
            elif isinstance(value, bool):
                kind, bits = _BOOLEAN, int(value)
            elif isinstance(value, int):
                if not -(1 << 63) <= value < 1 << 63:
                    raise ValueError(f"column {name!r}: {value} does not fit in 64 bits")
                kind, bits = _INTEGER, value & _ABSENT
            elif isinstance(value, float):
                kind, bits = _FLOAT, _FLOAT_BITS.unpack(_FLOAT_VALUE.pack(value))[0]
            elif isinstance(value, str):
                kind, bits = _TEXT, self._text(value)
            else:
                raise TypeError(f"column {name!r}: {type(value).__name__} is not a column value")
            self.column_kinds.append(kind)
            self.column_values.append(bits)
        return start << 32 | len(row)
