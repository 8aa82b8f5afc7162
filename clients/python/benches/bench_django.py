"""`cargo xtask bench-django`: what invalidation costs a Django application,
per model `save()`, with the Django hooks and with the Postgres source.

The bench starts its own throwaway Postgres (`initdb`, `wal_level =
logical`, as the Python tests do) and its own `redis-server`, makes a
Django app with two models, `Turnus` and `Kind` (table `kinder`, which the
turnus rule turns into `turnus_data_{turnus_id}`), and seeds 40 turnuses
with 5 children each. It then times `Kind.save()` in four modes:

- `nothing`: plain Django; no hooks, no `serve` running (the replication
  slot exists but nothing reads it, so no walsender decodes).
- `postgres`: `invalidator serve --postgres` streams the database's log
  (publication and slot made by `serve` itself, `REPLICA IDENTITY FULL` on
  `kinder`); Django has no hooks.
- `hooks-http`: `invalidator.contrib.django` in `INSTALLED_APPS` with
  `INVALIDATOR = {"HTTP": serve's URL, ...}`; `serve --listen`, no Postgres
  source.
- `hooks-stream`: the hooks with `"STREAM": redis URL`; `serve --stream`.

What is timed is what a view does: the instance is loaded (not timed), a
field changed, and `save()` called: an UPDATE in autocommit (or, with
`--atomic`, the whole `with transaction.atomic(): save()` block, its
COMMIT and on-commit hooks included). Each save is timed on its own with
`time.perf_counter_ns`.

The machine this runs on is small (2 cores) and shared, so the modes are
interleaved: each round runs every mode once, in an order rotated from
round to round, and the figures that matter are differences measured in
the same round. Each (round, mode) is one Python process, since Django's
settings are per process: it sets Django up with the mode's settings, does
`--warmup` saves, waits until everything is settled (the hooks' publisher
flushed, when it can be; for `postgres`, until `serve` has confirmed the
server's current WAL position, so no catch-up on the writes of the other
modes' rounds is timed), caches `turnus_data_N` for every turnus, times
`--saves` saves, and then, untimed, checks that the mode did its work:
every key gone (for `nothing`, every key still there). An invalidation
that never happens is an error (exit status 1). Only the serve of the
current mode runs: it is started before its process and stopped after (the
slot persists in between and `serve --postgres` resumes from it, catching
up before anything is timed), so no mode pays for another's.

Reported per mode: the median, mean and p90 of every save over all rounds,
and each round's median. The overheads are per round (the mode's median
minus `nothing`'s median in the same round), then the median over rounds,
which leaves out a round that the machine's other work disturbed:
X is the worse of the two hooks modes, Y the Postgres source. The last
line is `hooks overhead per save us: X; postgres source overhead per save
us: Y`; the targets (X <= 200, Y <= 100) are reported, not enforced.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
MODES = ["nothing", "postgres", "hooks-http", "hooks-stream"]
HOOKS_TARGET_US = 200
POSTGRES_TARGET_US = 100
TURNUSES = 40
CHILDREN_PER_TURNUS = 5
STREAM = "commits"
SLOT = "invalidator"

MODELS = '''"""The bench's models: the turnus rule's `kinder`, as Django makes it."""

from django.db import models


class Turnus(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        app_label = "benchapp"


class Kind(models.Model):
    turnus = models.ForeignKey(Turnus, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
    notes = models.TextField(default="")

    class Meta:
        app_label = "benchapp"
        db_table = "kinder"
'''


class BenchError(Exception):
    """Something the bench needs did not happen; the message says what."""


# ---------------------------------------------------------------- the child


def child(config: dict[str, Any]) -> dict[str, Any]:
    """One (round, mode), or the setup: runs in a process of its own."""
    sys.path.insert(0, config["app_dir"])
    import django
    from django.conf import settings

    mode = config["mode"]
    apps = ["benchapp"]
    extra: dict[str, Any] = {}
    if mode.startswith("hooks-"):
        apps.append("invalidator.contrib.django")
        hooks: dict[str, Any] = {"MODELS": ["benchapp.Kind"], "SOURCE": "bench"}
        if mode == "hooks-http":
            hooks["HTTP"] = config["serve_url"]
        else:
            hooks["STREAM"] = config["redis_url"]
            hooks["STREAM_NAME"] = STREAM
        extra["INVALIDATOR"] = hooks
    settings.configure(
        INSTALLED_APPS=apps,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": config["db"],
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": str(config["pg_port"]),
            }
        },
        USE_TZ=True,
        **extra,
    )
    django.setup()
    if mode == "setup":
        return setup_tables()
    return timed_saves(config)


def setup_tables() -> dict[str, Any]:
    """Creates and seeds the tables; `kinder` gets `REPLICA IDENTITY FULL`,
    as `invalidator postgres check` asks."""
    from benchapp.models import Kind, Turnus
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.create_model(Turnus)
        editor.create_model(Kind)
    turnuses = Turnus.objects.bulk_create([Turnus(name=f"turnus {i}") for i in range(TURNUSES)])
    Kind.objects.bulk_create(
        [
            Kind(turnus=turnuses[i % TURNUSES], name=f"kind {i}")
            for i in range(TURNUSES * CHILDREN_PER_TURNUS)
        ]
    )
    with connection.cursor() as c:
        c.execute("ALTER TABLE kinder REPLICA IDENTITY FULL")
    return {"kinder": Kind.objects.count()}


def timed_saves(config: dict[str, Any]) -> dict[str, Any]:
    import redis
    from benchapp.models import Kind
    from django.db import connection, transaction

    mode = config["mode"]
    pks = list(Kind.objects.order_by("pk").values_list("pk", flat=True))
    label = f"r{config['round']}-{mode}"
    atomic = config["atomic"]

    def save(i: int) -> int:
        """Loads a row (not timed), changes it, saves it: the save's ns."""
        kind = Kind.objects.get(pk=pks[i % len(pks)])
        kind.name = f"{label}-{i}"
        if atomic:
            start = time.perf_counter_ns()
            with transaction.atomic():
                kind.save()
            return time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        kind.save()
        return time.perf_counter_ns() - start

    for i in range(config["warmup"]):
        save(i)
    flush_hooks()
    if mode == "postgres":
        with connection.cursor() as c:
            c.execute("SELECT pg_current_wal_lsn()::text")
            (now,) = c.fetchone()
            wait_for(
                f"serve confirms the WAL position {now} of the warm-up (slot `{SLOT}`)",
                lambda: slot_confirmed(c, now),
                within=120,
            )
    time.sleep(0.2)  # every mode alike: what the warm-up set off has settled

    keys = [f"turnus_data_{t}" for t in Kind.objects.values_list("turnus_id", flat=True)]
    keys = sorted(set(keys))
    cache = redis.Redis.from_url(config["redis_url"])
    cache.mset(dict.fromkeys(keys, b"page"))
    gc.collect()
    samples = [save(config["warmup"] + i) for i in range(config["saves"])]
    last_save = time.monotonic()

    flush_hooks()
    if mode == "nothing":
        time.sleep(0.2)
        kept = cache.exists(*keys)
        if kept != len(keys):
            raise BenchError(f"with nothing running, {len(keys) - kept} keys went anyway")
        settled_ms = 0.0
    else:
        wait_for(
            f"every turnus_data_N is deleted after the saves ({mode})",
            lambda: cache.exists(*keys) == 0,
            within=60,
        )
        settled_ms = (time.monotonic() - last_save) * 1000
    cache.close()
    return {"samples_ns": samples, "settled_ms": settled_ms, "keys": len(keys)}


def flush_hooks() -> None:
    """Waits until the hooks' publisher has delivered everything, through
    the first `flush(timeout)` found on the app, its recorder or its
    publisher (one on a background thread); a synchronous publisher has
    nothing to wait for."""
    from django.apps import apps

    if not apps.is_installed("invalidator.contrib.django"):
        return
    config = apps.get_app_config("invalidator")
    recorder = getattr(config, "recorder", None) or getattr(type(config), "recorder", None)
    for holder in (config, recorder, getattr(recorder, "publisher", None)):
        flush = getattr(holder, "flush", None)
        if callable(flush):
            if flush(30.0) is False:
                raise BenchError("the hooks' publisher did not deliver everything in 30 s")
            return


def slot_confirmed(cursor: Any, lsn: str) -> bool:
    cursor.execute(
        "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
        [lsn, SLOT],
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def wait_for(what: str, done: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {within:.0f} s waiting until {what}")
        time.sleep(0.01)


# --------------------------------------------------------------- the parent


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[round((len(ordered) - 1) * p)]


class Bench:
    """The servers, the app and the rounds."""

    def __init__(self, args: argparse.Namespace) -> None:
        # The tests' own helpers: a throwaway Postgres, redis-server, serve.
        sys.path.insert(0, str(HERE.parent / "tests"))
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="invalidator-bench-django-"))
        self.rules = self.dir / "rules"
        self.rules.mkdir()
        shutil.copy(args.rules / "turnus.wasm", self.rules / "turnus.wasm")
        self.compile_cache = self.dir / "compile-cache"
        self.compile_cache.mkdir(mode=0o700)
        app = self.dir / "app" / "benchapp"
        app.mkdir(parents=True)
        (app / "__init__.py").write_text("")
        (app / "models.py").write_text(MODELS)
        self.postgres: Any = None
        self.redis: Any = None
        self.serve: Any = None

    def start(self) -> None:
        from conftest import PostgresCluster, RedisNode

        self.postgres = PostgresCluster()
        self.redis = RedisNode()

    def close(self) -> None:
        if self.serve is not None:
            self.stop_serve()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, query: str, db: str = "bench") -> Any:
        import psycopg

        with psycopg.connect(self.postgres.url(db), autocommit=True) as c:
            cursor = c.execute(query)
            return cursor.fetchall() if cursor.description else None

    def run_child(self, mode: str, round_: int, serve_url: str | None = None) -> dict[str, Any]:
        config = {
            "mode": mode,
            "round": round_,
            "app_dir": str(self.dir / "app"),
            "db": "bench",
            "pg_port": self.postgres.port,
            "redis_url": self.redis.url,
            "serve_url": serve_url,
            "warmup": self.args.warmup,
            "saves": self.args.saves,
            "atomic": self.args.atomic,
        }
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        out = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        if out.returncode != 0:
            what = "setup" if mode == "setup" else f"round {round_ + 1}, mode {mode}"
            raise BenchError(
                f"{what}: the Django process exited with {out.returncode}:\n"
                f"{out.stderr[-4000:]}{self.serve_log()}"
            )
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start_serve(self, mode: str) -> str:
        from conftest import Serve

        extra = ["--compile-cache", str(self.compile_cache)]
        if mode == "postgres":
            extra += ["--postgres", self.postgres.url("bench")]
        elif mode == "hooks-stream":
            extra += ["--stream", STREAM]
        os.environ["INVALIDATOR_BIN"] = str(self.args.bin)
        self.serve = Serve(self.redis.url, extra, rules=self.rules)
        url: str = self.serve.url
        wait_for(f"{mode}: serve is ready", lambda: ready(url), within=60)
        if mode == "postgres":
            wait_for(
                f"serve streams from the slot `{SLOT}`",
                lambda: (
                    self.sql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'")
                    == [(True,)]
                ),
                within=60,
            )
        return url

    def stop_serve(self) -> str | None:
        """Stops serve; what went wrong, if it did not exit cleanly."""
        serve, self.serve = self.serve, None
        serve.stop()
        if serve.process.returncode == 0:
            return None
        return f"serve exited with {serve.process.returncode}:\n" + "".join(serve.log[-50:])

    def serve_log(self) -> str:
        if self.serve is None:
            return ""
        return "\nserve's log:\n" + "".join(self.serve.log[-50:])

    def run(self) -> dict[str, list[dict[str, Any]]]:
        self.sql("CREATE DATABASE bench", db="postgres")
        self.run_child("setup", 0)
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        for r in range(self.args.rounds):
            order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            for mode in order:
                url = None if mode == "nothing" else self.start_serve(mode)
                try:
                    results[mode].append(self.run_child(mode, r, url))
                finally:
                    stopped = self.stop_serve() if self.serve is not None else None
                if stopped:
                    raise BenchError(f"round {r + 1}, mode {mode}: {stopped}")
            medians = "  ".join(
                f"{m} {statistics.median(results[m][-1]['samples_ns']) / 1000:.0f}" for m in MODES
            )
            print(f"round {r + 1}: median us {medians}", file=sys.stderr, flush=True)
        return results


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    us = {m: [[s / 1000 for s in r["samples_ns"]] for r in results[m]] for m in MODES}
    medians = {m: [statistics.median(r) for r in us[m]] for m in MODES}
    style = "transaction.atomic()" if args.atomic else "autocommit"
    print(
        f"bench-django: {args.rounds} rounds × {args.saves} saves per mode "  # noqa: RUF001
        f"(after {args.warmup} warm-up saves), interleaved; Kind.save() in {style}, us per save"
    )
    print(f"{'mode':<13} {'median':>7} {'mean':>7} {'p90':>7}   per-round medians")
    for m in MODES:
        pooled = [s for r in us[m] for s in r]
        rounds = " ".join(f"{v:.0f}" for v in medians[m])
        print(
            f"{m:<13} {statistics.median(pooled):>7.0f} {statistics.fmean(pooled):>7.0f} "
            f"{percentile(pooled, 0.9):>7.0f}   {rounds}"
        )
    settled = {m: max(r["settled_ms"] for r in results[m]) for m in MODES if m != "nothing"}
    print(
        "every invalidation checked: keys gone within "
        + ", ".join(f"{m} {v:.1f} ms" for m, v in settled.items())
        + " of the last save (nothing: every key kept)"
    )
    print("overheads: per round, the mode's median minus nothing's; then their median over rounds")
    over: dict[str, float] = {}
    for m in MODES[1:]:
        diffs = [a - b for a, b in zip(medians[m], medians["nothing"], strict=True)]
        over[m] = statistics.median(diffs)
        rounds = " ".join(f"{d:+.0f}" for d in diffs)
        print(f"  {m:<13} {over[m]:+7.0f} us   per round: {rounds}")
    hooks = max(over["hooks-http"], over["hooks-stream"])
    pg = over["postgres"]

    def verdict(value: float, target: int) -> str:
        return f"target <= {target}: " + ("met" if value <= target else "NOT met")

    print(
        f"hooks (worse of http, stream) {verdict(hooks, HOOKS_TARGET_US)}; "
        f"postgres source {verdict(pg, POSTGRES_TARGET_US)}"
    )
    print(
        f"hooks overhead per save us: {hooks:.0f}; postgres source overhead per save us: {pg:.0f}"
    )


def pytest_failure() -> type[BaseException]:
    """The exception of `pytest.fail`, which conftest's helpers raise (say,
    for a missing `redis-server`); a BaseException, not an Exception."""
    import pytest

    return pytest.fail.Exception  # type: ignore[no-any-return]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bin",
        type=Path,
        default=Path(os.environ.get("INVALIDATOR_BIN") or ROOT / "target/release/invalidator"),
        help="the invalidator binary [$INVALIDATOR_BIN, else target/release/invalidator]",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=Path(os.environ.get("INVALIDATOR_RULES") or ROOT / "target/rules"),
        help="the folder holding turnus.wasm [$INVALIDATOR_RULES, else target/rules]",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--saves", type=int, default=500, help="timed saves per mode and round")
    parser.add_argument("--warmup", type=int, default=100, help="untimed saves before them")
    parser.add_argument("--atomic", action="store_true", help="each save in transaction.atomic()")
    args = parser.parse_args()
    args.bin = args.bin.resolve()
    args.rules = args.rules.resolve()
    if not args.bin.is_file():
        print(f"bench-django: no invalidator binary at {args.bin}", file=sys.stderr)
        return 2
    if not (args.rules / "turnus.wasm").is_file():
        print(
            f"bench-django: no turnus.wasm in {args.rules}: run `cargo xtask build-rules`",
            file=sys.stderr,
        )
        return 2
    bench = Bench(args)
    try:
        bench.start()
        results = bench.run()
    except BenchError as e:
        print(f"bench-django: {e}", file=sys.stderr)
        return 1
    except (Exception, pytest_failure()) as e:
        traceback.print_exc()
        print(f"bench-django: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        bench.close()
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
