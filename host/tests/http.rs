//! The HTTP API of `invalidator serve --listen`, through a real HTTP client
//! on a real port, with a real Redis behind it: commits in, keys gone;
//! bad input and authentication; manual and entity invalidation; rules,
//! statistics, metrics and health; graceful shutdown.

use std::path::PathBuf;
use std::time::Duration;

use invalidator_tests::{RedisServer, ServeProcess, deploy, fresh_dir, guests};
use redis::Commands;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

/// A rules folder with the dealership and turnus rules.
fn rules(name: &str) -> PathBuf {
    let dir = fresh_dir(&format!("http-{name}"));
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    dir
}

/// `serve` on a free loopback port, on `redis`, with `envs`.
fn serve(dir: &std::path::Path, redis: &RedisServer, envs: &[(&str, &str)]) -> ServeProcess {
    ServeProcess::start(
        BIN,
        &[
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            &redis.url(),
            "--listen",
            "127.0.0.1:0",
        ],
        envs,
    )
}

/// A price change of car `vin`: the dealership rule invalidates
/// `vehicle:VIN`.
fn car(txn: &str, vin: &str) -> Value {
    json!({"txn": txn, "writes": [{"table": "inventory", "op": "update", "key": {"vin": vin},
        "before": {"vin": vin, "price": 9}, "after": {"vin": vin, "price": 8}}]})
}

/// A payment in turnus `id`: the turnus rule invalidates `turnus_data_ID`.
fn geld(txn: &str, id: i64) -> Value {
    json!({"txn": txn, "writes": [{"table": "geld", "op": "insert", "key": {"id": id},
        "after": {"id": id, "turnus_id": id}}]})
}

/// POSTs `body` as JSON to `path` of `service`.
async fn post(service: &ServeProcess, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(service.at(path))
        .json(body)
        .send()
        .await
        .expect("the request reaches serve")
}

/// `GET /v1/stats`.
async fn stats(service: &ServeProcess) -> Value {
    let response = reqwest::get(service.at("/v1/stats")).await.unwrap();
    response.json().await.expect("stats are JSON")
}

fn exists(conn: &mut redis::Connection, key: &str) -> bool {
    conn.exists(key).unwrap()
}

fn set_keys(conn: &mut redis::Connection, keys: &[&str]) {
    for key in keys {
        let () = conn.set(key, "cached").unwrap();
    }
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors are JSON");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_owned();
    (status, code, message)
}

#[tokio::test]
async fn posted_commits_invalidate_their_keys_in_redis() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    set_keys(
        &mut conn,
        &["vehicle:V1", "turnus_data_3", "vehicle:V2", "unrelated"],
    );
    let service = serve(&rules("post"), &redis, &[]);

    // An array, waiting for the invalidations to be applied.
    let response = post(
        &service,
        "/v1/commits?wait=true",
        &json!([car("t1", "V1"), geld("t2", 3)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["applied"], true, "{body}");
    assert!(!exists(&mut conn, "vehicle:V1"));
    assert!(!exists(&mut conn, "turnus_data_3"));

    // One commit, answered as soon as it is accepted.
    let response = post(&service, "/v1/commits", &car("t3", "V2")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 1, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while exists(&mut conn, "vehicle:V2") {
        assert!(
            std::time::Instant::now() < deadline,
            "vehicle:V2 never invalidated"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(exists(&mut conn, "unrelated"), "only the commits' keys go");
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["commits"], 3, "{summary}");
}

#[tokio::test]
async fn bad_input_is_refused_whole_with_a_message_naming_the_problem() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    set_keys(&mut conn, &["vehicle:V1"]);
    let service = serve(
        &rules("bad"),
        &redis,
        &[("INVALIDATOR_HTTP__BODY_LIMIT_BYTES", "2000")],
    );
    let http = reqwest::Client::new();
    let post_raw = |body: String| {
        http.post(service.at("/v1/commits"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // The second commit lacks `writes`: nothing of the request is applied.
    let bad = json!([car("t1", "V1"), {"txn": "t2"}]).to_string();
    let (status, code, message) = error_code(post_raw(bad).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_commit")
    );
    assert!(
        message.contains("[1]") && message.contains("writes"),
        "{message}"
    );

    let (status, code, message) = error_code(post_raw("{\"txn\": ".into()).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "bad_json")
    );
    assert!(message.contains("line 1"), "{message}");

    let (status, code, message) = error_code(post_raw("42".into()).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_commit")
    );
    assert!(message.contains("a number"), "{message}");

    let wrong_op = json!({"txn": "t", "writes": [{"table": "inventory", "op": "upsert", "key": {"vin": "V1"}}]});
    let (status, _, message) = error_code(post_raw(wrong_op.to_string()).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("upsert"), "{message}");

    let big: Vec<Value> = (0..100).map(|i| car(&format!("t{i}"), "V1")).collect();
    let (status, code, message) = error_code(post_raw(json!(big).to_string()).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert!(message.contains("2000"), "{message}");

    let response = http.get(service.at("/v1/nothing")).send().await.unwrap();
    assert_eq!(error_code(response).await.1, "not_found");
    let response = http.delete(service.at("/v1/commits")).send().await.unwrap();
    assert_eq!(error_code(response).await.1, "method_not_allowed");
    let response = post(&service, "/v1/commits?wiat=true", &car("t", "V1")).await;
    let (status, code, message) = error_code(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert!(message.contains("wiat"), "{message}");

    // Integers beyond 64 signed bits are refused, however they overflow:
    // read as floats they would name other rows.
    for n in [
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
    ] {
        let one = format!(
            r#"{{"txn":"t","writes":[{{"table":"inventory","op":"update","key":{{"vin":"V1"}},"after":{{"vin":"V1","price":{n}}}}}]}}"#
        );
        for body in [one.clone(), format!("[{one}]")] {
            let (status, code, message) = error_code(post_raw(body).await.unwrap()).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::BAD_REQUEST, "invalid_commit"),
                "{n}: {message}"
            );
            assert!(
                message.contains(n) && message.contains("64 signed bits"),
                "{message}"
            );
        }
        let entity = format!(r#"{{"table":"inventory","key":{{"vin":{n}}}}}"#);
        let response = http
            .post(service.at("/v1/invalidate/entity"))
            .header("content-type", "application/json")
            .body(entity)
            .send()
            .await
            .unwrap();
        let (status, _, message) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{n}: {message}");
        assert!(message.contains("64 signed bits"), "{message}");
    }

    assert!(
        exists(&mut conn, "vehicle:V1"),
        "no bad request invalidated anything"
    );
    let stats = stats(&service).await;
    assert_eq!(stats["pipeline"]["commits"], 0, "{stats}");
}

#[tokio::test]
async fn mutating_endpoints_need_the_configured_bearer_token() {
    let redis = RedisServer::start();
    // A numeric token from the environment is still a token.
    let service = serve(
        &rules("auth"),
        &redis,
        &[("INVALIDATOR_HTTP__TOKEN", "20261122")],
    );
    let http = reqwest::Client::new();
    let commit = car("t1", "V1");

    let response = post(&service, "/v1/commits", &commit).await;
    let (status, code, message) = error_code(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(message.contains("Bearer"), "{message}");
    for path in [
        "/v1/invalidate",
        "/v1/invalidate/entity",
        "/v1/rules/reload",
    ] {
        let response = post(&service, path, &json!({})).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let response = http
        .post(service.at("/v1/commits"))
        .bearer_auth("2026112")
        .json(&commit)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await.2, "wrong bearer token");
    let response = http
        .post(service.at("/v1/commits"))
        .bearer_auth("20261122")
        .json(&commit)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // Two `Authorization` headers, even one of them right, are refused.
    let response = http
        .post(service.at("/v1/commits"))
        .header("authorization", "Bearer 20261122")
        .header("authorization", "Bearer wrong")
        .json(&commit)
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    assert!(message.contains("more than one"), "{message}");
    // The figures need no token; the cache's values do.
    let response = http.get(service.at("/v1/stats")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = http.get(service.at("/v1/cache/k")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http
        .get(service.at("/v1/cache/k"))
        .bearer_auth("20261122")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "a miss, read");
}

/// A read token reads the cache and changes nothing.
#[tokio::test]
async fn a_read_token_reads_the_cache_and_nothing_more() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    set_keys(&mut conn, &["k"]);
    let service = serve(
        &rules("read-token"),
        &redis,
        &[
            ("INVALIDATOR_HTTP__TOKEN", "the-writing-token"),
            ("INVALIDATOR_HTTP__READ_TOKEN", "the-reading-token"),
        ],
    );
    let http = reqwest::Client::new();
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong"), StatusCode::UNAUTHORIZED),
        (Some("the-reading-token"), StatusCode::OK),
        (Some("the-writing-token"), StatusCode::OK),
    ] {
        let mut request = http.get(service.at("/v1/cache/k"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{token:?}");
    }
    let response = http
        .put(service.at("/v1/cache/k"))
        .bearer_auth("the-reading-token")
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http
        .post(service.at("/v1/commits"))
        .bearer_auth("the-reading-token")
        .json(&car("t", "V1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// A blank token can never be sent, and a short one is guessed: refused
/// at start, naming the setting.
#[test]
fn unusable_tokens_are_refused_at_start() {
    let dir = rules("weak-token");
    let start = |listen: &str, envs: &[(&str, &str)]| {
        let out = std::process::Command::new(BIN)
            .args([
                "serve",
                "--rules",
                dir.to_str().unwrap(),
                "--listen",
                listen,
            ])
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{listen} {envs:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = start("127.0.0.1:0", &[("INVALIDATOR_HTTP__TOKEN", " ")]);
    assert!(stderr.contains("`http.token` is blank"), "{stderr}");
    let stderr = start("0.0.0.0:0", &[("INVALIDATOR_HTTP__TOKEN", "short-token")]);
    assert!(
        stderr.contains("with a token of 11 bytes") && stderr.contains("at least 16"),
        "{stderr}"
    );
    let stderr = start(
        "0.0.0.0:0",
        &[
            ("INVALIDATOR_HTTP__TOKEN", "a-long-enough-token"),
            ("INVALIDATOR_HTTP__READ_TOKEN", "short"),
        ],
    );
    assert!(stderr.contains("with a token of 5 bytes"), "{stderr}");
}

/// Slow clients are cut off: a head not sent within `http.header_timeout`
/// closes the connection, a body not sent within `http.body_timeout` is
/// answered 408, and past `http.max_connections` a new connection waits
/// until one closes.
#[tokio::test]
async fn slow_clients_are_cut_off_and_connections_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = RedisServer::start();
    let service = serve(
        &rules("slow"),
        &redis,
        &[
            ("INVALIDATOR_HTTP__HEADER_TIMEOUT", "1s"),
            ("INVALIDATOR_HTTP__BODY_TIMEOUT", "1s"),
            ("INVALIDATOR_HTTP__MAX_CONNECTIONS", "4"),
        ],
    );
    let addr = service.at("").trim_start_matches("http://").to_owned();
    // Four connections with half a head each take every slot.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let health = tokio::spawn({
        let url = service.at("/healthz");
        async move { reqwest::get(url).await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!health.is_finished(), "a fifth connection waits for a slot");
    // The stalled ones are closed after the header timeout...
    for mut c in stalled {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("closed within the header timeout");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed, not answered: {read:?}"
        );
    }
    // ...which frees the slots for the waiting request.
    let status = tokio::time::timeout(Duration::from_secs(5), health)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(500));

    // A body that never comes: 408 after the body timeout.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(
        b"POST /v1/commits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"txn\"",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let took = std::time::Instant::now();
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("an answer within the body timeout")
            .unwrap();
        assert!(n > 0, "answered before closing");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took.elapsed() >= Duration::from_millis(900),
        "{:?}",
        took.elapsed()
    );
}

#[test]
fn serve_refuses_a_non_loopback_address_without_a_token() {
    let dir = rules("exposed");
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--rules",
            dir.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on `0.0.0.0:0` without a token"),
        "{stderr}"
    );
}

#[tokio::test]
async fn manual_and_entity_invalidations() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    set_keys(
        &mut conn,
        &["page:1", "page:2", "report:a", "vehicle:V7", "keep"],
    );
    let service = serve(&rules("manual"), &redis, &[]);

    let response = post(
        &service,
        "/v1/invalidate?wait=true",
        &json!({"keys": ["report:a"], "patterns": ["page:*"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    for key in ["page:1", "page:2", "report:a"] {
        assert!(!exists(&mut conn, key), "{key}");
    }
    let response = post(&service, "/v1/invalidate", &json!({"keys": []})).await;
    assert_eq!(error_code(response).await.0, StatusCode::BAD_REQUEST);

    // The rules decide what an entity touches.
    let response = post(
        &service,
        "/v1/invalidate/entity?wait=true",
        &json!({"table": "inventory", "key": {"vin": "V7"}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["targets"]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("vehicle:V7")),
        "{body}"
    );
    assert!(!exists(&mut conn, "vehicle:V7"));
    assert!(exists(&mut conn, "keep"));
    let response = post(
        &service,
        "/v1/invalidate/entity",
        &json!({"table": "inventory"}),
    )
    .await;
    let (status, _, message) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("key"), "{message}");
}

/// The entity endpoint goes through the pipeline like any commit: a
/// shadow rule runs on it and the counters see it, and the answer is still
/// the entity's own targets.
#[tokio::test]
async fn an_entity_invalidation_goes_through_the_pipeline() {
    let redis = RedisServer::start();
    let dir = rules("entity-pipeline");
    deploy(guests::TURNUS_V2, &dir.join("turnus.shadow.wasm"));
    let service = serve(&dir, &redis, &[]);
    let response = post(
        &service,
        "/v1/invalidate/entity?wait=true",
        &json!({"table": "geld", "key": {"id": 3}, "row": {"id": 3, "turnus_id": 3}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["targets"]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("turnus_data_3")),
        "{body}"
    );
    let stats: Value = reqwest::get(service.at("/v1/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pipeline = &stats["pipeline"];
    assert_eq!(pipeline["shadowed"], json!(1), "the shadow saw it: {stats}");
    assert_eq!(pipeline["shadow_differences"], json!(1), "{stats}");
    assert_eq!(pipeline["commits"], json!(1), "{stats}");
}

/// Five dealership commits, applied: what the status tests look at.
async fn five_car_commits(service: &ServeProcess) {
    let commits: Vec<Value> = (0..5).map(|i| car(&format!("t{i}"), "V1")).collect();
    let response = post(service, "/v1/commits?wait=true", &json!(commits)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn get_json(service: &ServeProcess, path: &str) -> Value {
    reqwest::get(service.at(path))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_and_readiness_follow_the_cache_store() {
    let mut redis = RedisServer::start();
    let service = serve(&rules("health"), &redis, &[]);
    let get = |path: &str| reqwest::get(service.at(path));
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);

    // Not ready once the cache is unreachable; still alive.
    redis.kill();
    let response = get("/readyz").await.unwrap();
    let (status, code, message) = error_code(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    );
    assert!(message.contains("cache store"), "{message}");
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_rules_are_listed_with_their_hash_and_figures() {
    let redis = RedisServer::start();
    let dir = rules("rules-list");
    let service = serve(&dir, &redis, &[]);
    five_car_commits(&service).await;
    let rules = get_json(&service, "/v1/rules").await;
    let list = rules["rules"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dealership", "turnus"]);
    let dealership = &list[0];
    let bytes = std::fs::read(dir.join("dealership.wasm")).unwrap();
    assert_eq!(dealership["hash"], invalidator::rules::content_hash(&bytes));
    assert!(dealership["calls"].as_u64().unwrap() >= 1, "{dealership}");
    assert_eq!(dealership["errors"], 0);
    assert!(
        dealership["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{dealership}"
    );
    // Rounded for people: microseconds at most, never `0.35300000000000004`.
    for quantile in ["p50", "p99"] {
        let text = dealership["latency_ms"][quantile].to_string();
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "{quantile} is {text}");
    }
    assert_eq!(list[1]["calls"], 0, "turnus saw no geld write");
}

#[tokio::test]
async fn stats_count_commits_and_the_cache_reads_made_through_the_api() {
    let redis = RedisServer::start();
    let service = serve(&rules("stats"), &redis, &[]);
    five_car_commits(&service).await;
    let http = reqwest::Client::new();
    let response = http
        .put(service.at("/v1/cache/page:1?ttl_secs=60&tags=pages"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let get = |path: &str| http.get(service.at(path)).send();
    assert_eq!(
        get("/v1/cache/page:1").await.unwrap().text().await.unwrap(),
        "hello"
    );
    assert_eq!(
        get("/v1/cache/page:2").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let stats = get_json(&service, "/v1/stats").await;
    assert_eq!(stats["pipeline"]["commits"], 5, "{stats}");
    assert_eq!(stats["pipeline"]["pending"], 0, "{stats}");
    assert!(stats["cache"]["hits"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["cache"]["misses"].as_u64().unwrap() >= 1, "{stats}");
}

#[tokio::test]
async fn metrics_expose_the_pipelines_and_each_rules_figures() {
    let redis = RedisServer::start();
    let service = serve(&rules("metrics"), &redis, &[]);
    five_car_commits(&service).await;
    let metrics = reqwest::get(service.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for wanted in [
        "\ninvalidator_commits_total 5\n",
        "# TYPE invalidator_rule_calls counter",
        "\ninvalidator_failed_rule_calls_total 0\n",
        "\ninvalidator_queued 0\n",
        "# TYPE invalidator_queued gauge",
        "invalidator_rule_failures_total{rule=\"dealership\",version=\"1.0.0\",kind=\"time_limit\"} 0",
        // Recent latency by quantile.
        "invalidator_rule_call_seconds{rule=\"dealership\",version=\"1.0.0\",quantile=\"0.99\"}",
    ] {
        assert!(
            metrics.contains(wanted),
            "`{wanted}` missing from:\n{metrics}"
        );
    }
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
}

#[tokio::test]
async fn a_reload_request_puts_a_deployed_rule_in_service() {
    let redis = RedisServer::start();
    let dir = rules("reload");
    let service = serve(&dir, &redis, &[]);
    deploy(guests::POS, &dir.join("pos.wasm"));
    let response = reqwest::Client::new()
        .post(service.at("/v1/rules/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rules = get_json(&service, "/v1/rules").await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 3, "{rules}");
}

#[tokio::test]
async fn not_ready_without_rules() {
    let redis = RedisServer::start();
    let dir = fresh_dir("http-empty");
    let service = serve(&dir, &redis, &[]);
    let response = reqwest::get(service.at("/readyz")).await.unwrap();
    let (status, _, message) = error_code(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("no rule in service"), "{message}");
}

#[tokio::test]
async fn sigterm_finishes_the_accepted_work_and_exits_zero() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let keys: Vec<String> = (0..2000).map(|i| format!("turnus_data_{i}")).collect();
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.set(key, "cached").ignore();
    }
    let () = pipe.query(&mut conn).unwrap();
    let service = serve(&rules("sigterm"), &redis, &[]);
    // Redis holds every write for 1.5 s: the work is accepted and cannot
    // be applied before the signal.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query(&mut conn)
        .unwrap();
    for chunk in 0..20 {
        let commits: Vec<Value> = (0..100)
            .map(|i| geld(&format!("t{chunk}-{i}"), chunk * 100 + i))
            .collect();
        let response = post(&service, "/v1/commits", &json!(commits)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let cached = keys.iter().filter(|k| exists(&mut conn, k)).count();
    assert_eq!(cached, keys.len(), "nothing could be applied yet");
    let (status, summary) = service.stop(Duration::from_secs(60));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["commits"], 2000, "{summary}");
    let left: Vec<&String> = keys.iter().filter(|k| exists(&mut conn, k)).collect();
    assert!(
        left.is_empty(),
        "{} keys still cached, e.g. {:?}",
        left.len(),
        left.first()
    );
}

/// A permanent Redis error answers `?wait=true` with 502 `not_applied`
/// naming the target and the error, is counted in `/v1/stats` and
/// `/metrics`, and the work behind it goes on. Before, the refused key
/// was retried for ever and every later request waited behind it.
#[tokio::test]
async fn a_permanent_redis_error_is_reported_and_the_rest_goes_on() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    set_keys(&mut conn, &["vehicle:V1", "vehicle:V2"]);
    let url = redis.limited_user("limited", &["vehicle:V1", "inv:*"]);
    let dir = rules("refused");
    let service = ServeProcess::start(
        BIN,
        &[
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            &url,
            "--listen",
            "127.0.0.1:0",
        ],
        &[("INVALIDATOR_HTTP__WAIT_TIMEOUT", "10s")],
    );

    let response = post(&service, "/v1/commits?wait=true", &car("t1", "V2")).await;
    let (status, code, message) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{message}");
    assert_eq!(code, "not_applied");
    assert!(message.contains("key `vehicle:V2`"), "{message}");
    assert!(message.contains("NOPERM"), "{message}");
    assert!(exists(&mut conn, "vehicle:V2"));

    let response = post(&service, "/v1/commits?wait=true", &car("t2", "V1")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the next commit is applied"
    );
    assert!(!exists(&mut conn, "vehicle:V1"));

    let http = reqwest::Client::new();
    let stats = stats(&service).await;
    assert_eq!(stats["pipeline"]["unapplied"], 1, "{stats}");
    assert_eq!(stats["pipeline"]["failed_commits"], 1, "{stats}");
    assert_eq!(stats["pipeline"]["retries"], 0, "not retried: {stats}");
    let metrics = http
        .get(service.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\ninvalidator_unapplied_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ninvalidator_failed_commits_total 1\n"),
        "{metrics}"
    );
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

/// One arbitrary request: `(method, path and query, headers, body)`.
type Request = (reqwest::Method, String, Vec<(String, String)>, Vec<u8>);

/// `s`, percent-encoded whole, so that any text can be a path segment or
/// a query value.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn arbitrary_request() -> impl proptest::strategy::Strategy<Value = Request> {
    use proptest::prelude::*;
    let text = || {
        prop_oneof![
            "[a-z:_*?\\[\\]{}é😀-]{0,10}",
            any::<String>(),
            Just(String::new())
        ]
    };
    let number = prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        prop::sample::select(vec![
            "1e300", "-1", "NaN", "inf", "1e15", "1e-9", "0", "60", "x", "",
        ])
        .prop_map(String::from),
    ];
    let query = prop_oneof![
        Just(String::new()),
        Just("?wait=true".to_owned()),
        Just("?wait=maybe".to_owned()),
        (number, text()).prop_map(|(t, tags)| format!("?ttl_secs={t}&tags={}", percent(&tags))),
        (text(), text()).prop_map(|(k, v)| format!("?{}={}", percent(&k), percent(&v))),
    ];
    let target = prop_oneof![
        Just((reqwest::Method::POST, "/v1/commits".to_owned())),
        Just((reqwest::Method::POST, "/v1/invalidate".to_owned())),
        Just((reqwest::Method::POST, "/v1/invalidate/entity".to_owned())),
        Just((reqwest::Method::POST, "/v1/try".to_owned())),
        text().prop_map(|k| (reqwest::Method::PUT, format!("/v1/cache/{}", percent(&k)))),
        text().prop_map(|k| (reqwest::Method::GET, format!("/v1/cache/{}", percent(&k)))),
    ];
    let header = (
        prop::sample::select(vec![
            "content-type",
            "authorization",
            "accept",
            "content-encoding",
            "x-anything",
            "origin",
            "sec-fetch-site",
        ]),
        "[ -~]{0,40}",
    )
        .prop_map(|(n, v)| (n.to_owned(), v));
    let json = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|n| json!(n)),
        text().prop_map(|s| json!(s)),
        (text(), text()).prop_map(|(a, b)| json!({"keys": [a], "tags": [b]})),
        (text(), text()).prop_map(|(t, k)| json!({"table": t, "key": {"id": k}})),
        (text(), any::<i64>()).prop_map(|(t, id)| json!([{"txn": t, "writes": [
            {"table": "geld", "op": "insert", "key": {"id": id}, "after": {"turnus_id": id}}]}])),
        (text(), text()).prop_map(|(t, op)| json!({"txn": t, "writes": [{"table": t, "op": op}]})),
        Just(json!({"patterns": ["never:*"], "keys": [""]})),
    ];
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json.prop_map(|v| v.to_string().into_bytes()),
        text().prop_map(String::into_bytes),
    ];
    (target, query, prop::collection::vec(header, 0..4), body).prop_map(
        |((method, path), query, headers, body)| (method, format!("{path}{query}"), headers, body),
    )
}

/// Arbitrary bodies, queries and headers at every endpoint that takes
/// input answer below 500, and every 4xx carries the JSON error shape;
/// the service is still healthy afterwards and exits cleanly.
#[test]
fn arbitrary_requests_are_answered_below_500_with_json_errors() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let redis = RedisServer::start();
    let service = serve(&rules("fuzz"), &redis, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(400);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&arbitrary_request(), |(method, path, headers, body)| {
        rt.block_on(async {
            let mut request = client.request(method.clone(), service.at(&path)).body(body);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| TestCaseError::fail(format!("{method} {path}: {e}")))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_server_error() {
                return Err(TestCaseError::fail(format!(
                    "{method} {path} {headers:?}: {status} {text}"
                )));
            }
            if status.is_client_error() {
                let body: Value = serde_json::from_str(&text).map_err(|e| {
                    TestCaseError::fail(format!("{method} {path}: {status} not JSON ({e}): {text}"))
                })?;
                let shaped =
                    body["error"]["code"].is_string() && body["error"]["message"].is_string();
                if !shaped {
                    return Err(TestCaseError::fail(format!(
                        "{method} {path}: {status} without the error shape: {text}"
                    )));
                }
            }
            Ok(())
        })
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let healthy = rt
        .block_on(client.get(service.at("/healthz")).send())
        .unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}
