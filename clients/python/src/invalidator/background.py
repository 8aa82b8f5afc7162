"""`BackgroundPublisher`: hands commits to a `Publisher` from a thread of its
own, so that the writer never waits on the cache (a commit is queued in a
few microseconds) and a failure costs retries, not an invalidation.

How it behaves, and why:

- `publish` checks the commit (or, with `check_now=False`, leaves that to
  the thread) and queues it; it never blocks. The queue is
  bounded (`queue_size`, 10,000 commits by default, in flight included) so
  that an unreachable `serve` cannot grow the application's memory without
  end: a commit that finds it full is dropped, counted (`dropped`) and
  logged as an error naming its transaction.
- One daemon thread sends what is queued in batches (up to `batch_size`
  commits per request), over the publisher's kept-alive connection.
- A failure (unreachable, timed out, 5xx, 408, 429) is retried with
  exponential back-off and jitter, from 50 ms up to 5 s between attempts,
  until `delivery_timeout` (60 s by default) after the commit was queued.
  A commit still not delivered by then, after an attempt that failed, is
  given up: counted (`undelivered`) and logged as an error naming its
  transaction, its number of writes and its tables, so that whoever reads
  the log knows which cache entries may be stale.
- A refusal that retrying cannot change (any other 4xx: a bad token, a
  commit the server refuses) is not retried. When the server refused the
  content of a batch (400, 413, 422), the batch is sent again in halves,
  so that only the commit it refuses is given up.
- At exit (`atexit`), what is queued is flushed for up to `exit_timeout`
  (5 s by default); what is left is logged as undelivered.
- After `os.fork`, the child starts with an empty queue (the parent
  delivers what it had queued) and starts its own thread when it first
  publishes.

The counters (`published`, `retries`, `undelivered`, `dropped`, `queued`)
and `flush(timeout)` are for tests, health checks and management commands
that must know their invalidations are out before they exit.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .commit import check_commit
from .errors import InvalidInput, ServerError
from .publisher import Publisher

log = logging.getLogger("invalidator")

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_DELIVERY_TIMEOUT = 60.0
DEFAULT_EXIT_TIMEOUT = 5.0
DEFAULT_BATCH_SIZE = 100
FIRST_BACKOFF = 0.05
LAST_BACKOFF = 5.0
# While someone waits in `flush` (at exit, say), retries come at least this
# often, so that a `serve` that is back is found within the flush's bound.
FLUSH_BACKOFF = 0.2
# How many of a commit's tables its log lines name.
_TABLES_NAMED = 10

_jitter = random.Random()


@dataclass(slots=True)
class _Queued:
    commit: Mapping[str, Any]
    deadline: float
    checked: bool


class BackgroundPublisher:
    """Publishes through `publisher` from a background thread; see the
    module's documentation for the queue, the retries and what is logged."""

    def __init__(
        self,
        publisher: Publisher,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        _positive_int("queue_size", queue_size)
        _positive_int("batch_size", batch_size)
        _positive_seconds("delivery_timeout", delivery_timeout)
        _positive_seconds("exit_timeout", exit_timeout, zero=True)
        self.publisher = publisher
        self.queue_size = queue_size
        self.delivery_timeout = float(delivery_timeout)
        self.exit_timeout = float(exit_timeout)
        self.batch_size = batch_size
        self.published = 0
        """Commits the server accepted."""
        self.retries = 0
        """Attempts that failed and were (or will be) tried again."""
        self.undelivered = 0
        """Commits given up: past `delivery_timeout`, refused, or left at exit."""
        self.dropped = 0
        """Commits not queued because the queue was full (or closed)."""
        self._fresh_state()
        self._closed = False
        atexit.register(self._at_exit)
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._fresh_state)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _fresh_state(self) -> None:
        """The lock, queue and thread: new at start, and in a forked child,
        where the parent's thread does not exist and its lock may have been
        held at the fork."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the thread waits for commits
        self._idle = threading.Condition(self._lock)  # `flush` waits for an empty queue
        self._hurry = threading.Event()  # cuts a back-off short
        self._queue: deque[_Queued] = deque()
        self._batch: list[_Queued] = []  # taken from the queue, being sent
        self._flushing = 0
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"BackgroundPublisher({self.publisher!r}, queued={self.queued})"

    @property
    def queued(self) -> int:
        """Commits queued or being sent."""
        return len(self._queue) + len(self._batch)

    def publish(self, commit: Mapping[str, Any], check_now: bool = True) -> bool:
        """Queues `commit`; True if queued, False if dropped because the
        queue is full or closed (counted and logged). Never blocks on the
        network. The commit is checked now, raising `InvalidInput` so that
        a mistake is raised to its author, or with `check_now=False` in the
        background thread, which gives up (and logs) one that is not a
        commit: for integrations that build commits themselves, whose
        writers should not pay for the check."""
        if check_now:
            check_commit(commit)
        item = _Queued(commit, time.monotonic() + self.delivery_timeout, check_now)
        with self._lock:
            if not self._closed and len(self._queue) + len(self._batch) < self.queue_size:
                if self._thread is None and not self._start():
                    why = "the interpreter is shutting down"
                else:
                    self._queue.append(item)
                    self._work.notify()
                    return True
            elif self._closed:
                why = "the publisher is closed (the process is exiting)"
            else:
                why = f"the queue is full ({self.queue_size} commits)"
            self.dropped += 1
        log.error(
            "%s dropped, not handed to %s: %s; its cache entries may stay stale until they expire",
            describe(commit),
            self.publisher.destination,
            why,
        )
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until nothing is queued or being sent (each commit delivered,
        or given up and counted in `undelivered`), for up to `timeout` seconds
        (default: `exit_timeout`); True if nothing is left. A back-off under
        way is cut short."""
        timeout = self.exit_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            self._hurry.set()
            try:
                while self._queue or self._batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._idle.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Flushes for up to `timeout` (default: `exit_timeout`), then stops:
        what is left is counted and logged as undelivered, and later
        publishes are dropped. True if everything was delivered or given up
        in time."""
        done = self.flush(timeout)
        with self._lock:
            self._closed = True
            # The thread may still be inside a request for its batch; it
            # stops after it, and what it held counts as undelivered here,
            # erring toward telling of a stale entry that was not.
            left = [*self._batch, *self._queue]
            self._queue.clear()
            self._batch = []
            self.undelivered += len(left)
            self._work.notify_all()
            self._idle.notify_all()
        for item in left:
            _log_given_up(item.commit, self.publisher, "still queued when the publisher closed")
        atexit.unregister(self._at_exit)
        return done

    def _at_exit(self) -> None:
        if self._queue or self._batch:
            self.close()
        else:
            self._closed = True

    # The thread.

    def _start(self) -> bool:
        """Starts the thread (lock held); False if threads can no longer be
        started (at interpreter shutdown)."""
        thread = threading.Thread(target=self._run, name="invalidator-publisher", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        while True:
            try:
                self._deliver()
                return
            except Exception:
                # A bug of ours must not leave commits queued for good.
                log.exception("the invalidator publisher's thread failed; it starts again")
                time.sleep(FIRST_BACKOFF)

    def _deliver(self) -> None:
        """Sends batches until closed."""
        chunk = self.batch_size  # how many of the batch to send at once
        backoff = FIRST_BACKOFF
        failing = 0  # failed attempts in a row
        while True:
            with self._lock:
                while not self._batch and not self._queue and not self._closed:
                    self._work.wait()
                if self._closed:
                    return
                batch = self._batch
                taken = len(batch)
                while self._queue and len(batch) < self.batch_size:
                    batch.append(self._queue.popleft())
                fresh = batch[taken:]
            refused = [(item, why) for item in fresh if (why := _not_a_commit(item))]
            if refused:
                for item, why in refused:
                    _log_given_up(item.commit, self.publisher, why)
                self._settle([item for item, _ in refused], delivered=False)
                continue
            head = batch[:chunk]
            try:
                self.publisher.send_checked([item.commit for item in head])
            except Exception as e:
                if self._closed:
                    return  # `close` has counted and logged what it held
                if _permanent(e):
                    if len(head) > 1 and _about_content(e):
                        # One of them is refused: halve until it is alone.
                        chunk = max(1, len(head) // 2)
                        continue
                    self._given_up(head, f"refused by the server: {e}")
                    continue
                failing += 1
                self.retries += 1
                if failing == 1:
                    log.warning(
                        "cannot hand %d commit(s) to %s, retrying for up to %g s: %s",
                        len(batch),
                        self.publisher.destination,
                        self.delivery_timeout,
                        e,
                    )
                else:
                    log.debug("attempt %d to reach %s failed: %s", failing, self, e)
                self._expire(f"not delivered within {self.delivery_timeout:g} s: {e}")
                self._back_off(backoff)
                backoff = min(backoff * 2, LAST_BACKOFF)
                continue
            if failing:
                log.warning(
                    "handing commits to %s again, after %d failed attempt(s)",
                    self.publisher.destination,
                    failing,
                )
            failing, backoff = 0, FIRST_BACKOFF
            chunk = min(self.batch_size, chunk * 2)
            self._settle(head, delivered=True)

    def _back_off(self, backoff: float) -> None:
        """Sleeps about `backoff` (jittered, so that many processes do not
        retry in step), no later than the first deadline in the batch (its
        last attempt) and no longer than a flush wants; `flush` cuts it
        short."""
        delay = _jitter.uniform(backoff / 2, backoff)
        if self._flushing:
            delay = min(delay, FLUSH_BACKOFF)
        with self._lock:
            batch = self._batch
            if batch:
                delay = min(delay, max(0.0, batch[0].deadline - time.monotonic()))
        if self._hurry.wait(delay):
            self._hurry.clear()

    def _expire(self, why: str) -> None:
        """After a failed attempt: gives up every commit past its deadline,
        in the batch and at the head of the queue (queued later, theirs are
        later too)."""
        now = time.monotonic()
        with self._lock:
            expired = [item for item in self._batch if item.deadline <= now]
            expired += itertools.takewhile(lambda item: item.deadline <= now, self._queue)
        # Logged before they are taken out, so that whoever `flush`es finds
        # them in the log when it returns.
        for item in expired:
            _log_given_up(item.commit, self.publisher, why)
        if expired:
            self._settle(expired, delivered=False)

    def _given_up(self, items: list[_Queued], why: str) -> None:
        for item in items:
            _log_given_up(item.commit, self.publisher, why)
        self._settle(items, delivered=False)

    def _settle(self, items: list[_Queued], delivered: bool) -> None:
        """Takes `items` out of the batch (or the head of the queue) and
        counts them; wakes `flush` when nothing is left."""
        gone = {id(item) for item in items}
        with self._lock:
            if self._closed:
                return  # `close` has counted them
            # Only this thread takes from the batch and the queue's head.
            self._batch[:] = [item for item in self._batch if id(item) not in gone]
            while self._queue and id(self._queue[0]) in gone:
                self._queue.popleft()
            if delivered:
                self.published += len(items)
            else:
                self.undelivered += len(items)
            if not self._batch and not self._queue:
                self._idle.notify_all()


def describe(commit: Any) -> str:
    """`commit `txn` (3 writes to kinder, geld)`, for log lines."""
    if not isinstance(commit, Mapping):
        return f"a {type(commit).__name__} that is not a commit"
    writes = commit.get("writes")
    writes = writes if isinstance(writes, list) else []
    tables = sorted(
        {w["table"] for w in writes if isinstance(w, Mapping) and isinstance(w.get("table"), str)}
    )
    named = ", ".join(tables[:_TABLES_NAMED]) + (", ..." if len(tables) > _TABLES_NAMED else "")
    noun = "write" if len(writes) == 1 else "writes"
    return f"commit `{commit.get('txn')}` ({len(writes)} {noun}{' to ' + named if named else ''})"


def _not_a_commit(item: _Queued) -> str | None:
    """Why the commit of `item`, queued unchecked, is not one; None if it is."""
    if item.checked:
        return None
    try:
        check_commit(item.commit)
    except InvalidInput as e:
        return f"not a commit: {e}"
    return None


def _log_given_up(commit: Mapping[str, Any], publisher: Publisher, why: str) -> None:
    log.error(
        "%s not handed to %s, given up: %s; its cache entries may stay stale until they expire",
        describe(commit),
        publisher.destination,
        why,
    )


def _permanent(e: Exception) -> bool:
    """A refusal that the same request would meet again: a 4xx other than
    408 (timeout) and 429 (too many requests), or a commit we refuse."""
    if isinstance(e, ServerError):
        return 400 <= e.status < 500 and e.status not in (408, 429)
    return isinstance(e, InvalidInput)


def _about_content(e: Exception) -> bool:
    """A refusal of what was sent (rather than of who sent it)."""
    return isinstance(e, ServerError) and e.status in (400, 413, 422)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"`{name}` must be a positive integer, not {value!r}")


def _positive_seconds(name: str, value: Any, zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value >= 0 if zero else value > 0):
        bound = "zero or more" if zero else "more than zero"
        raise InvalidInput(f"`{name}` must be a number of seconds, {bound}, not {value!r}")
