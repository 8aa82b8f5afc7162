"""Publishing a committed transaction's writes, shared by the integrations."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ..publisher import Publisher

log = logging.getLogger("invalidator")


def publish_committed(
    publisher: Publisher, writes: list[dict[str, Any]], source: str | None
) -> None:
    """Publishes `writes`, already committed, as one commit. A failure is
    logged, not raised: the transaction is committed, and raising now would
    tell the caller it failed; the log says loudly that its invalidations
    were not handed over."""
    commit: dict[str, Any] = {"txn": uuid.uuid4().hex, "writes": writes}
    if source is not None:
        commit["source"] = source
    try:
        publisher.publish(commit)
    except Exception:
        log.exception(
            "committed transaction not handed to invalidator (%d writes); its cache "
            "entries may be stale until they expire",
            len(writes),
        )
