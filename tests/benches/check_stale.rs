//! `cargo xtask check-stale`: the race every invalidation system meets,
//! provoked on real parts, with and without leases.
//!
//! A throwaway Postgres holds `ROWS` rows; `invalidator serve --postgres`
//! (the release build) reads its commits and applies the turnus rule's
//! invalidations (row `id` → key `turnus_data_{id}`) to a real Redis.
//! Writers update random rows, one transaction each. Readers read random
//! rows through the cache; on a miss, their loader reads the row and then
//! sleeps a random few milliseconds before returning, so that commits and
//! their invalidations land while values are being loaded.
//!
//! - **with leases**: readers call `Cache::get_or_fill`;
//! - **with plain get/set**: readers `get`, and on a miss load and `set`.
//!
//! Each round runs writers and readers together, stops the writers, lets
//! the readers go on a little (the invalidations are still arriving), stops
//! them, waits until `serve` has applied every commit (the slot's confirmed
//! position reaches the server's), and compares every cached value with its
//! row. The last line: `stale with leases: 0 of N; with plain get/set: M of
//! N`, N being the cached values compared; leases must give 0, and plain
//! get/set more than 0, which shows the checker can see staleness.
//!
//! **`near`** (`cargo bench -p invalidator-tests --bench check_stale --
//! near [ARGS...]`, `cargo xtask check-stale near`): the same servers, read
//! through the Python client's near cache. This driver runs
//! `clients/python/benches/check_stale_near.py` with `--pg URL --redis URL`
//! and the ARGS after `near` (`--duration 20`, say), under
//! `$INVALIDATOR_PYTHON` (default `target/python-venv/bin/python`, with the
//! package installed with its `test` extra, which brings psycopg). The
//! script runs readers (`get_or_fill` through `LocalCache`) and writers,
//! waits until serve has drained, and compares every near-cache entry and
//! every Redis value with its row; it prints the last line, `near cache:
//! stale after quiescence: Z of N; read lag after invalidation p99 ms: A,
//! max ms: B`, and fails when Z is not 0. This driver then checks Redis
//! against the rows itself, once serve has drained again.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use invalidator::cache::Cache;
use invalidator::layout::leases::is_lease;
use invalidator::redis::{Redis, RedisConfig};
use invalidator_tests::postgres::{Client, NoTls};
use invalidator_tests::{PostgresServer, RedisServer, ServeProcess, deploy, fresh_dir, guests};

const ROWS: i32 = 40;
const READERS: usize = 12;
const WRITERS: usize = 3;
const ROUNDS: u64 = 10;
const READS_PER_MODE: u64 = 100_000;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Leases,
    Plain,
}

fn key(id: i32) -> String {
    format!("turnus_data_{id}")
}

/// One reader until `stop`: random rows through the cache.
fn reader(mode: Mode, pg: String, redis: String, stop: Arc<AtomicBool>, reads: Arc<AtomicU64>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = Cache::new(Arc::new(
        Redis::open(&redis, RedisConfig::default()).unwrap(),
    ));
    let mut db = Client::connect(&pg, NoTls).unwrap();
    let select = db.prepare("SELECT amount FROM geld WHERE id = $1").unwrap();
    // The synchronous Postgres client runs a runtime of its own, which
    // cannot start inside the reader's: each load runs on a scoped thread.
    let mut load = |id: i32| -> Vec<u8> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let amount: i64 = db.query_one(&select, &[&id]).unwrap().get(0);
                // The race window: the row is read, the value not yet stored.
                std::thread::sleep(Duration::from_micros(fastrand::u64(0..3000)));
                amount.to_string().into_bytes()
            })
            .join()
            .unwrap()
        })
    };
    while !stop.load(Relaxed) {
        let id = fastrand::i32(0..ROWS);
        rt.block_on(async {
            match mode {
                Mode::Leases => {
                    // Called once the lease is granted: the row is read then.
                    let loader = || {
                        let value = load(id);
                        async move { Ok::<_, std::convert::Infallible>(value) }
                    };
                    cache
                        .get_or_fill(&key(id), None, &[], loader)
                        .await
                        .unwrap();
                }
                Mode::Plain => {
                    if cache.get(&key(id)).await.unwrap().is_none() {
                        let value = load(id);
                        cache.set(&key(id), &value, None, &[]).await.unwrap();
                    }
                }
            }
        });
        reads.fetch_add(1, Relaxed);
    }
}

/// One writer until `stop`: random rows updated, one transaction each.
fn writer(pg: String, stop: Arc<AtomicBool>) {
    let mut db = Client::connect(&pg, NoTls).unwrap();
    let update = db
        .prepare("UPDATE geld SET amount = amount + 1 WHERE id = $1")
        .unwrap();
    while !stop.load(Relaxed) {
        db.execute(&update, &[&fastrand::i32(0..ROWS)]).unwrap();
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..500)));
    }
}

/// Waits until `serve` has applied every commit so far: the slot's
/// confirmed position reaches the server's current one (it is confirmed
/// only once applied, and follows keepalives when idle).
fn drained(pg: &PostgresServer) {
    let mut db = pg.client("stale");
    let now: i64 = db
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let confirmed: i64 = db
            .query_one(
                "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots \
                 WHERE slot_name = 'invalidator'",
                &[],
            )
            .unwrap()
            .get(0);
        if confirmed >= now {
            return;
        }
        assert!(Instant::now() < deadline, "serve never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Cached values compared with their rows: (compared, stale).
fn compare(pg: &PostgresServer, redis: &RedisServer) -> (u64, u64) {
    let mut db = pg.client("stale");
    let mut conn = redis.connection();
    let (mut compared, mut stale) = (0, 0);
    for id in 0..ROWS {
        let cached: Option<Vec<u8>> = redis::cmd("GET").arg(key(id)).query(&mut conn).unwrap();
        let Some(cached) = cached.filter(|v| !is_lease(v)) else {
            continue;
        };
        let amount: i64 = db
            .query_one("SELECT amount FROM geld WHERE id = $1", &[&id])
            .unwrap()
            .get(0);
        compared += 1;
        if cached != amount.to_string().into_bytes() {
            stale += 1;
        }
    }
    (compared, stale)
}

/// Rounds of one mode: (reads, values compared, stale values).
fn run(mode: Mode, pg: &PostgresServer, redis: &RedisServer) -> (u64, u64, u64) {
    let (mut reads_total, mut compared, mut stale) = (0, 0, 0);
    for _ in 0..ROUNDS {
        let () = redis::cmd("FLUSHALL")
            .query(&mut redis.connection())
            .unwrap();
        let stop_writers = Arc::new(AtomicBool::new(false));
        let stop_readers = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (pg, url) = (pg.url("stale"), redis.url());
                let (stop, reads) = (stop_readers.clone(), reads.clone());
                std::thread::spawn(move || reader(mode, pg, url, stop, reads))
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (pg, stop) = (pg.url("stale"), stop_writers.clone());
                std::thread::spawn(move || writer(pg, stop))
            })
            .collect();
        while reads.load(Relaxed) < READS_PER_MODE / ROUNDS {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop_writers.store(true, Relaxed);
        writers.into_iter().for_each(|w| w.join().unwrap());
        // Readers go on while the last invalidations arrive.
        std::thread::sleep(Duration::from_millis(50));
        stop_readers.store(true, Relaxed);
        readers.into_iter().for_each(|r| r.join().unwrap());
        drained(pg);
        let (c, s) = compare(pg, redis);
        compared += c;
        stale += s;
        reads_total += reads.load(Relaxed);
    }
    (reads_total, compared, stale)
}

/// The `near` mode: the Python script against the running servers; then
/// Redis compared with the rows here too.
fn near(pg: &PostgresServer, redis: &RedisServer, args: &[String]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies in the repository")
        .to_path_buf();
    let python = std::env::var_os("INVALIDATOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/python-venv/bin/python"));
    assert!(
        python.is_file(),
        "no Python interpreter at {}: make the Python packages' environment (`cargo xtask \
         test` does; or `python3 -m venv target/python-venv && target/python-venv/bin/pip \
         install -e 'clients/python[test]'`) or set $INVALIDATOR_PYTHON",
        python.display()
    );
    let script = root.join("clients/python/benches/check_stale_near.py");
    let status = Command::new(&python)
        .current_dir(&root)
        .arg(&script)
        .args(["--pg", &pg.url("stale"), "--redis", &redis.url()])
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("running {} {}: {e}", python.display(), script.display()));
    drained(pg);
    let (_, stale) = compare(pg, redis);
    assert_eq!(stale, 0, "a stale value is in Redis after quiescence");
    assert!(
        status.success(),
        "{} failed ({status}): see its output above",
        script.display()
    );
}

fn main() {
    let bin = std::env::var("INVALIDATOR_BIN")
        .expect("run through `cargo xtask check-stale`, which builds the release binary");
    // `near` and what follows it choose the near-cache mode and go to its
    // script, less the `--bench` that `cargo bench` adds.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let near_args = args
        .iter()
        .position(|a| a == "near")
        .map(|at| args[at + 1..].to_vec());
    let pg = PostgresServer::start();
    pg.client("postgres")
        .batch_execute("CREATE DATABASE stale")
        .unwrap();
    pg.client("stale")
        .batch_execute(&format!(
            "CREATE TABLE geld (id int PRIMARY KEY, turnus_id int, amount int8);
             INSERT INTO geld SELECT i, i, 0 FROM generate_series(0, {}) i;",
            ROWS - 1
        ))
        .unwrap();
    let redis = RedisServer::start();
    let dir = fresh_dir("check-stale");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let serve = ServeProcess::start(
        &bin,
        &[
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            &redis.url(),
            "--postgres",
            &pg.url("stale"),
        ],
        &[("INVALIDATOR_POSTGRES__CONFIRM_EVERY", "50ms")],
    );
    // Rounds count only once serve streams: writes made before its slot
    // exists are never seen, and would count as stale.
    let mut db = pg.client("stale");
    let deadline = Instant::now() + Duration::from_secs(120);
    while db
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'invalidator' AND active",
            &[],
        )
        .unwrap()
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "serve never streamed:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(near_args) = near_args {
        near(&pg, &redis, &near_args);
        let _ = serve.stop(Duration::from_secs(30));
        return;
    }
    let (lr, lc, ls) = run(Mode::Leases, &pg, &redis);
    println!("with leases: {lr} reads, {lc} cached values compared with their rows, {ls} stale");
    let (pr, pc, ps) = run(Mode::Plain, &pg, &redis);
    println!("with plain get/set: {pr} reads, {pc} cached values compared, {ps} stale");
    let _ = serve.stop(Duration::from_secs(30));
    println!("stale with leases: {ls} of {lc}; with plain get/set: {ps} of {pc}");
    assert_eq!(ls, 0, "a stale value was stored under a lease");
    assert!(
        ps > 0,
        "plain get/set showed no staleness: the checker cannot see it"
    );
}
