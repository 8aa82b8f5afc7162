//! The invalidation feed, end to end: a real `serve --feed` on a real
//! Redis with the dealership and hedge rules. Keys removed by a key, a
//! pattern and a tag each appear in the stream entry of their batch, with
//! the commit and rule that named them; a bounded entry says it was cut;
//! `/v1/stats` and `/metrics` count the removed keys by rule and by tag;
//! and a feed written where commits are read is refused.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use invalidator_tests::{RedisServer, ServeProcess, deploy, fresh_dir, guests};
use redis::Commands;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");
const FEED: &str = "invalidations";

/// The feed's entries, waiting until there are at least `n`.
fn entries(redis: &RedisServer, n: usize) -> Vec<HashMap<String, String>> {
    let mut conn = redis.connection();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply: redis::streams::StreamRangeReply = conn.xrange_all(FEED).unwrap();
        if reply.ids.len() >= n || Instant::now() > deadline {
            return reply
                .ids
                .into_iter()
                .map(|id| {
                    id.map
                        .into_iter()
                        .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                        .collect()
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn list(entry: &HashMap<String, String>, field: &str) -> Vec<String> {
    serde_json::from_str(&entry[field]).unwrap_or_else(|e| panic!("{field}: {e}: {entry:?}"))
}

fn start(redis: &RedisServer, name: &str, extra: &[&str]) -> ServeProcess {
    let dir = fresh_dir(name);
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::HEDGE, &dir.join("hedge.wasm"));
    let url = redis.url();
    let mut args = vec![
        "--rules",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--redis",
        &url,
        "--feed",
        FEED,
    ];
    args.extend_from_slice(extra);
    ServeProcess::start(BIN, &args, &[])
}

fn car(txn: &str, vin: &str) -> Value {
    json!({"txn": txn, "source": "dealer-app", "writes": [{"table": "inventory",
        "op": "update", "key": {"vin": vin}, "before": {"vin": vin, "price": 9},
        "after": {"vin": vin, "price": 8}}]})
}

fn ledger(txn: &str) -> Value {
    json!({"txn": txn, "source": "ledger", "writes": [{"table": "gl_entries",
        "op": "insert", "key": {"id": 1}, "after": {"id": 1}}]})
}

#[tokio::test]
async fn the_feed_lists_the_keys_removed_by_key_pattern_and_tag_with_their_origins() {
    let redis = RedisServer::start();
    let service = start(&redis, "feed", &[]);
    let mut conn = redis.connection();
    let client = reqwest::Client::new();
    let _: () = conn.set("vehicle:V1", "cached").unwrap();
    let put = client
        .put(service.at("/v1/cache/offer:77?tags=offers:vehicle:V2"))
        .body("cached")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let _: () = conn.set("report:gl_entries:2026", "cached").unwrap();
    let _: () = conn.set("report:gl_entries:2027", "cached").unwrap();

    // By key (one that exists, one that does not), by tag, by pattern: one
    // batch each, since each commit waits for its invalidations.
    service.commit(None, &car("k-1", "V1")).await;
    service.commit(None, &car("k-2", "V9")).await;
    service.commit(None, &car("t-1", "V2")).await;
    service.commit(None, &ledger("p-1")).await;

    let feed = entries(&redis, 4);
    assert_eq!(feed.len(), 4, "{feed:?}");
    let origins = |e: &HashMap<String, String>| -> Vec<Value> {
        serde_json::from_str(&e["origins"]).unwrap()
    };

    let by_key = &feed[0];
    assert_eq!(list(by_key, "removed"), ["vehicle:V1"], "{by_key:?}");
    assert_eq!(by_key["removed_count"], "1");
    assert_eq!(by_key["cut"], "0");
    assert!(list(by_key, "keys").contains(&"vehicle:V1".to_owned()));
    let origin = &origins(by_key)[0];
    assert_eq!(origin["txn"], "k-1");
    assert_eq!(origin["source"], "dealer-app");
    assert_eq!(origin["rule"], "dealership");
    assert_eq!(origin["version"], "1.0.0");
    assert_eq!(origin["cause"], "rule");
    let at: u128 = by_key["at"].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(at <= now && now - at < 60_000, "at {at}, now {now}");

    // A key named that did not exist is a target, not a removed key.
    let nothing = &feed[1];
    assert!(list(nothing, "keys").contains(&"vehicle:V9".to_owned()));
    assert!(list(nothing, "removed").is_empty(), "{nothing:?}");
    assert_eq!(nothing["removed_count"], "0");

    let by_tag = &feed[2];
    assert!(list(by_tag, "tags").contains(&"offers:vehicle:V2".to_owned()));
    assert_eq!(list(by_tag, "removed"), ["offer:77"], "{by_tag:?}");
    assert_eq!(origins(by_tag)[0]["txn"], "t-1");

    let by_pattern = &feed[3];
    assert!(list(by_pattern, "patterns").contains(&"*gl_entries*".to_owned()));
    let mut swept = list(by_pattern, "removed");
    swept.sort();
    assert_eq!(swept, ["report:gl_entries:2026", "report:gl_entries:2027"]);
    assert_eq!(origins(by_pattern)[0]["rule"], "hedge");
    let exists: bool = conn.exists("report:gl_entries:2026").unwrap();
    assert!(!exists);

    // The counts by rule and by tag, in /v1/stats and /metrics.
    let stats: Value = client
        .get(service.at("/v1/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["removed"]["by_tag"]["offers:vehicle:V2"], 1,
        "{stats}"
    );
    assert_eq!(stats["removed"]["by_rule"]["dealership"], 2, "{stats}");
    assert_eq!(stats["removed"]["by_rule"]["hedge"], 2, "{stats}");
    assert_eq!(stats["pipeline"]["feed_entries"], 4, "{stats}");
    let metrics = client
        .get(service.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"invalidator_removed_keys_by_tag_total{tag="offers:vehicle:V2"} 1"#,
        r#"invalidator_removed_keys_by_rule_total{rule="dealership"} 2"#,
        r#"invalidator_removed_keys_by_rule_total{rule="hedge"} 2"#,
        "invalidator_feed_entries_total 4",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    drop(service);
}

#[tokio::test]
async fn an_entry_lists_at_most_its_bound_of_swept_keys_and_says_it_was_cut() {
    let redis = RedisServer::start();
    let service = start(&redis, "feed-cut", &["--feed-keys", "2"]);
    let mut conn = redis.connection();
    for year in 2020..2025 {
        let _: () = conn.set(format!("report:gl_entries:{year}"), "v").unwrap();
    }
    service.commit(None, &ledger("p-1")).await;
    let feed = entries(&redis, 1);
    let entry = &feed[0];
    assert_eq!(list(entry, "removed").len(), 2, "{entry:?}");
    assert_eq!(entry["removed_count"], "5");
    assert_eq!(entry["cut"], "1");
    let left: Vec<String> = conn.keys("report:*").unwrap();
    assert!(
        left.is_empty(),
        "the bound limits the list, not the sweep: {left:?}"
    );
    drop(service);
}

#[test]
fn a_feed_written_to_the_stream_commits_are_read_from_is_refused() {
    let redis = RedisServer::start();
    let dir = fresh_dir("feed-refused");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            &redis.url(),
        ])
        .args(["--stream", "commits", "--feed", "commits"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "`feed.stream` (flag `--feed`) is `commits`, the stream commits are read from"
        ),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--rules", dir.to_str().unwrap(), "--feed", "f"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no Redis is set"), "{stderr}");
}
