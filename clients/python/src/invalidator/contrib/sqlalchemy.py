"""SQLAlchemy integration: `track(sessionmaker, publisher)` records every
row a session inserts, updates or deletes, with its `before` image (from
the attributes' history: no extra query), and publishes one commit per
transaction once it commits. A rolled-back transaction publishes nothing.

Publishing happens off the committing thread: a plain `Publisher` is
wrapped in a `BackgroundPublisher` (queued, batched, retried, flushed at
exit; see `invalidator.background`), unless `background=False`, which
sends in `after_commit` and only logs a failure. Pass a
`BackgroundPublisher` of your own to choose its queue size and bounds.

What it cannot see: SQL run outside the ORM's unit of work (`session.execute(
update(...))`, Core statements, other processes). Use the Postgres source,
which reads the database's own log, when those matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from ..background import BackgroundPublisher
from ..publisher import Publisher
from ._publish import AnyPublisher, publish_committed
from ._rows import scalar, table_name

_WRITES = "invalidator.writes"


class Tracker:
    """What `track` installed; `stop()` removes it."""

    def __init__(
        self,
        target: sessionmaker[Any] | type[Session],
        publisher: AnyPublisher,
        tables: Iterable[str] | None,
        source: str | None,
        background: bool = True,
    ) -> None:
        # A background publisher made here is ours to close in `stop`.
        self._owned: BackgroundPublisher | None = None
        if background and isinstance(publisher, Publisher):
            publisher = self._owned = BackgroundPublisher(publisher)
        self.publisher: AnyPublisher = publisher
        self.tables = None if tables is None else set(tables)
        self.source = source
        self._target = target
        self._listeners = [
            ("after_flush", self._after_flush),
            ("after_commit", self._after_commit),
            ("after_rollback", self._after_rollback),
        ]
        for name, fn in self._listeners:
            event.listen(target, name, fn)
        self._listening = True

    def stop(self, timeout: float | None = None) -> bool:
        """Stops recording (once; again does nothing more). A background
        publisher made by `track` is closed once what it holds is delivered,
        or after `timeout` seconds (default: its `exit_timeout`), logging
        what is left. True if nothing was left."""
        if self._listening:
            self._listening = False
            for name, fn in self._listeners:
                event.remove(self._target, name, fn)
        if self._owned is not None:
            return self._owned.close(timeout)
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until what was published is delivered or given up, for up
        to `timeout` seconds; True if nothing is left (at once without a
        background publisher)."""
        if isinstance(self.publisher, BackgroundPublisher):
            return self.publisher.flush(timeout)
        return True

    def _after_flush(self, session: Session, _context: Any) -> None:
        # Still the pre-flush state here: `new`, `dirty`, `deleted` and
        # every attribute's history describe what this flush wrote.
        writes = session.info.setdefault(_WRITES, [])
        for obj in session.new:
            self._record(writes, obj, "insert")
        for obj in session.dirty:
            if session.is_modified(obj, include_collections=False):
                self._record(writes, obj, "update")
        for obj in session.deleted:
            self._record(writes, obj, "delete")

    def _record(self, writes: list[dict[str, Any]], obj: Any, op: str) -> None:
        state = inspect(obj)
        mapper = state.mapper
        table = mapper.local_table
        name = table_name(getattr(table, "schema", None), table.name)
        if self.tables is not None and name not in self.tables:
            return
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for attr in mapper.column_attrs:
            column = attr.columns[0].name
            history = state.attrs[attr.key].history
            current = (
                history.added[0]
                if history.added
                else (history.unchanged[0] if history.unchanged else None)
            )
            old = history.deleted[0] if history.deleted else current
            after[column] = scalar(current)
            before[column] = scalar(old)
        key_columns = [c.name for c in mapper.primary_key]
        image = before if op == "delete" else after
        write: dict[str, Any] = {
            "table": name,
            "op": op,
            "key": {c: image.get(c) for c in key_columns},
        }
        if op != "insert":
            write["before"] = before
        if op != "delete":
            write["after"] = after
        writes.append(write)

    def _after_commit(self, session: Session) -> None:
        writes = session.info.pop(_WRITES, [])
        if not writes:
            return
        publish_committed(self.publisher, writes, self.source)

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_WRITES, None)


def track(
    target: sessionmaker[Any] | type[Session],
    publisher: AnyPublisher,
    tables: Iterable[str] | None = None,
    source: str | None = None,
    background: bool = True,
) -> Tracker:
    """Records the writes of every session `target` makes (a `sessionmaker`,
    or a `Session` class) and publishes one commit per transaction through
    `publisher` after it commits: from a background thread (a `Publisher`
    is wrapped in a `BackgroundPublisher`), or, with `background=False`,
    in `after_commit`. `tables` limits it to those tables (`schema.table`
    outside `public`); `source` names the application in each commit."""
    return Tracker(target, publisher, tables, source, background)
