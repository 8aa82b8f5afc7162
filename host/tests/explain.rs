//! Explain, end to end: a real `serve` on a real Redis with the dealership
//! and hedge rules; keys removed by a key, a pattern and a tag; then
//! `GET /v1/explain` and `invalidator explain` name the commit, the rule
//! and the target that removed each.

use std::process::Command;
use std::time::Duration;

use invalidator_tests::{RedisServer, ServeProcess, deploy, fresh_dir, guests};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

async fn explain(service: &ServeProcess, token: &str, key: &str) -> Value {
    let response = reqwest::Client::new()
        .get(service.at("/v1/explain"))
        .query(&[("key", key)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The fields of each invalidation that say what removed the key.
fn named(answer: &Value) -> Vec<(String, String, String, String)> {
    answer["invalidations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            (
                text(&i["txn"]),
                text(&i["rule"]),
                text(&i["target"]["kind"]),
                text(&i["target"]["text"]),
            )
        })
        .collect()
}

fn tuple(txn: &str, rule: &str, kind: &str, text: &str) -> (String, String, String, String) {
    (txn.into(), rule.into(), kind.into(), text.into())
}

#[tokio::test]
async fn explain_names_the_commit_rule_and_target_that_removed_a_key_by_key_pattern_and_tag() {
    let redis = RedisServer::start();
    let dir = fresh_dir("explain");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::HEDGE, &dir.join("hedge.wasm"));
    // Reads every table, and fails on `fail`: its fallback is applied.
    deploy(guests::HOSTILE, &dir.join("hostile.wasm"));
    let token = "explain-token";
    let url = redis.url();
    let service = ServeProcess::start(
        BIN,
        &[
            "--rules",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--redis",
            &url,
            "--explain",
        ],
        &[("INVALIDATOR_HTTP__TOKEN", token)],
    );
    let client = reqwest::Client::new();
    // A cached offer, under the tag the dealership rule names for its car.
    let put = client
        .put(service.at("/v1/cache/offer:77?tags=offers:vehicle:V2"))
        .bearer_auth(token)
        .body("cached")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);

    // By key: the car's own key.
    let car = |txn: &str, vin: &str| {
        json!({"txn": txn, "source": "dealer-app", "writes": [{"table": "inventory",
            "op": "update", "key": {"vin": vin}, "before": {"vin": vin, "price": 9},
            "after": {"vin": vin, "price": 8}}]})
    };
    service.commit(Some(token), &car("k-1", "V1")).await;
    // By tag: the offer goes with its car's tag.
    service.commit(Some(token), &car("t-1", "V2")).await;
    // By pattern: a ledger entry sweeps every view of the ledger.
    service
        .commit(
            Some(token),
            &json!({"txn": "p-1", "source": "ledger", "writes": [{"table": "gl_entries",
            "op": "insert", "key": {"id": 1}, "after": {"id": 1}}]}),
        )
        .await;

    let by_key = explain(&service, token, "vehicle:V1").await;
    assert_eq!(by_key["key"], "vehicle:V1");
    assert_eq!(
        named(&by_key),
        [tuple("k-1", "dealership", "key", "vehicle:V1")]
    );
    let first = &by_key["invalidations"][0];
    assert_eq!(first["source"], "dealer-app");
    assert_eq!(first["version"], "1.0.0");
    assert_eq!(first["cause"], "rule");
    assert!(
        first["applied_at"].as_str().unwrap().starts_with("20"),
        "{by_key}"
    );

    assert_eq!(
        named(&explain(&service, token, "offer:77").await),
        [tuple("t-1", "dealership", "tag", "offers:vehicle:V2")]
    );
    assert_eq!(
        named(&explain(&service, token, "report:gl_entries:2026").await),
        [tuple("p-1", "hedge", "pattern", "*gl_entries*")]
    );
    // Newest first; the offer is also matched by the dealership's key of
    // its own, had one been named: only what matched is listed.
    service.commit(Some(token), &car("k-2", "V1")).await;
    assert_eq!(
        named(&explain(&service, token, "vehicle:V1").await),
        [
            tuple("k-2", "dealership", "key", "vehicle:V1"),
            tuple("k-1", "dealership", "key", "vehicle:V1")
        ]
    );
    // By hand, with no rule.
    let manual = client
        .post(service.at("/v1/invalidate?wait=true"))
        .bearer_auth(token)
        .json(&json!({"keys": ["session:9"]}))
        .send()
        .await
        .unwrap();
    assert!(manual.status().is_success());
    let by_hand = explain(&service, token, "session:9").await;
    assert_eq!(by_hand["invalidations"][0]["cause"], "manual", "{by_hand}");
    assert!(by_hand["invalidations"][0]["rule"].is_null());
    // A rule that failed named its fallback, and explain says so.
    service
        .commit(
            Some(token),
            &json!({"txn": "f-1", "writes": [{"table": "fail", "op": "insert",
            "key": {"id": 1}, "after": {"id": 1}}]}),
        )
        .await;
    let failed = explain(&service, token, "hostile:fallback").await;
    assert_eq!(
        named(&failed),
        [tuple("f-1", "hostile", "key", "hostile:fallback")]
    );
    assert_eq!(failed["invalidations"][0]["failed"], true, "{failed}");
    assert_eq!(by_key["invalidations"][0]["failed"], false, "{by_key}");
    // A key nothing removed.
    assert!(named(&explain(&service, token, "customer:C1").await).is_empty());

    // Without the token: refused, as cache reads are.
    let anonymous = client
        .get(service.at("/v1/explain?key=vehicle:V1"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // Without a key: a clear error.
    let keyless = client
        .get(service.at("/v1/explain"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(keyless.status(), 400);
    assert!(keyless.text().await.unwrap().contains("`key` is missing"));

    // The command, for a terminal.
    let server = service.at("");
    let out = Command::new(BIN)
        .args(["explain", "--server", &server, "offer:77"])
        .env("INVALIDATOR_TOKEN", token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("tag `offers:vehicle:V2`  rule dealership 1.0.0, txn t-1 from dealer-app"),
        "{stdout}"
    );
    // Nothing removed it: exit status 1, and it says so.
    let out = Command::new(BIN)
        .args([
            "explain",
            "--server",
            &server,
            "--token",
            token,
            "customer:C1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no recent invalidation removed"));
    // A wrong token: the server's refusal, named.
    let out = Command::new(BIN)
        .args([
            "explain", "--server", &server, "--token", "wrong", "offer:77",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[tokio::test]
async fn without_the_flag_explain_is_off_and_says_how_to_turn_it_on() {
    let dir = fresh_dir("explain-off");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    let service = ServeProcess::start(
        BIN,
        &["--rules", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
    );
    let response = reqwest::get(service.at("/v1/explain?key=vehicle:V1"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body = response.text().await.unwrap();
    assert!(body.contains("--explain"), "{body}");
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}
