"""Prometheus metrics of a `Cache`'s hit figures (`Cache.stats()`) and of a
`Warmer`'s counters (`Warmer.stats()`), with `prometheus_client`
(`pip install invalidator[prometheus]`).

What it owns: the metric names and how the figures map onto them. Every
figure is a counter, read at each scrape from the client's own counts (a
custom collector: nothing is counted twice, and a scrape costs a copy of
the figures under their lock):

- `invalidator_cache_{hits,misses,fills,lease_waits,fail_opens,local_hits}_total`,
  labelled `family` (the key family: a template such as
  `turnus_data_{id}`, or the key up to its first separator) and `cache`
  (the name given, to tell several caches of one process apart);
- `invalidator_warmer_{entries,refilled,skipped_cold,...}_total` (see
  `invalidator.warmer.COUNTERS`), labelled `cache`, when a warmer is given.

```python
from invalidator.contrib.prometheus import register
register(cache, warmer=warmer)            # on prometheus_client.REGISTRY
register(other_cache, name="sessions")    # a second cache, same registry
```

One registry holds one `CacheCollector`, to which `register` adds each
cache: two collectors would each write the same metric families, which
the exposition format does not allow.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import REGISTRY, CollectorRegistry, CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ..cache import Cache
from ..errors import InvalidInput, shown
from ..warmer import COUNTERS, Warmer

#: The cache's figures exported, and what each counts.
CACHE_FIGURES: dict[str, str] = {
    "hits": "Keys read that had a value (from Redis or the near cache).",
    "misses": "Keys read that had no value, failing open and loading included.",
    "fills": "Values stored under a lease by get_or_fill or refill.",
    "lease_waits": "Misses that waited on another caller's lease.",
    "fail_opens": "Reads that could not reach Redis and answered a miss.",
    "local_hits": "Hits served by the near cache (counted in hits too).",
}


@dataclass(frozen=True)
class _Source:
    cache: Cache
    name: str
    warmer: Warmer | None


class CacheCollector(Collector):
    """Exports the figures of one or more caches (and their warmers); see
    the module documentation. `name` is the `cache` label."""

    def __init__(self, cache: Cache, name: str = "default", warmer: Warmer | None = None) -> None:
        self._sources: list[_Source] = []
        self._lock = threading.Lock()
        self.add(cache, name, warmer)

    def add(self, cache: Cache, name: str = "default", warmer: Warmer | None = None) -> None:
        """Exports `cache` (and `warmer`) too, labelled `cache=name`; a name
        already exported is refused."""
        if not isinstance(cache, Cache):
            raise InvalidInput(f"cache is {shown(cache)}; give an invalidator.Cache")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"name is {shown(name)}; give a non-empty name for the label")
        if warmer is not None and not isinstance(warmer, Warmer):
            raise InvalidInput(f"warmer is {shown(warmer)}; give an invalidator.Warmer or None")
        with self._lock:
            if any(s.name == name for s in self._sources):
                raise InvalidInput(
                    f"a cache named {name!r} is already exported; give each cache its own name"
                )
            self._sources = [*self._sources, _Source(cache, name, warmer)]

    def describe(self) -> Iterator[Metric]:
        # The families this collector writes, so that a registry refuses a
        # second collector writing them too.
        yield from self._families(with_warmer=True)

    def _families(self, with_warmer: bool) -> Iterator[CounterMetricFamily]:
        for figure, help_text in CACHE_FIGURES.items():
            yield CounterMetricFamily(
                f"invalidator_cache_{figure}", help_text, labels=["family", "cache"]
            )
        if with_warmer:
            for counter, help_text in COUNTERS.items():
                yield CounterMetricFamily(
                    f"invalidator_warmer_{counter}",
                    help_text[:1].upper() + help_text[1:] + ".",
                    labels=["cache"],
                )

    def collect(self) -> Iterator[Metric]:
        sources = self._sources
        warmers = [s for s in sources if s.warmer is not None]
        families = list(self._families(with_warmer=bool(warmers)))
        by_name = {f.name: f for f in families}
        for source in sources:
            for family, counts in sorted(source.cache.stats().items()):
                for figure in CACHE_FIGURES:
                    by_name[f"invalidator_cache_{figure}"].add_metric(
                        [family, source.name], counts.get(figure, 0)
                    )
        for source in warmers:
            assert source.warmer is not None
            counts = source.warmer.stats()
            for counter in COUNTERS:
                by_name[f"invalidator_warmer_{counter}"].add_metric(
                    [source.name], counts.get(counter, 0)
                )
        yield from families


# The collector of each registry `register` put one in.
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, CacheCollector] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def register(
    cache: Cache,
    registry: CollectorRegistry | None = None,
    name: str = "default",
    warmer: Warmer | None = None,
) -> CacheCollector:
    """Exports `cache`'s figures (and `warmer`'s) on `registry`
    (`prometheus_client.REGISTRY` by default), labelled `cache=name`;
    the registry's collector, made on the first call and given each
    further cache. A name already exported on the registry is refused."""
    if registry is None:
        registry = REGISTRY
    with _lock:
        collector = _collectors.get(registry)
        if collector is not None:
            collector.add(cache, name, warmer)
            return collector
        collector = CacheCollector(cache, name, warmer)
        registry.register(collector)
        _collectors[registry] = collector
        return collector
