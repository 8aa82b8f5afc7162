"""`Recorder`: turns model signals into writes, and a transaction's writes
into one commit published after it commits.

Savepoints. Django discards the `on_commit` callbacks registered inside a
savepoint that is rolled back. Each write registers one (its marker), so
the writes whose markers run are exactly the ones that were committed.
The publishing callback is kept last in the connection's list, and
registered outside every savepoint, so that it runs after every marker of
the transaction, whatever was rolled back, and publishes what they marked.

Before images. An update's `before` is the row as the instance was loaded
(remembered in `post_init`, as django-dirtyfields does), not read again:
a query per save would double the cost of a save. The remembered row is
kept in the instance's `__dict__` (so it is copied and pickled with it),
as scalars (so that changing a JSON value in place does not change it),
and it is the row as the database has it:

- a save makes what it wrote the remembered row, once its transaction
  commits: the marker says so. Until then (a second save of the instance
  in the same transaction) and after a rollback, the row is read again;
- `refresh_from_db` (also how Django loads a deferred field) updates it,
  as each tracked model's `refresh_from_db` is wrapped to do;
- what is not known is read, in one query for just those columns: fields
  deferred when loaded (`only()`, `defer()`), values saved as expressions
  (`F("n") + 1`) or computed by the database (generated fields), and the
  whole row for an instance not loaded from the database (`Model(pk=5,
  ...).save()` updating a row, `Model(pk=5).delete()`), or saved to
  another database than it came from.

With `query` (the `BEFORE_IMAGES` setting), every update reads its row in
`pre_save`, as before: exact even when another process changed the row
between this instance's load and its save, at one query per save.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from .._publish import AnyPublisher, publish_committed
from .._rows import Scalar, scalar, table_name

# Keys in an instance's `__dict__`: the row as the database has it, with
# the save that wrote it (`(row, _Saved | None)`), and the `before` image
# a pending save or delete read.
_ROW = "_invalidator_row"
_BEFORE = "_invalidator_before"

_PLAIN = frozenset({type(None), bool, int, float, str})


class _Unknown:
    """A value known only to the database: an expression saved as such."""


_UNKNOWN = _Unknown()


class _Saved:
    """Whether the save that wrote a remembered row was committed (a
    rollback, of its transaction or its savepoint, leaves it false).
    Plain data, so that an instance stays picklable."""

    __slots__ = ("committed",)

    def __init__(self) -> None:
        self.committed = False

    def __getstate__(self) -> bool:
        return self.committed

    def __setstate__(self, committed: bool) -> None:
        self.committed = committed


@dataclass(frozen=True, slots=True)
class _Field:
    column: str
    attname: str
    name: str
    generated: bool


@dataclass(frozen=True, slots=True)
class _Model:
    """What the recorder needs of a model, worked out once."""

    table: str
    fields: tuple[_Field, ...]
    attnames: tuple[str, ...]
    key: tuple[_Field, ...]  # the primary key's fields
    # Django inserts, without trying an update first, a new instance whose
    # primary key has a default.
    key_has_default: bool

    @staticmethod
    @functools.cache
    def of(model: type) -> _Model:
        meta = model._meta  # type: ignore[attr-defined]
        fields = tuple(
            _Field(f.column, f.attname, f.name, bool(getattr(f, "generated", False)))
            for f in meta.concrete_fields
        )
        key_fields = getattr(meta, "pk_fields", None) or [meta.pk]
        key = tuple(f for f in fields if f.attname in {k.attname for k in key_fields})
        has_default = all(k.has_default() or _has_db_default(k) for k in key_fields)
        schema, _, name = meta.db_table.rpartition(".")
        return _Model(
            table_name(schema or None, name),
            fields,
            tuple(f.attname for f in fields),
            key,
            has_default,
        )


def _has_db_default(field: Any) -> bool:
    # `db_default` is Django 5's.
    return bool(getattr(field, "has_db_default", lambda: False)())


class _Transaction:
    """The writes recorded in one transaction on one connection."""

    def __init__(self) -> None:
        self.committed: list[dict[str, Any]] = []
        self.hook: tuple[set[str], Any, bool] | None = None


class Recorder:
    """Records tracked models' writes and publishes them per transaction."""

    def __init__(
        self, publisher: AnyPublisher, source: str | None, query_before: bool = False
    ) -> None:
        """`query_before`: read every update's row in `pre_save` rather than
        trust the values its instance was loaded with."""
        self.publisher = publisher
        self.source = source
        self.query_before = query_before
        # Django's connections are per thread, and so are transactions.
        self._local = threading.local()

    def track(self, model: type) -> None:
        """Records `model`'s saves and deletes: connects its signals and
        wraps its `refresh_from_db` (see the module's documentation)."""
        from django.db.models.signals import (
            post_delete,
            post_init,
            post_save,
            pre_delete,
            pre_save,
        )

        uid = f"invalidator:{model._meta.label}"  # type: ignore[attr-defined]
        post_init.connect(self.post_init, sender=model, dispatch_uid=uid + ":init")
        pre_save.connect(self.pre_save, sender=model, dispatch_uid=uid + ":pre")
        post_save.connect(self.post_save, sender=model, dispatch_uid=uid + ":post")
        pre_delete.connect(self.pre_delete, sender=model, dispatch_uid=uid + ":predel")
        post_delete.connect(self.post_delete, sender=model, dispatch_uid=uid + ":del")
        _wrap_refresh(model)

    def post_init(self, sender: Any, instance: Any, **_: Any) -> None:
        # Every instance, as Django says whether it came from the database
        # (`_state.adding`) only after `post_init`; `_known` looks at it.
        instance.__dict__[_ROW] = (_snapshot(_Model.of(sender), instance.__dict__), None)

    def pre_save(
        self,
        sender: Any,
        instance: Any,
        raw: bool = False,
        using: str | None = None,
        **_: Any,
    ) -> None:
        if raw:
            return
        model = _Model.of(sender)
        alias = using or DEFAULT_DB_ALIAS
        known = None if self.query_before else _known(model, instance, alias)
        if known is None and (
            instance.pk is None or (instance._state.adding and model.key_has_default)
        ):
            before = None  # an insert
        else:
            before = _complete(sender, model, instance, alias, known or {})
        instance.__dict__[_BEFORE] = before

    def post_save(
        self,
        sender: Any,
        instance: Any,
        created: bool,
        raw: bool = False,
        using: str | None = None,
        update_fields: Iterable[str] | None = None,
        **_: Any,
    ) -> None:
        if raw:
            return
        model = _Model.of(sender)
        alias = using or DEFAULT_DB_ALIAS
        values = instance.__dict__
        before: dict[str, Scalar] | None = values.pop(_BEFORE, None)
        written = None if update_fields is None or created else set(update_fields)
        after: dict[str, Scalar] = {}
        unknown = []
        for f in model.fields:
            if f.generated and not created:
                unknown.append(f.attname)  # computed by the database, not returned
            elif f.attname in values and (
                written is None or f.name in written or f.attname in written
            ):
                value = _scalar(values[f.attname])
                if value is _UNKNOWN:
                    unknown.append(f.attname)
                else:
                    after[f.attname] = value  # type: ignore[assignment]
            elif before is not None and f.attname in before:
                after[f.attname] = before[f.attname]  # not written: unchanged
            else:
                unknown.append(f.attname)
        if unknown:
            # In the save's own transaction: this reads what it wrote.
            after.update(_select(sender, alias, instance.pk, unknown) or {})
        write: dict[str, Any] = {
            "table": model.table,
            "op": "insert" if created else "update",
            "key": {f.column: after.get(f.attname) for f in model.key},
            "after": _columns(model, after),
        }
        if not created and before is not None:
            write["before"] = _columns(model, before)
        saved = self._record(alias, write)
        values[_ROW] = (after, saved)

    def pre_delete(self, sender: Any, instance: Any, using: str | None = None, **_: Any) -> None:
        model = _Model.of(sender)
        alias = using or DEFAULT_DB_ALIAS
        known = None if self.query_before else _known(model, instance, alias)
        before = _complete(sender, model, instance, alias, known or {})
        if before is None:
            # Not in the database (as far as this transaction sees): what
            # the instance holds is all there is to say.
            before = _snapshot(model, instance.__dict__)
        instance.__dict__[_BEFORE] = before

    def post_delete(self, sender: Any, instance: Any, using: str | None = None, **_: Any) -> None:
        model = _Model.of(sender)
        values = instance.__dict__
        before = values.pop(_BEFORE, None)
        if before is None:
            before = _snapshot(model, values)
        values.pop(_ROW, None)  # the row is gone
        write = {
            "table": model.table,
            "op": "delete",
            "key": {f.column: before.get(f.attname) for f in model.key},
            "before": _columns(model, before),
        }
        self._record(using or DEFAULT_DB_ALIAS, write)

    def _record(self, alias: str, write: dict[str, Any]) -> _Saved | None:
        """Records `write`; returns what says once it is committed, or None
        when it already is (autocommit)."""
        connection = connections[alias]
        if not connection.in_atomic_block:
            # Autocommit: the write is its own transaction, already committed.
            self._publish([write])
            return None
        open_ = self._transactions()
        txn = open_.get(alias)
        if txn is None or (txn.hook is not None and txn.hook not in connection.run_on_commit):
            # None yet, or the last one was rolled back (its hooks cleared).
            txn = open_[alias] = _Transaction()
        saved = _Saved()

        def marker() -> None:
            saved.committed = True
            txn.committed.append(write)

        connection.on_commit(marker)
        # Keep the publishing hook last, and outside every savepoint (an
        # empty set of savepoint ids is never discarded by a savepoint
        # rollback; a rollback of the whole transaction clears every hook).
        hooks = connection.run_on_commit
        if txn.hook is None:
            txn.hook = (set(), lambda: self._finish(alias, txn), False)
        else:
            hooks.remove(txn.hook)
        hooks.append(txn.hook)
        return saved

    def _transactions(self) -> dict[str, _Transaction]:
        if not hasattr(self._local, "open"):
            self._local.open = {}
        return self._local.open

    def _finish(self, alias: str, txn: _Transaction) -> None:
        open_ = self._transactions()
        if open_.get(alias) is txn:
            del open_[alias]
        if txn.committed:
            self._publish(txn.committed)

    def _publish(self, writes: list[dict[str, Any]]) -> None:
        publish_committed(self.publisher, writes, self.source)


def _known(model: _Model, instance: Any, alias: str) -> dict[str, Scalar] | None:
    """The remembered row, if it is still the row as the database has it:
    the instance came from the database (or was saved there) and from
    `alias`, the save that wrote the row was committed, and the primary
    key is the same."""
    entry = instance.__dict__.get(_ROW)
    if entry is None or instance._state.adding or instance._state.db != alias:
        return None
    row, saved = entry
    if saved is not None and not saved.committed:
        return None
    values = instance.__dict__
    for f in model.key:
        if f.attname not in row or row[f.attname] != _scalar(values.get(f.attname)):
            return None
    return row


def _complete(
    model_class: Any, model: _Model, instance: Any, alias: str, known: dict[str, Scalar]
) -> dict[str, Scalar] | None:
    """`known` with the columns it lacks read from the database; None when
    the row is not there."""
    missing = [a for a in model.attnames if a not in known]
    if not missing:
        return known
    row = _select(model_class, alias, instance.pk, missing)
    if row is None:
        return None
    return {**known, **row}


def _select(model_class: Any, alias: str, pk: Any, attnames: list[str]) -> dict[str, Scalar] | None:
    """Those columns of the row whose primary key is `pk`, as scalars."""
    row = model_class._base_manager.using(alias).filter(pk=pk).values(*attnames).first()
    if row is None:
        return None
    return {a: scalar(v) for a, v in row.items()}


def _scalar(value: Any) -> Scalar | _Unknown:
    if type(value) in _PLAIN:
        return value  # type: ignore[no-any-return]
    if hasattr(value, "resolve_expression"):
        return _UNKNOWN
    return scalar(value)


def _snapshot(model: _Model, values: dict[str, Any]) -> dict[str, Scalar]:
    """The fields set in `values` (an instance's `__dict__`), as scalars."""
    row: dict[str, Scalar] = {}
    for attname in model.attnames:
        if attname in values:
            value = _scalar(values[attname])
            if value is not _UNKNOWN:
                row[attname] = value  # type: ignore[assignment]
    return row


def _columns(model: _Model, row: dict[str, Scalar]) -> dict[str, Scalar]:
    """A row by attribute as a row by column, for the commit."""
    return {f.column: row.get(f.attname) for f in model.fields}


def _wrap_refresh(model: Any) -> None:
    """Makes `model.refresh_from_db` update the remembered row with what it
    reads, once (a subclass inherits its parent's wrapper)."""
    original: Callable[..., Any] = model.refresh_from_db
    if getattr(original, "_invalidator", False):
        return

    @functools.wraps(original)
    def refresh_from_db(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        # `refresh_from_db(using=None, fields=None, ...)`
        fields = kwargs["fields"] if "fields" in kwargs else (args[1] if len(args) > 1 else None)
        _refreshed(_Model.of(type(self)), self, fields)
        return result

    refresh_from_db._invalidator = True  # type: ignore[attr-defined]
    model.refresh_from_db = refresh_from_db


def _refreshed(model: _Model, instance: Any, fields: Iterable[str] | None) -> None:
    """After `refresh_from_db(fields=fields)`: those fields (all loaded
    ones when None) are now as the database has them."""
    values = instance.__dict__
    row, saved = values.get(_ROW) or ({}, None)
    if saved is not None and not saved.committed:
        # Read inside the transaction of a save not yet committed: right
        # only if it commits, which the same marker tells.
        if fields is None:
            values[_ROW] = (_snapshot(model, values), saved)
        return
    if fields is None:
        values[_ROW] = (_snapshot(model, values), None)
        return
    names = set(fields)
    fresh = {
        f.attname: _scalar(values[f.attname])
        for f in model.fields
        if (f.attname in names or f.name in names) and f.attname in values
    }
    row = {**row, **{a: v for a, v in fresh.items() if v is not _UNKNOWN}}
    values[_ROW] = (row, None)
