"""The hit figures of a `Cache`, per key family (`Cache.stats()`), and the
callbacks told of each read (`Cache.on_read`).

A key's family is the first template registered with `Cache.add_family`
that it matches (the family is the template's text, `turnus_data_{id}`),
else the key up to its first separator (`family_of`: `offers:12` is
`offers`; the separators are the `Cache`'s `family_separators`, `:` and `_`
by default). At most `MAX_FAMILIES` families are counted; keys of any
further family are counted under `OTHER`, so that keys without a
separator (each its own family) cannot grow the table without bound.

Counting is a dictionary of six small integers per family, under one
lock, and a bounded memo of the families of recently counted keys, so that
a near-cache hit does not pay a template match each time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ._templates import Template, family_of
from .errors import InvalidInput, shown

#: The figures of a family, in the order of the counters kept.
FIGURES = ("hits", "misses", "fills", "lease_waits", "fail_opens", "local_hits")
HITS, MISSES, FILLS, LEASE_WAITS, FAIL_OPENS, LOCAL_HITS = range(len(FIGURES))
#: The most families counted apart; the rest are counted under `OTHER`.
MAX_FAMILIES = 1000
#: The family counted for keys of families beyond `MAX_FAMILIES`.
OTHER = "other"
#: How many keys' families are remembered (then forgotten all at once).
_MEMO = 10_000

_log = logging.getLogger("invalidator.cache")


class Figures:
    """The counters and the family of each key."""

    def __init__(self, separators: str) -> None:
        if not isinstance(separators, str):
            raise InvalidInput(
                f"family_separators is {shown(separators)}; give text, each of its characters a "
                'separator (":_")'
            )
        self._separators = separators
        self._templates: list[Template] = []
        self._memo: dict[str, str] = {}
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self.callbacks: tuple[Callable[[str, bool], None], ...] = ()

    def add_family(self, template: str) -> None:
        parsed = Template(template)
        with self._lock:
            if parsed not in self._templates:
                self._templates.append(parsed)
            self._memo = {}

    def family(self, key: str) -> str:
        family = self._memo.get(key)
        if family is None:
            for template in self._templates:
                if template.match(key) is not None:
                    family = template.text
                    break
            else:
                family = family_of(key, self._separators)
            memo = self._memo
            if len(memo) >= _MEMO:
                memo = self._memo = {}
            memo[key] = family
        return family

    def count(self, key: str, *figures: int) -> None:
        """Adds one to each of `figures` (`HITS`, ...) of `key`'s family."""
        family = self.family(key)
        with self._lock:
            counts = self._counts.get(family)
            if counts is None:
                if len(self._counts) >= MAX_FAMILIES:
                    family = OTHER
                counts = self._counts.setdefault(family, [0] * len(FIGURES))
            for figure in figures:
                counts[figure] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                family: dict(zip(FIGURES, counts, strict=True))
                for family, counts in self._counts.items()
            }

    def on_read(self, callback: Callable[[str, bool], None]) -> None:
        if not callable(callback):
            raise InvalidInput(
                f"on_read callback is {shown(callback)}; give a function of (key, hit)"
            )
        with self._lock:
            self.callbacks = (*self.callbacks, callback)

    def tell(self, key: str, hit: bool) -> None:
        """Calls each callback with (`key`, `hit`); an exception is logged,
        never raised into the read."""
        for callback in self.callbacks:
            try:
                callback(key, hit)
            except Exception:
                _log.exception("on_read callback %r failed on key `%s`", callback, key)
