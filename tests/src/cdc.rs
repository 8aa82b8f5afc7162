//! What the change-data-capture benchmarks share (`bench-cdc`, for
//! Postgres and for MySQL): the turnus keys they cache, when Redis deletes
//! each (its keyspace notifications), `serve`'s CPU time, percentiles.

use std::time::{Duration, Instant};

use crate::RedisServer;

/// The value at fraction `p` of `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Caches `turnus_data_ID` for `ids`.
pub fn cache_keys(redis: &RedisServer, ids: std::ops::Range<u32>) {
    let mut conn = redis.connection();
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.set(format!("turnus_data_{id}"), "cached").ignore();
    }
    let () = pipe.query(&mut conn).expect("caching the keys");
}

/// Records when each `turnus_data_ID` key is deleted, from Redis's
/// keyspace notifications, until `expected` deletions are seen.
pub fn watch_deletions(
    redis: &RedisServer,
    expected: usize,
) -> std::thread::JoinHandle<Vec<(u32, Instant)>> {
    let mut conn = redis.connection();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Eg")
        .query(&mut conn)
        .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut pubsub = conn.as_pubsub();
        pubsub.psubscribe("__keyevent@0__:*").unwrap();
        ready_tx.send(()).unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut seen = Vec::with_capacity(expected);
        while seen.len() < expected {
            let msg = pubsub.get_message().expect("a deletion within 120 s");
            let at = Instant::now();
            let key: String = msg.get_payload().unwrap();
            if let Some(id) = key.strip_prefix("turnus_data_") {
                seen.push((id.parse().unwrap(), at));
            }
        }
        seen
    });
    ready_rx.recv().unwrap();
    handle
}

/// The CPU time process `pid` has used so far (user and system), in
/// microseconds, from `/proc/PID/stat`.
pub fn cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading its stat");
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 12th and 13th of them.
    let after = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_second * 1e6
}

/// Each deleted key's latency, from its commit's return to its deletion,
/// in milliseconds, sorted: `deleted` from [`watch_deletions`], and
/// `committed` the time each id's commit returned.
pub fn latencies_ms(deleted: &[(u32, Instant)], committed: &[Option<Instant>]) -> Vec<f64> {
    let mut ms: Vec<f64> = deleted
        .iter()
        .map(|(id, at)| {
            let c = committed[*id as usize].expect("every deleted key was committed");
            at.saturating_duration_since(c).as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}
