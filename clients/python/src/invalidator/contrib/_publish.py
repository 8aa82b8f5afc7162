"""Publishing a committed transaction's writes, shared by the integrations."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ..background import BackgroundPublisher, describe
from ..publisher import Publisher

log = logging.getLogger("invalidator")

AnyPublisher = Publisher | BackgroundPublisher


def publish_committed(
    publisher: AnyPublisher, writes: list[dict[str, Any]], source: str | None
) -> None:
    """Publishes `writes`, already committed, as one commit: queued, with a
    `BackgroundPublisher` (which retries, and logs what it gives up), or
    sent now with a plain `Publisher`. A failure is logged, not raised: the
    transaction is committed, and raising now would tell the caller it
    failed; the log names the transaction whose invalidations were not
    handed over."""
    commit: dict[str, Any] = {"txn": uuid.uuid4().hex, "writes": writes}
    if source is not None:
        commit["source"] = source
    try:
        if isinstance(publisher, BackgroundPublisher):
            # Built here, from scalars: checked in the background thread,
            # not on the writer's time.
            publisher.publish(commit, check_now=False)
        else:
            publisher.publish(commit)
    except Exception:
        log.exception(
            "%s not handed to invalidator; its cache entries may stay stale until they expire",
            describe(commit),
        )
