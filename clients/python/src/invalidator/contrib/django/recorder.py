"""`Recorder`: turns model signals into writes, and a transaction's writes
into one commit published after it commits.

Savepoints. Django discards the `on_commit` callbacks registered inside a
savepoint that is rolled back. Each write registers one (its marker), so
the writes whose markers run are exactly the ones that were committed.
The publishing callback is kept last in the connection's list, and
registered outside every savepoint, so that it runs after every marker of
the transaction, whatever was rolled back, and publishes what they marked.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, router

from ...publisher import Publisher
from .._publish import publish_committed
from .._rows import scalar, table_name


class _Transaction:
    """The writes recorded in one transaction on one connection."""

    def __init__(self) -> None:
        self.committed: list[dict[str, Any]] = []
        self.hook: tuple[set[str], Any, bool] | None = None


class Recorder:
    """Records tracked models' writes and publishes them per transaction."""

    def __init__(self, publisher: Publisher, source: str | None) -> None:
        self.publisher = publisher
        self.source = source
        # Django's connections are per thread, and so are transactions.
        self._local = threading.local()

    def pre_save(self, sender: Any, instance: Any, raw: bool = False, **_: Any) -> None:
        if raw or instance._state.adding or instance.pk is None:
            return
        # The row as the database has it, before this save: one query, for
        # the concrete fields only.
        fields = [f.attname for f in sender._meta.concrete_fields]
        alias = instance._state.db or router.db_for_write(sender, instance=instance)
        before = sender._base_manager.using(alias).filter(pk=instance.pk).values(*fields).first()
        instance._invalidator_before = before

    def post_save(
        self, sender: Any, instance: Any, created: bool, raw: bool = False, **kw: Any
    ) -> None:
        if raw:
            return
        after = _image(sender, instance)
        write: dict[str, Any] = {
            "table": _table(sender),
            "op": "insert" if created else "update",
            "key": _key(sender, after),
            "after": after,
        }
        before = getattr(instance, "_invalidator_before", None)
        if not created and before is not None:
            write["before"] = {c: scalar(before[a]) for c, a in _columns(sender)}
        instance._invalidator_before = None
        self._record(kw.get("using") or DEFAULT_DB_ALIAS, write)

    def post_delete(self, sender: Any, instance: Any, **kw: Any) -> None:
        before = _image(sender, instance)
        write = {
            "table": _table(sender),
            "op": "delete",
            "key": _key(sender, before),
            "before": before,
        }
        self._record(kw.get("using") or DEFAULT_DB_ALIAS, write)

    def _record(self, alias: str, write: dict[str, Any]) -> None:
        connection = connections[alias]
        if not connection.in_atomic_block:
            # Autocommit: the write is its own transaction, already committed.
            self._publish([write])
            return
        open_ = self._transactions()
        txn = open_.get(alias)
        if txn is None or (txn.hook is not None and txn.hook not in connection.run_on_commit):
            # None yet, or the last one was rolled back (its hooks cleared).
            txn = open_[alias] = _Transaction()
        connection.on_commit(lambda: txn.committed.append(write))
        # Keep the publishing hook last, and outside every savepoint (an
        # empty set of savepoint ids is never discarded by a savepoint
        # rollback; a rollback of the whole transaction clears every hook).
        hooks = connection.run_on_commit
        if txn.hook is None:
            txn.hook = (set(), lambda: self._finish(alias, txn), False)
        else:
            hooks.remove(txn.hook)
        hooks.append(txn.hook)

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


def _columns(model: Any) -> list[tuple[str, str]]:
    """(column, attribute) of each concrete field."""
    return [(f.column, f.attname) for f in model._meta.concrete_fields]


def _image(model: Any, instance: Any) -> dict[str, Any]:
    return {c: scalar(getattr(instance, a)) for c, a in _columns(model)}


def _table(model: Any) -> str:
    table = model._meta.db_table
    schema, _, name = table.rpartition(".")
    return table_name(schema or None, name)


def _key(model: Any, image: dict[str, Any]) -> dict[str, Any]:
    pk = model._meta.pk
    return {pk.column: image.get(pk.column)}
