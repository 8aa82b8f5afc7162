//! `cargo xtask bench-cdc`: `invalidator serve --postgres` on a throwaway
//! Postgres cluster and a real Redis, measured from outside: clients
//! commit single-row updates of the turnus rule's `geld` table (one key,
//! `turnus_data_ID`, per transaction).
//!
//! - **Latency at a fixed rate**: `CLIENTS` connections commit 1,000
//!   transactions per second between them for `LATENCY_SECS`; each
//!   transaction's latency runs from the moment its commit returned to the
//!   moment Redis reports its key deleted (keyspace notifications). p50 and
//!   p99.
//! - **Throughput**: with `serve` stopped, `CLIENTS` connections commit
//!   `BACKLOG` transactions as fast as they can; then, over those same
//!   transactions, the reference, `pg_recvlogical` on a second slot, decodes
//!   them to `/dev/null`, and `serve` is started and timed until every key
//!   is gone. The ratio of the two rates is the figure: what the rules, the
//!   pipeline and Redis cost over decoding alone.
//!
//! The `invalidator` binary is the release build `cargo xtask bench-cdc`
//! makes (`INVALIDATOR_BIN`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use invalidator_tests::cdc::{cache_keys, cpu_us, latencies_ms, percentile, watch_deletions};
use invalidator_tests::postgres::{Client, NoTls};
use invalidator_tests::{PostgresServer, RedisServer, ServeProcess, deploy, fresh_dir, guests};

const CLIENTS: u32 = 4;
const RATE: u32 = 1000;
const LATENCY_SECS: u32 = 6;
const BACKLOG: u32 = 40_000;

fn serve(bin: &str, dir: &str, redis: &RedisServer, pg: &PostgresServer) -> ServeProcess {
    ServeProcess::start(
        bin,
        &[
            "--rules",
            dir,
            "--redis",
            &redis.url(),
            "--postgres",
            &pg.url("bench"),
        ],
        &[],
    )
}

fn wait_active(pg: &PostgresServer, slot: &str) {
    let mut db = pg.client("bench");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active = db
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&slot],
            )
            .unwrap()
            .is_some();
        if active {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "slot `{slot}` never became active"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Latency at `RATE` transactions per second: p50 and p99, in ms; and the
/// CPU time `serve` spent per transaction, in µs.
fn latency(bin: &str, dir: &str, redis: &RedisServer, pg: &PostgresServer) -> (f64, f64, f64) {
    let total = RATE * LATENCY_SECS;
    cache_keys(redis, 0..total);
    let service = serve(bin, dir, redis, pg);
    wait_active(pg, "invalidator");
    let deletions = watch_deletions(redis, total as usize);
    let cpu_before = cpu_us(service.pid());
    let committed = Arc::new(Mutex::new(vec![None::<Instant>; total as usize]));
    let start = Instant::now();
    let per_client = RATE / CLIENTS;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = pg.url("bench");
            let committed = committed.clone();
            std::thread::spawn(move || {
                let mut db = Client::connect(&url, NoTls).unwrap();
                let update = db
                    .prepare("UPDATE geld SET amount = amount + 1 WHERE id = $1")
                    .unwrap();
                let n = per_client * LATENCY_SECS;
                for i in 0..n {
                    // Paced: transaction i of this client is due at
                    // i / per_client seconds, whatever the previous took.
                    let due = start + Duration::from_secs_f64(f64::from(i) / f64::from(per_client));
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let id = (i * CLIENTS + c) as i32;
                    db.execute(&update, &[&id]).unwrap();
                    committed.lock().unwrap()[id as usize] = Some(Instant::now());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let deleted = deletions.join().unwrap();
    let cpu_per_commit = (cpu_us(service.pid()) - cpu_before) / f64::from(total);
    let committed = committed.lock().unwrap();
    let ms = latencies_ms(&deleted, &committed);
    let _ = service.stop(Duration::from_secs(60));
    (percentile(&ms, 0.5), percentile(&ms, 0.99), cpu_per_commit)
}

/// The backlog's rates: (clients' commits/s, pg_recvlogical's
/// transactions/s, serve's end-to-end transactions/s).
fn throughput(bin: &str, dir: &str, redis: &RedisServer, pg: &PostgresServer) -> (f64, f64, f64) {
    let mut db = pg.client("bench");
    // The reference's slot, made now so that both slots hold exactly the
    // backlog (the latency run left `invalidator`'s confirmed).
    db.batch_execute("SELECT pg_create_logical_replication_slot('reference', 'pgoutput')")
        .unwrap();
    let redis_ids = 0..BACKLOG;
    cache_keys(redis, redis_ids);
    let start = Instant::now();
    let per_client = BACKLOG / CLIENTS;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = pg.url("bench");
            std::thread::spawn(move || {
                let mut db = Client::connect(&url, NoTls).unwrap();
                let update = db
                    .prepare("UPDATE geld SET amount = amount + 1 WHERE id = $1")
                    .unwrap();
                for i in 0..per_client {
                    db.execute(&update, &[&((i * CLIENTS + c) as i32)]).unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let committing = f64::from(BACKLOG) / start.elapsed().as_secs_f64();
    let end: String = db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);

    // The reference: decode the backlog and throw it away.
    let bindir = String::from_utf8(
        std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let recv = std::path::Path::new(bindir.trim()).join("pg_recvlogical");
    let started = Instant::now();
    let out = std::process::Command::new(&recv)
        .args([
            "-d",
            &pg.url("bench"),
            "--slot",
            "reference",
            "--start",
            "--no-loop",
        ])
        .args([
            "-o",
            "proto_version=1",
            "-o",
            "publication_names=invalidator",
        ])
        .args(["--endpos", &end, "-f", "/dev/null"])
        .output()
        .unwrap();
    let reference_secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "pg_recvlogical failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same backlog through serve: from the moment it streams until
    // Redis holds none of the keys.
    let mut conn = redis.connection();
    let service = serve(bin, dir, redis, pg);
    wait_active(pg, "invalidator");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    while redis::cmd("DBSIZE").query::<u64>(&mut conn).unwrap() > 0 {
        assert!(Instant::now() < deadline, "the backlog was never applied");
        std::thread::sleep(Duration::from_millis(1));
    }
    let serve_secs = started.elapsed().as_secs_f64();
    let _ = service.stop(Duration::from_secs(60));
    (
        committing,
        f64::from(BACKLOG) / reference_secs,
        f64::from(BACKLOG) / serve_secs,
    )
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let bin = std::env::var("INVALIDATOR_BIN")
        .expect("run through `cargo xtask bench-cdc`, which builds the release binary");
    let pg = PostgresServer::start();
    pg.client("postgres")
        .batch_execute("CREATE DATABASE bench")
        .unwrap();
    pg.client("bench")
        .batch_execute(
            "CREATE TABLE geld (id int PRIMARY KEY, turnus_id int, amount float8);
             INSERT INTO geld SELECT i, i, 0 FROM generate_series(0, 99999) i;",
        )
        .unwrap();
    let redis = RedisServer::start();
    let dir = fresh_dir("bench-cdc");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let dir = dir.to_str().unwrap().to_owned();

    let (p50, p99, cpu) = latency(&bin, &dir, &redis, &pg);
    println!(
        "latency at {RATE} tx/s ({CLIENTS} connections, {LATENCY_SECS} s), commit returned to key gone: p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    println!("serve cpu us per single-row commit: {cpu:.0}");
    let (committing, reference, end_to_end) = throughput(&bin, &dir, &redis, &pg);
    println!(
        "backlog of {BACKLOG} transactions (committed by {CLIENTS} connections at {committing:.0} tx/s): \
         pg_recvlogical decodes {reference:.0} tx/s; serve applies {end_to_end:.0} tx/s end to end"
    );
    println!(
        "cdc p99 ms at 1000 tx/s: {p99:.2}; end-to-end/pg_recvlogical ratio: {:.2}",
        end_to_end / reference
    );
}
