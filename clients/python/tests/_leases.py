"""A lease held for as long as a test needs: another caller's `get_or_fill`
caught while its loader runs, so that what reads the key meanwhile (a
wait for the holder's value, a `refill`, a near cache) can be tested."""

from __future__ import annotations

import threading

from invalidator import Cache


class SlowFill:
    """`cache.get_or_fill(key, ...)` on a thread of its own, taken when the
    constructor returns: its loader has begun, so the key holds the lease
    marker, and the loader returns `value` only on `release()` (or after
    10 s)."""

    def __init__(self, cache: Cache, key: str, value: bytes) -> None:
        self.loading, self.released = threading.Event(), threading.Event()

        def slow() -> bytes:
            self.loading.set()
            self.released.wait(10)
            return value

        self.thread = threading.Thread(target=lambda: cache.get_or_fill(key, slow))
        self.thread.start()
        assert self.loading.wait(10), f"the loader of `{key}` never began"

    def release(self) -> None:
        """Lets the loader return its value, to be stored."""
        self.released.set()

    def join(self) -> None:
        """Waits until the `get_or_fill` has returned (call `release` first)."""
        self.thread.join()
