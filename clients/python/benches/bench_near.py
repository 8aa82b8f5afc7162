"""What a near-cache hit saves: `Cache.get` served by a `LocalCache` against
a plain redis-py `GET` of the same value, in the same run.

The bench starts its own `redis-server` on a free port (the tests' helper,
`redis-server` from `PATH` or `$REDIS_SERVER`), stores one value of
`--size` bytes (1 KB), and runs `--rounds` rounds (5); each round times
`--reads` (20,000) near-cache hits and as many redis-py `GET`s over one
local TCP connection, the two interleaved in an order that alternates
from round to round, so that the machine's other work weighs on both
alike. The near cache holds the value before a round starts (its hits are
checked to be hits: `stats()` must count every read as a local hit), and
Redis is checked to have served none of them.

Each round prints the mean time of one read of each kind; the last line is
`near-cache hit vs redis GET speedup: X`, X being the median over rounds of
the `GET` time divided by the median near-hit time (target: 20 or more,
reported, not enforced).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import redis

from invalidator import Cache, LocalCache

HERE = Path(__file__).resolve().parent
KEY = "bench:near:value"


def timed(read: object, n: int) -> float:
    """Seconds per call of `read()` over `n` calls."""
    start = time.perf_counter()
    for _ in range(n):
        read()  # type: ignore[operator]
    return (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes of the value")
    args = parser.parse_args()

    # The tests' own helper: redis-server on a free port, in its own folder.
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import RedisNode

    node = RedisNode()
    try:
        plain = redis.Redis(port=node.port)
        value = b"v" * args.size
        plain.set(KEY, value)
        local = LocalCache(max_items=1000, max_age=3600)
        cache = Cache.from_url(node.url, local=local)
        if not local.wait_tracking(10):
            raise SystemExit("the near cache never established tracking")
        deadline = time.monotonic() + 5
        while local.peek(KEY) is None:
            if time.monotonic() > deadline:
                raise SystemExit("the near cache never held the value")
            cache.get(KEY)

        def near_hit() -> bytes | None:
            return cache.get(KEY)

        def redis_get() -> bytes | None:
            return plain.get(KEY)

        for read in (near_hit, redis_get):  # warm up
            timed(read, 1000)
        near_times, get_times = [], []
        for round_ in range(args.rounds):
            served = plain.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
            hits = cache.stats()["bench"]["local_hits"]
            order = [(near_hit, near_times), (redis_get, get_times)]
            if round_ % 2:
                order.reverse()
            for read, times in order:
                times.append(timed(read, args.reads))
            assert cache.stats()["bench"]["local_hits"] == hits + args.reads, "a near read missed"
            after = plain.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
            assert after == served, "Redis served a near-cache read"
            print(
                f"round {round_ + 1}: near-cache hit {near_times[-1] * 1e6:.2f} us, "
                f"redis GET {get_times[-1] * 1e6:.2f} us, "
                f"ratio {get_times[-1] / near_times[-1]:.1f}",
                flush=True,
            )
        near = statistics.median(near_times)
        get = statistics.median(get_times)
        print(f"median: near-cache hit {near * 1e6:.2f} us, redis GET {get * 1e6:.2f} us")
        print(f"near-cache hit vs redis GET speedup: {get / near:.1f}")
        local.close()
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
