//! `cargo xtask check-failover`: the hole a Redis failover opens, provoked
//! on real parts, round after round.
//!
//! Each round starts a Sentinel group (a primary, a replica, three
//! sentinels) and three `invalidator serve` processes (the release build)
//! on it, each with the dealership rule and keys of its own:
//!
//! - **with acknowledgements**: `--redis-replicas 1`;
//! - **with the replay alone**: `--redis-replicas 0`, the default replay
//!   window;
//! - **without either**: `--redis-replicas 0 --redis-replay-window 0s`,
//!   how every invalidator behaved before: the control that shows the
//!   hole.
//!
//! The replica is cut off its primary (its replication user turned off,
//! its link dropped), each process invalidates its `KEYS` keys (committed
//! values cached before the cut, so the replica holds them), the primary
//! is killed once they are gone from it, and the sentinels promote the
//! replica. The round then waits until the first two processes' keys are
//! gone from the promoted replica (or 30 s), and counts every invalidated
//! key found there again. It prints how long after the kill the replay
//! had removed them: the measure the default `redis.replay_window` (60 s)
//! is set against.
//!
//! Last line: `resurrected after failover with acknowledgements: 0 of N;
//! without: M of N`. The run fails unless the first is 0 (and the replay
//! alone's too) and M > 0, which shows the check can see the hole.

use std::time::{Duration, Instant};

use invalidator_tests::{SentinelGroup, ServeProcess, deploy, fresh_dir, guests};
use serde_json::{Value, json};

const ROUNDS: usize = 5;
const KEYS: usize = 300;

/// The three ways of running `serve` compared, with their flags.
const MODES: [(&str, &[&str]); 3] = [
    ("with acknowledgements", &["--redis-replicas", "1"]),
    ("with the replay alone", &["--redis-replicas", "0"]),
    (
        "without either",
        &["--redis-replicas", "0", "--redis-replay-window", "0s"],
    ),
];

/// Commits whose rule deletes `vehicle:V{i}`.
fn cars(range: std::ops::Range<usize>) -> Value {
    Value::Array(
        range
            .map(|i| {
                let vin = format!("V{i}");
                json!({"txn": format!("t{i}"), "writes": [{"table": "inventory",
                    "op": "update", "key": {"vin": vin}, "before": {"vin": vin, "price": 9},
                    "after": {"vin": vin, "price": 8}}]})
            })
            .collect(),
    )
}

fn keys(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("vehicle:V{i}")).collect()
}

fn present(conn: &mut redis::Connection, keys: &[String]) -> usize {
    keys.iter()
        .filter(|k| {
            redis::cmd("EXISTS")
                .arg(k)
                .query::<bool>(conn)
                .unwrap_or(true)
        })
        .count()
}

fn post(client: &reqwest::blocking::Client, service: &ServeProcess, body: &Value) {
    let response = client
        .post(service.at("/v1/commits"))
        .json(body)
        .send()
        .expect("serve answers");
    assert!(response.status().is_success(), "{:?}", response.text());
}

/// When, after the kill, the sentinels named the replica, and the
/// replay-only process's keys were all gone from it.
struct Times {
    promoted: Option<Duration>,
    replayed: Option<Duration>,
}

/// One round: how many keys each mode left on the promoted replica, and
/// its [`Times`].
fn round(bin: &str, n: usize) -> ([usize; 3], Times) {
    let mut group = SentinelGroup::start(&format!("check-{n}"));
    let sets: Vec<Vec<String>> = (0..3).map(|m| keys(m * KEYS..(m + 1) * KEYS)).collect();
    {
        let mut conn = group.primary.connection();
        for key in sets.iter().flatten() {
            let () = redis::cmd("SET")
                .arg(key)
                .arg("stale")
                .query(&mut conn)
                .unwrap();
        }
        let acked: u64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut conn)
            .unwrap();
        assert_eq!(acked, 1, "the replica holds the values before the cut");
    }
    let rules = fresh_dir(&format!("check-failover-{n}"));
    deploy(guests::DEALERSHIP, &rules.join("dealership.wasm"));
    let url = group.url();
    let services: Vec<ServeProcess> = MODES
        .iter()
        .map(|(_, flags)| {
            let mut args = vec![
                "--rules",
                rules.to_str().unwrap(),
                "--redis",
                &url,
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ];
            args.extend_from_slice(flags);
            ServeProcess::start(
                bin,
                &args,
                &[
                    ("INVALIDATOR_PIPELINE__RETRY_MIN", "20ms"),
                    ("INVALIDATOR_PIPELINE__RETRY_MAX", "300ms"),
                ],
            )
        })
        .collect();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // A first commit each, so that every process knows the primary.
    for (m, service) in services.iter().enumerate() {
        let first = 10_000 + m;
        let response = client
            .post(service.at("/v1/commits?wait=true"))
            .json(&cars(first..first + 1))
            .send()
            .unwrap();
        assert!(response.status().is_success());
    }
    group.assert_unchanged();
    group.primary.cut_off_replicas();
    for (m, service) in services.iter().enumerate() {
        post(&client, service, &cars(m * KEYS..(m + 1) * KEYS));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while sets
        .iter()
        .any(|set| present(&mut group.primary.connection(), set) > 0)
    {
        assert!(
            Instant::now() < deadline,
            "serve never deleted its keys on the primary"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    group.assert_unchanged();
    group.primary.kill();
    let killed = Instant::now();
    let (mut promoted, mut replayed) = (None, None);
    let deadline = killed + Duration::from_secs(40);
    loop {
        if promoted.is_none() && group.primary_port() == Some(group.replica.port()) {
            promoted = Some(killed.elapsed());
        }
        let mut conn = group.replica.connection();
        let acked_left = present(&mut conn, &sets[0]);
        let replay_left = present(&mut conn, &sets[1]);
        if replay_left == 0 && replayed.is_none() {
            replayed = Some(killed.elapsed());
        }
        if (acked_left == 0 && replay_left == 0) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A moment more for anything still on its way.
    std::thread::sleep(Duration::from_secs(2));
    let mut conn = group.replica.connection();
    let left = [0, 1, 2].map(|m| present(&mut conn, &sets[m]));
    for service in services {
        service.kill();
    }
    (left, Times { promoted, replayed })
}

fn main() {
    let bin = std::env::var("INVALIDATOR_BIN")
        .expect("run through `cargo xtask check-failover`, which builds the release binary");
    let mut totals = [0; 3];
    let mut lags = Vec::new();
    let mut replay_times = Vec::new();
    let secs =
        |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
    for n in 1..=ROUNDS {
        let (left, times) = round(&bin, n);
        println!(
            "round {n}: resurrected {} / {} / {} of {KEYS} each ({}, {}, {}); after the kill, \
             promoted at {}, replay done at {}",
            left[0],
            left[1],
            left[2],
            MODES[0].0,
            MODES[1].0,
            MODES[2].0,
            secs(times.promoted),
            secs(times.replayed)
        );
        for m in 0..3 {
            totals[m] += left[m];
        }
        if let Some(replayed) = times.replayed {
            replay_times.push(replayed);
            if let Some(promoted) = times.promoted {
                lags.push(replayed.saturating_sub(promoted));
            }
        }
    }
    let n = ROUNDS * KEYS;
    replay_times.sort();
    lags.sort();
    if let (Some(first), Some(last)) = (replay_times.first(), replay_times.last()) {
        println!(
            "replay done {:.1} s to {:.1} s after the kill (sentinel down-after 2 s), {:.1} s to \
             {:.1} s after the sentinels named the new primary; the default window is 60 s",
            first.as_secs_f64(),
            last.as_secs_f64(),
            lags.first().map_or(0.0, Duration::as_secs_f64),
            lags.last().map_or(0.0, Duration::as_secs_f64)
        );
    }
    println!(
        "resurrected after failover with the replay alone: {} of {n}",
        totals[1]
    );
    println!(
        "resurrected after failover with acknowledgements: {} of {n}; without: {} of {n}",
        totals[0], totals[2]
    );
    assert!(
        totals[0] == 0 && totals[1] == 0 && totals[2] > 0,
        "check-failover failed: with acknowledgements {}, replay alone {}, without {}",
        totals[0],
        totals[1],
        totals[2]
    );
}
