"""`cargo xtask check-stale near`: the read/invalidate race of
`check-stale`, read through the Python client's near cache.

Run by `tests/benches/check_stale.rs` in its `near` mode, which starts
Postgres (database with the table `geld (id, turnus_id, amount)`, rows 0 to
39), Redis and `invalidator serve --postgres` with the turnus rule (row
`id` of `geld` -> key `turnus_data_{id}`), and gives this script their
URLs. Alone: `python check_stale_near.py --pg URL --redis URL`.

- **Readers**: `--processes` processes (2), each an application with one
  `Cache.from_url(redis, local=LocalCache(...))` shared by `--threads`
  threads (6) calling `get_or_fill("turnus_data_{id}", loader)` on random
  rows; the loader reads the row with psycopg and sleeps up to 3 ms (the
  race window, as in `check-stale`). Each read is logged: its key, when it
  began and ended (`time.time()`), the value, and whether its own loader
  made it.
- **Writers**: `--writers` threads (3) of this process updating random
  rows (`amount = amount + 1`), one transaction each, for `--duration`
  seconds (10).
- **Watcher**: a process reading Redis's `MONITOR`, which stamps every
  command Redis runs (a script's own commands included) with the server's
  clock: from the `SET`s, `UNLINK`s and `DEL`s of the keys, when Redis
  held each value.

Then the writers stop; the readers go on while the last invalidations
arrive, until `serve` has applied every commit (the replication slot's
confirmed position reaches the server's current one, as `check-stale`'s
`drained`), and 50 ms more, then stop. A fence key that every near cache holds is then written: the
invalidation pushes of one Redis arrive in order, so once each near cache
has dropped the fence, it has applied every invalidation before it. Every
entry of every near cache, and every value in Redis, is compared with its
row: **stale after quiescence** must be 0.

**Read lag.** A read that did not run its own loader returned a value that
came from Redis, now or earlier. If Redis held that value at some instant
of the read, the read is consistent. If not, the value had left Redis (an
invalidation deleted it, or a newer value replaced it) before the read
began: it was served from the near cache after its invalidation, and its
lag is the time from the value's leaving Redis to the read's beginning.
Reported: how many reads lagged, and the p99 and max of their lags (0 when
none did). Redis's and the readers' clocks are the same machine's.

The last line: `near cache: stale after quiescence: Z of N; read lag after
invalidation p99 ms: A, max ms: B`; the exit status is 1 when Z is not 0.
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import queue
import random
import re
import sys
import threading
import time
from multiprocessing.synchronize import Event
from typing import Any

import psycopg
import redis

from invalidator import Cache, LocalCache
from invalidator.cache import LEASE_PREFIX

FENCE = "check:near:fence"
#: One argument of a `MONITOR` line: a quoted string with escapes.
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
#: How a lease marker's prefix reads in a `MONITOR` line.
_LEASE = LEASE_PREFIX.replace(b"\x00", b"\\x00")


def key(row: int) -> str:
    return f"turnus_data_{row}"


def amounts(pg: str, rows: int) -> dict[int, int]:
    with psycopg.connect(pg, autocommit=True) as db:
        return dict(db.execute("SELECT id, amount FROM geld WHERE id < %s", (rows,)).fetchall())


# The reader processes.


def reader_process(
    index: int, args: dict[str, Any], out: Any, go: Event, stop: Event, fenced: Event
) -> None:
    """One application: a near cache shared by reader threads."""
    local = LocalCache(max_items=10_000, max_age=args["max_age"])
    cache = Cache.from_url(args["redis"], local=local)
    if not local.wait_tracking(10):
        out.put(("error", index, "tracking was never established"))
        return
    out.put(("ready", index, None))
    go.wait()
    logs: list[list[tuple[int, float, float, int, bool]]] = []

    def read() -> None:
        log: list[tuple[int, float, float, int, bool]] = []
        logs.append(log)
        rnd = random.Random()
        with psycopg.connect(args["pg"], autocommit=True) as db:
            while not stop.is_set():
                row = rnd.randrange(args["rows"])
                loaded = False

                def load(row: int = row) -> bytes:
                    nonlocal loaded
                    loaded = True
                    found = db.execute("SELECT amount FROM geld WHERE id = %s", (row,)).fetchone()
                    assert found is not None
                    time.sleep(rnd.uniform(0, 0.003))  # the race window
                    return str(found[0]).encode()

                began = time.time()
                value = cache.get_or_fill(key(row), load)
                log.append((row, began, time.time(), int(value), loaded))

    threads = [threading.Thread(target=read) for _ in range(args["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Hold the fence, then wait for the main process to write it.
    deadline = time.monotonic() + 10
    while local.peek(FENCE) is None:
        if time.monotonic() > deadline:
            out.put(("error", index, "the fence was never held"))
            return
        cache.get(FENCE)
        time.sleep(0.005)
    out.put(("held", index, None))
    fenced.wait()
    deadline = time.monotonic() + 10
    while local.peek(FENCE) is not None:
        if time.monotonic() > deadline:
            out.put(("error", index, "the fence's invalidation never arrived"))
            return
        time.sleep(0.001)
    rows = amounts(args["pg"], args["rows"])
    compared, stale = 0, []
    for held in local.keys():
        value = local.peek(held)
        if value is None or not held.startswith("turnus_data_"):
            continue
        compared += 1
        row = int(held.removeprefix("turnus_data_"))
        if int(value) != rows[row]:
            stale.append(f"{held}: held {value.decode()}, row {rows[row]}")
    reads = [r for log in logs for r in log]
    figures = cache.stats().get("turnus", {})
    out.put(("done", index, (compared, stale, reads, figures, local.health)))
    local.close()


# The watcher.


def watcher_process(redis_url: str, out: Any) -> None:
    """Reads `MONITOR` until the fence is written: per key, each change
    (server time, value or None: deleted, or a lease marker)."""
    client = redis.Redis.from_url(redis_url)
    conn = client.connection_pool.make_connection()
    conn.connect()
    conn.send_command("MONITOR")
    conn.read_response()
    out.put(("watching", -1, None))
    timeline: dict[str, list[tuple[float, int | None]]] = {}
    fence = FENCE.encode()
    while True:
        line = conn.read_response()
        if not isinstance(line, bytes):
            continue
        stamp, _, rest = line.partition(b" ")
        parts = _ARG.findall(rest)
        if not parts:
            continue
        command = parts[0].upper()
        if command == b"SET":
            if parts[1] == fence:
                break
            if not parts[1].startswith(b"turnus_data_"):
                continue
            value = None if parts[2].startswith(_LEASE) else int(parts[2])
            timeline.setdefault(parts[1].decode(), []).append((float(stamp), value))
        elif command in (b"UNLINK", b"DEL"):
            for name in parts[1:]:
                if name.startswith(b"turnus_data_"):
                    timeline.setdefault(name.decode(), []).append((float(stamp), None))
        elif command in (b"FLUSHALL", b"FLUSHDB"):
            for changes in timeline.values():
                changes.append((float(stamp), None))
    conn.disconnect()
    out.put(("timeline", -1, timeline))


# The lag.


def lags(
    reads: list[tuple[int, float, float, int, bool]],
    timeline: dict[str, list[tuple[float, int | None]]],
) -> tuple[list[float], int, int]:
    """Per read that did not load its own value: the lag (seconds) of those
    served after their value had left Redis; how many reads were checked;
    how many returned a value Redis never held before they ended (none
    should: that would be a value from nowhere)."""
    times = {k: [t for t, _ in changes] for k, changes in timeline.items()}
    found: list[float] = []
    checked = unexplained = 0
    for row, began, ended, value, loaded in reads:
        if loaded:
            continue
        checked += 1
        changes = timeline.get(key(row), [])
        stamps = times.get(key(row), [])
        # The changes up to the read's end; the value held at each instant
        # runs from its change to the next.
        last = bisect.bisect_right(stamps, ended)
        held_since: float | None = None
        left_at: float | None = None
        for i in range(last - 1, -1, -1):
            if changes[i][1] == value:
                held_since = changes[i][0]
                left_at = changes[i + 1][0] if i + 1 < len(changes) else None
                break
        if held_since is None:
            unexplained += 1
            continue
        if left_at is None or left_at >= began:
            continue  # Redis held it at some instant of the read
        found.append(began - left_at)
    return found, checked, unexplained


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p))]


# The run.


def drained(pg: str) -> None:
    """Waits until `serve` has applied every commit so far (see
    `check_stale.rs`)."""
    with psycopg.connect(pg, autocommit=True) as db:
        now = db.execute("SELECT (pg_current_wal_lsn() - '0/0')::int8").fetchone()
        assert now is not None
        deadline = time.monotonic() + 60
        while True:
            row = db.execute(
                "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots "
                "WHERE slot_name = 'invalidator'"
            ).fetchone()
            if row is not None and row[0] >= now[0]:
                return
            if time.monotonic() > deadline:
                raise SystemExit("serve never caught up")
            time.sleep(0.02)


def writer(pg: str, rows: int, stop: threading.Event, count: list[int]) -> None:
    rnd = random.Random()
    with psycopg.connect(pg, autocommit=True) as db:
        while not stop.is_set():
            db.execute("UPDATE geld SET amount = amount + 1 WHERE id = %s", (rnd.randrange(rows),))
            count[0] += 1
            time.sleep(rnd.uniform(0, 0.0005))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", required=True, help="the database holding `geld`")
    parser.add_argument("--redis", required=True, help="the Redis serve invalidates")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of writes")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=6, help="reader threads per process")
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--max-age", type=float, default=60.0, help="the near caches' max_age")
    args = parser.parse_args()

    plain = redis.Redis.from_url(args.redis)
    plain.set(FENCE, b"0")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    go, stop, fenced = ctx.Event(), ctx.Event(), ctx.Event()
    shared = {
        "pg": args.pg,
        "redis": args.redis,
        "rows": args.rows,
        "threads": args.threads,
        "max_age": args.max_age,
    }
    watcher = ctx.Process(target=watcher_process, args=(args.redis, out), daemon=True)
    watcher.start()
    readers = [
        ctx.Process(target=reader_process, args=(i, shared, out, go, stop, fenced), daemon=True)
        for i in range(args.processes)
    ]
    for r in readers:
        r.start()
    messages: dict[str, dict[int, Any]] = {}

    def wait_for(kind: str, count: int, within: float = 60) -> dict[int, Any]:
        deadline = time.monotonic() + within
        got = messages.setdefault(kind, {})
        while len(got) < count:
            try:
                what, index, payload = out.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise SystemExit(f"timed out waiting for {count} `{kind}` messages") from None
            if what == "error":
                raise SystemExit(f"reader process {index}: {payload}")
            messages.setdefault(what, {})[index] = payload
        return got

    wait_for("watching", 1)
    wait_for("ready", args.processes)
    go.set()
    stop_writers = threading.Event()
    count = [[0] for _ in range(args.writers)]
    writers = [
        threading.Thread(target=writer, args=(args.pg, args.rows, stop_writers, c)) for c in count
    ]
    for w in writers:
        w.start()
    time.sleep(args.duration)
    stop_writers.set()
    for w in writers:
        w.join()
    # Readers go on while the last invalidations arrive, until serve has
    # applied every commit, and a little after.
    drained(args.pg)
    time.sleep(0.05)
    stop.set()
    wait_for("held", args.processes)
    drained(args.pg)
    plain.set(FENCE, b"1")
    fenced.set()
    done = wait_for("done", args.processes, within=120)
    timeline = wait_for("timeline", 1, within=120)[-1]
    for r in readers:
        r.join(10)
    watcher.join(10)

    rows = amounts(args.pg, args.rows)
    compared = 0
    stale: list[str] = []
    for row in range(args.rows):
        cached = plain.get(key(row))
        if cached is None or cached.startswith(LEASE_PREFIX):
            continue
        compared += 1
        if int(cached) != rows[row]:
            stale.append(f"Redis {key(row)}: {cached.decode()}, row {rows[row]}")
    redis_compared = compared
    reads: list[tuple[int, float, float, int, bool]] = []
    local_hits = 0
    for index, (held, held_stale, logged, figures, health) in sorted(done.items()):
        compared += held
        stale += [f"process {index} {s}" for s in held_stale]
        reads += logged
        local_hits += figures.get("local_hits", 0)
        print(
            f"process {index}: {len(logged)} reads, {figures}, {held} entries held at the end, "
            f"tracking {health}"
        )
    lagged, checked, unexplained = lags(reads, timeline)
    writes = sum(c[0] for c in count)
    print(
        f"{writes} writes, {len(reads)} reads ({local_hits} near-cache hits; {checked} not "
        f"loaded by the reader), {sum(len(c) for c in timeline.values())} changes of the keys "
        f"in Redis; {redis_compared} Redis values and {compared - redis_compared} near-cache "
        f"entries compared with their rows"
    )
    print(
        f"reads served after their value left Redis: {len(lagged)}, lag p50 ms "
        f"{percentile(lagged, 0.5) * 1000:.2f}"
        + (f"; returning a value Redis never held: {unexplained}" if unexplained else "")
    )
    for line in stale[:20]:
        print(f"stale: {line}")
    print(
        f"near cache: stale after quiescence: {len(stale)} of {compared}; read lag after "
        f"invalidation p99 ms: {percentile(lagged, 0.99) * 1000:.2f}, max ms: "
        f"{max(lagged, default=0.0) * 1000:.2f}",
        flush=True,
    )
    return 1 if stale or unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
