//! `cargo xtask bench-service`: `invalidator serve` as a service, on a real
//! Redis, measured from outside as its clients see it.
//!
//! - **HTTP throughput**: 32 clients post one commit per request until
//!   `COMMITS` are accepted; the clock stops when Redis holds none of their
//!   keys any more.
//! - **HTTP latency**: 8 clients post one commit per request with
//!   `?wait=true`, which answers once the invalidations are applied; each
//!   answer is checked against Redis (`EXISTS` is 0). p99 of those
//!   round trips.
//! - **Stream**: `COMMITS` entries are added to a stream that one, then two,
//!   `serve --stream` processes consume; the clock runs from the first
//!   `XADD` until every entry is acknowledged and every key gone.
//!
//! Each commit is a payment the turnus rule turns into one key,
//! `turnus_data_ID`. The `invalidator` binary is the release build
//! `cargo xtask bench-service` makes (`INVALIDATOR_BIN`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use invalidator_tests::{RedisServer, ServeProcess, deploy, fresh_dir, guests};
use redis::Commands;

const COMMITS: u64 = 20_000;
const LATENCY_SAMPLES: u64 = 4_000;

fn geld(id: u64) -> String {
    format!(
        r#"{{"txn":"t{id}","writes":[{{"table":"geld","op":"insert","key":{{"id":{id}}},"after":{{"id":{id},"turnus_id":{id}}}}}]}}"#
    )
}

/// Caches `turnus_data_FROM..TO`.
fn cache_keys(conn: &mut redis::Connection, ids: std::ops::Range<u64>) {
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.set(format!("turnus_data_{id}"), "cached").ignore();
    }
    let () = pipe.query(conn).expect("caching the keys");
}

fn wait_until_empty(conn: &mut redis::Connection, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while redis::cmd("DBSIZE").query::<u64>(conn).unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "{what}: keys never all invalidated"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// HTTP: commits per second, and p99 of posting with `?wait=true`, in ms.
fn http(bin: &str, dir: &str, redis: &RedisServer) -> (f64, f64, f64) {
    let mut conn = redis.connection();
    let service = ServeProcess::start(
        bin,
        &[
            "--rules",
            dir,
            "--redis",
            &redis.url(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let url = service.at("/v1/commits");

    // Throughput.
    cache_keys(&mut conn, 0..COMMITS);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    rt.block_on(async {
        let clients: Vec<_> = (0..32)
            .map(|_| {
                let (client, url, next) = (client.clone(), url.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        if id >= COMMITS {
                            return;
                        }
                        let response = client.post(&url).body(geld(id)).send().await.unwrap();
                        assert_eq!(response.status(), 202);
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
    });
    wait_until_empty(&mut conn, "http");
    let throughput = COMMITS as f64 / started.elapsed().as_secs_f64();

    // Latency, each answer checked against Redis.
    let base = COMMITS;
    cache_keys(&mut conn, base..base + LATENCY_SAMPLES);
    let next = Arc::new(AtomicU64::new(base));
    let wait_url = format!("{url}?wait=true");
    let mut millis: Vec<f64> = rt.block_on(async {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (client, url, next) = (client.clone(), wait_url.clone(), next.clone());
                let redis_url = redis.url();
                tokio::spawn(async move {
                    let mut check = redis::Client::open(redis_url)
                        .unwrap()
                        .get_connection()
                        .unwrap();
                    let mut took = Vec::new();
                    loop {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        if id >= base + LATENCY_SAMPLES {
                            return took;
                        }
                        let t = Instant::now();
                        let response = client.post(&url).body(geld(id)).send().await.unwrap();
                        assert_eq!(response.status(), 200);
                        took.push(t.elapsed().as_secs_f64() * 1000.0);
                        let cached: bool = check.exists(format!("turnus_data_{id}")).unwrap();
                        assert!(!cached, "turnus_data_{id} still cached after ?wait=true");
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in clients {
            all.extend(c.await.unwrap());
        }
        all
    });
    millis.sort_by(f64::total_cmp);
    let (status, summary) = service.stop(Duration::from_secs(60));
    assert!(status.success(), "{summary}");
    (
        throughput,
        percentile(&millis, 0.5),
        percentile(&millis, 0.99),
    )
}

/// The stream, with `consumers` processes: commits per second.
fn stream(bin: &str, dir: &str, redis: &RedisServer, consumers: usize) -> f64 {
    let mut conn = redis.connection();
    let () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    let name = format!("bench-{consumers}");
    let processes: Vec<ServeProcess> = (0..consumers)
        .map(|i| {
            ServeProcess::start(
                bin,
                &[
                    "--rules",
                    dir,
                    "--redis",
                    &redis.url(),
                    "--stream",
                    &name,
                    "--group",
                    "bench",
                    "--consumer",
                    &format!("c{i}"),
                ],
                &[("INVALIDATOR_STREAM__BLOCK", "100ms")],
            )
        })
        .collect();
    // Every consumer is reading before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let consumers_now: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&name)
            .arg("bench")
            .query(&mut conn)
            .unwrap_or_default();
        if consumers_now.len() == consumers {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumers never started reading"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cache_keys(&mut conn, 0..COMMITS);
    let started = Instant::now();
    for chunk in (0..COMMITS).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &id in chunk {
            pipe.xadd(&name, "*", &[("commit", geld(id))]).ignore();
        }
        let () = pipe.query(&mut conn).unwrap();
    }
    // Keys gone, then every entry acknowledged.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let keys: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
        let pending: redis::streams::StreamPendingReply = conn.xpending(&name, "bench").unwrap();
        // The stream itself is one key.
        if keys == 1 && pending.count() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the stream was never drained");
        std::thread::sleep(Duration::from_millis(2));
    }
    let rate = COMMITS as f64 / started.elapsed().as_secs_f64();
    for p in processes {
        let (status, summary) = p.stop(Duration::from_secs(60));
        assert!(status.success(), "{summary}");
    }
    rate
}

fn main() {
    let bin = std::env::var("INVALIDATOR_BIN")
        .expect("INVALIDATOR_BIN: run this through `cargo xtask bench-service`");
    let redis = RedisServer::start();
    let dir = fresh_dir("bench-service");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let dir = dir.to_str().unwrap();

    let (http_rate, p50, p99) = http(&bin, dir, &redis);
    println!("http: {COMMITS} commits, one per request, 32 clients: {http_rate:.0} commits/s");
    println!(
        "http ?wait=true, 8 clients, {LATENCY_SAMPLES} commits: p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    let one = stream(&bin, dir, &redis, 1);
    println!("stream, 1 consumer, {COMMITS} entries: {one:.0} commits/s");
    let two = stream(&bin, dir, &redis, 2);
    println!("stream, 2 consumers, {COMMITS} entries: {two:.0} commits/s");
    println!(
        "http commits/s: {http_rate:.0}, p99 ms: {p99:.2}; stream 1 consumer commits/s: {one:.0}, 2 consumers: {two:.0}"
    );
}
