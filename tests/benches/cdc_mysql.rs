//! `cargo xtask bench-cdc --mysql`: `invalidator serve --mysql` on a
//! throwaway MariaDB and a real Redis, measured from outside: clients
//! commit single-row updates of the turnus rule's `geld` table (one key,
//! `turnus_data_ID`, per transaction), as `bench-cdc` does for Postgres.
//!
//! - **Latency at a fixed rate**: `CLIENTS` connections commit 1,000
//!   transactions per second between them for `LATENCY_SECS`; each
//!   transaction's latency runs from the moment its commit returned to the
//!   moment Redis reports its key deleted. p50 and p99.
//! - **Throughput**: with `serve` stopped, `CLIENTS` connections commit
//!   `BACKLOG` transactions; then the reference, `mariadb-binlog
//!   --read-from-remote-server`, reads and decodes those same transactions
//!   to `/dev/null`, and `serve` is started and timed until every key is
//!   gone. The ratio of the two rates is the figure.
//!
//! The `invalidator` binary is the release build `cargo xtask bench-cdc`
//! makes (`INVALIDATOR_BIN`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use invalidator_tests::cdc::{cache_keys, cpu_us, latencies_ms, percentile, watch_deletions};
use invalidator_tests::{MariadbServer, RedisServer, ServeProcess, deploy, fresh_dir, guests};
use mysql_async::prelude::Queryable;

const CLIENTS: u32 = 4;
const RATE: u32 = 1000;
const LATENCY_SECS: u32 = 6;
const BACKLOG: u32 = 40_000;

fn serve(bin: &str, dir: &str, redis: &RedisServer, db: &MariadbServer) -> ServeProcess {
    ServeProcess::start(
        bin,
        &[
            "--rules",
            dir,
            "--redis",
            &redis.url(),
            "--mysql",
            &db.url("bench"),
        ],
        &[],
    )
}

/// Waits until a reader streams the server's log.
fn wait_streaming(db: &MariadbServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db
        .sql(
            None,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .trim()
        == "0"
    {
        assert!(Instant::now() < deadline, "no reader ever streamed");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Keys left in Redis but `serve`'s own (its position and lease).
fn keys_left(conn: &mut redis::Connection) -> u64 {
    let own: Vec<String> = redis::cmd("KEYS").arg("inv:mysql:*").query(conn).unwrap();
    let all: u64 = redis::cmd("DBSIZE").query(conn).unwrap();
    all - own.len() as u64
}

/// Commits single-row updates of `geld` from `CLIENTS` connections: ids
/// `0..total`, paced at `rate` a second between them when given; records
/// when each commit returned.
fn commit(
    rt: &tokio::runtime::Runtime,
    url: &str,
    total: u32,
    rate: Option<u32>,
) -> Vec<Option<Instant>> {
    let committed = Arc::new(Mutex::new(vec![None::<Instant>; total as usize]));
    let start = Instant::now();
    let per_client = total / CLIENTS;
    rt.block_on(async {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let url = url.to_owned();
                let committed = committed.clone();
                tokio::spawn(async move {
                    let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
                    let update = conn
                        .prep("UPDATE geld SET amount = amount + 1 WHERE id = ?")
                        .await
                        .unwrap();
                    for i in 0..per_client {
                        if let Some(rate) = rate {
                            let per = f64::from(rate / CLIENTS);
                            let due = start + Duration::from_secs_f64(f64::from(i) / per);
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                tokio::time::sleep(wait).await;
                            }
                        }
                        let id = i * CLIENTS + c;
                        conn.exec_drop(&update, (id,)).await.unwrap();
                        committed.lock().unwrap()[id as usize] = Some(Instant::now());
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
    });
    Arc::try_unwrap(committed).unwrap().into_inner().unwrap()
}

/// Latency at `RATE` transactions per second: p50 and p99, in ms; and the
/// CPU time `serve` spent per transaction, in µs.
fn latency(
    rt: &tokio::runtime::Runtime,
    bin: &str,
    dir: &str,
    redis: &RedisServer,
    db: &MariadbServer,
) -> (f64, f64, f64) {
    let total = RATE * LATENCY_SECS;
    cache_keys(redis, 0..total);
    let service = serve(bin, dir, redis, db);
    wait_streaming(db);
    let deletions = watch_deletions(redis, total as usize);
    let cpu_before = cpu_us(service.pid());
    let committed = commit(rt, &db.url("bench"), total, Some(RATE));
    let deleted = deletions.join().unwrap();
    let cpu_per_commit = (cpu_us(service.pid()) - cpu_before) / f64::from(total);
    let ms = latencies_ms(&deleted, &committed);
    let _ = service.stop(Duration::from_secs(60));
    (percentile(&ms, 0.5), percentile(&ms, 0.99), cpu_per_commit)
}

/// The backlog's rates: (clients' commits/s, mariadb-binlog's
/// transactions/s, serve's end-to-end transactions/s).
fn throughput(
    rt: &tokio::runtime::Runtime,
    bin: &str,
    dir: &str,
    redis: &RedisServer,
    db: &MariadbServer,
) -> (f64, f64, f64) {
    let status = db.sql(None, "SHOW MASTER STATUS");
    let mut fields = status.split_whitespace();
    let (file, from) = (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    );
    cache_keys(redis, 0..BACKLOG);
    let start = Instant::now();
    commit(rt, &db.url("bench"), BACKLOG, None);
    let committing = f64::from(BACKLOG) / start.elapsed().as_secs_f64();
    let status = db.sql(None, "SHOW MASTER STATUS");
    let to = status.split_whitespace().nth(1).unwrap().to_owned();

    // The reference: read the backlog from the server and decode it.
    let started = Instant::now();
    let out = std::process::Command::new("mariadb-binlog")
        .args([
            "--no-defaults",
            "--read-from-remote-server",
            "-h127.0.0.1",
            "-uroot",
        ])
        .arg(format!("-P{}", db.port()))
        .arg(format!("--start-position={from}"))
        .arg(format!("--stop-position={to}"))
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let reference_secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "mariadb-binlog failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same backlog through serve, from its stored position: from the
    // moment it streams until Redis holds none of the keys.
    let mut conn = redis.connection();
    let service = serve(bin, dir, redis, db);
    wait_streaming(db);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    while keys_left(&mut conn) > 0 {
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
        .expect("run through `cargo xtask bench-cdc --mysql`, which builds the release binary");
    let db = MariadbServer::start();
    db.sql(
        None,
        "CREATE DATABASE bench;
         USE bench;
         CREATE TABLE geld (id int PRIMARY KEY, turnus_id int, amount double) ENGINE=InnoDB;
         INSERT INTO geld SELECT seq, seq, 0 FROM seq_0_to_99999;",
    );
    let redis = RedisServer::start();
    let dir = fresh_dir("bench-cdc-mysql");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let dir = dir.to_str().unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let (p50, p99, cpu) = latency(&rt, &bin, &dir, &redis, &db);
    println!(
        "latency at {RATE} tx/s ({CLIENTS} connections, {LATENCY_SECS} s), commit returned to key gone: p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    println!("serve cpu us per single-row commit: {cpu:.0}");
    let (committing, reference, end_to_end) = throughput(&rt, &bin, &dir, &redis, &db);
    println!(
        "backlog of {BACKLOG} transactions (committed by {CLIENTS} connections at {committing:.0} tx/s): \
         mariadb-binlog reads and decodes {reference:.0} tx/s; serve applies {end_to_end:.0} tx/s end to end"
    );
    println!(
        "mysql cdc p99 ms at 1000 tx/s: {p99:.2}; end-to-end/mariadb-binlog ratio: {:.2}",
        end_to_end / reference
    );
}
