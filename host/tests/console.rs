//! The operator's console at `/`, in a real browser: headless Chromium
//! from Debian's packages, driven over WebDriver by the system's
//! `chromedriver`, against a real `serve` with Redis and a rules folder.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use invalidator_tests::{Browser, RedisServer, ServeProcess, deploy, fresh_dir, guests};

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

/// Where screenshots go: `target/screenshots/`.
fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/screenshots")
        .join(format!("{name}.png"))
}

/// `serve` on the rules folder `dir`, listening on a free port, on
/// `redis` if given (else the in-process store), with `envs`.
fn serve(
    dir: &std::path::Path,
    redis: Option<&RedisServer>,
    envs: &[(&str, &str)],
) -> ServeProcess {
    let url = redis.map(RedisServer::url);
    // Explain on, as an operator who wants the page's Explain would run it.
    let mut args = vec![
        "--rules",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--explain",
    ];
    if let Some(url) = &url {
        args.extend(["--redis", url.as_str()]);
    }
    ServeProcess::start(BIN, &args, envs)
}

fn row(rule: &str, state: &str) -> String {
    format!("tr[data-rule='{rule}'][data-state='{state}'] td.version")
}

#[tokio::test]
async fn the_console_lists_the_rules_and_follows_a_swap_and_a_shadow_without_reloading() {
    let redis = RedisServer::start();
    let dir = fresh_dir("console");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let service = serve(&dir, Some(&redis), &[]);
    let browser = Browser::start("console").await;
    browser.client.goto(&service.at("/")).await.unwrap();
    assert_eq!(browser.client.title().await.unwrap(), "Invalidator");

    // The loaded rules, with their versions.
    let within = Duration::from_secs(10);
    browser
        .wait_for(&row("dealership", "serving"), Some("1.0.0"), within)
        .await;
    browser
        .wait_for(&row("turnus", "serving"), Some("1.0.0"), within)
        .await;
    // Written in Rust, as its producers section says.
    browser
        .wait_for(
            "tr[data-rule='turnus'][data-state='serving'] td.language",
            Some("rust"),
            within,
        )
        .await;

    // A new version swapped on disk shows without reloading, within 2 s.
    deploy(guests::TURNUS_V2, &dir.join("turnus.wasm"));
    let swapped = Instant::now();
    browser
        .wait_for(&row("turnus", "serving"), Some("2.0.0"), within)
        .await;
    let took = swapped.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the swap showed after {took:?}"
    );

    // A shadow shows as a shadow, beside the version that serves.
    deploy(guests::TURNUS, &dir.join("turnus.shadow.wasm"));
    browser
        .wait_for(&row("turnus", "shadow"), Some("1.0.0"), within)
        .await;
    browser
        .wait_for(&row("turnus", "serving"), Some("2.0.0"), within)
        .await;
    // Some traffic, for the figures, the feed and the charts to show (the
    // screenshot in the README is this page).
    let client = reqwest::Client::new();
    for i in 0..40 {
        let commit = serde_json::json!({"txn": format!("shot-{i}"), "source": "dealer-app",
            "writes": [{"table": "inventory", "op": "update", "key": {"vin": format!("V{i}")},
            "before": {"vin": format!("V{i}"), "price": 9}, "after": {"vin": format!("V{i}"), "price": 8}}]});
        let response = client
            .post(service.at("/v1/commits?wait=true"))
            .json(&commit)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    // The charts of the last 15 minutes, from the history ring.
    browser
        .wait_for(
            "#chart-applied polyline[data-series='applied']",
            None,
            within,
        )
        .await;
    let history: serde_json::Value = reqwest::get(service.at("/v1/history"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["every_secs"], 5, "{history}");
    let first = &history["samples"][0];
    assert!(first["at_ms"].as_u64().unwrap() > 0, "{history}");
    let names: Vec<&str> = first["p99_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dealership", "turnus"], "{history}");
    // A second sample, five seconds on, draws a line.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let history: serde_json::Value = reqwest::get(service.at("/v1/history"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if history["samples"].as_array().unwrap().len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no second sample: {history}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(5500)).await;
    browser.screenshot(&screenshot("console")).await;
    browser.close().await;
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

/// The page is served with a policy that lets no inline or foreign script
/// run, and cannot be framed by another site.
#[tokio::test]
async fn the_page_forbids_inline_script_and_framing() {
    let dir = fresh_dir("console-headers");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    let service = serve(&dir, None, &[]);
    for path in ["/", "/console.js", "/console.css"] {
        let response = reqwest::get(service.at(path)).await.unwrap();
        assert!(response.status().is_success(), "{path}");
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }
    let page = reqwest::get(service.at("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>"), "no inline script");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing fetched from elsewhere"
    );
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[tokio::test]
async fn try_a_commit_shows_what_each_rule_would_invalidate() {
    let dir = fresh_dir("console-try");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    deploy(guests::TURNUS_V2, &dir.join("turnus.shadow.wasm"));
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let () = redis::cmd("SET")
        .arg("vehicle:V7")
        .arg("cached")
        .query(&mut conn)
        .unwrap();
    let service = serve(&dir, Some(&redis), &[]);
    let browser = Browser::start("console-try").await;
    browser.client.goto(&service.at("/")).await.unwrap();
    let commit = r#"{"txn": "try-7", "writes": [{"table": "inventory", "op": "update", "key": {"vin": "V7"}, "before": {"vin": "V7", "price": 9}, "after": {"vin": "V7", "price": 8}}]}"#;
    browser.type_into("#try-commit", commit).await;
    browser.click("#try-run").await;
    let within = Duration::from_secs(10);
    browser
        .wait_for("#try-status", Some("commit try-7"), within)
        .await;
    let keys = browser
        .text("#try-results tr[data-rule='dealership'][data-state='serving'] td.keys")
        .await;
    assert!(keys.split(' ').any(|k| k == "vehicle:V7"), "{keys}");
    let turnus = browser
        .text("#try-results tr[data-rule='turnus'][data-state='shadow'] td.failure")
        .await;
    assert_eq!(turnus, "reads none of these tables");
    // Nothing was applied.
    let value: Option<String> = redis::cmd("GET")
        .arg("vehicle:V7")
        .query(&mut conn)
        .unwrap();
    assert_eq!(value.as_deref(), Some("cached"));

    // A commit that is not one is refused, naming the problem.
    browser.type_into("#try-commit", r#"{"txn": "x"}"#).await;
    browser.click("#try-run").await;
    browser.wait_for("#try-status.bad", None, within).await;
    let status = browser.text("#try-status").await;
    assert!(status.contains("writes"), "{status}");
    browser.close().await;
    service.kill();
}

#[tokio::test]
async fn an_invalidation_from_the_page_needs_the_token_and_other_sites_are_refused() {
    let dir = fresh_dir("console-act");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let () = redis::cmd("SET")
        .arg("report:a")
        .arg("cached")
        .query(&mut conn)
        .unwrap();
    let token = "console-token-of-24bytes";
    let service = serve(&dir, Some(&redis), &[("INVALIDATOR_HTTP__TOKEN", token)]);
    let browser = Browser::start("console-act").await;
    browser.client.goto(&service.at("/")).await.unwrap();
    let within = Duration::from_secs(10);
    browser.type_into("#inv-text", "report:a").await;
    browser.click("#inv-run").await;
    browser
        .wait_for("#inv-result[data-outcome='refused']", None, within)
        .await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("report:a")
        .query(&mut conn)
        .unwrap();
    assert!(exists, "refused, so still there");

    browser.type_into("#token", token).await;
    browser.click("#inv-run").await;
    browser
        .wait_for("#inv-result[data-outcome='applied']", None, within)
        .await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("report:a")
        .query(&mut conn)
        .unwrap();
    assert!(!exists, "invalidated from the page");
    browser.close().await;
    assert!(
        service.log().contains("manual invalidation"),
        "the action is logged: {}",
        service.log()
    );

    // A page on another site cannot make a browser do the same, token or
    // not: the browser says where the request comes from.
    let client = reqwest::Client::new();
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = client
            .post(service.at("/v1/invalidate"))
            .header(name, value)
            .bearer_auth(token)
            .json(&serde_json::json!({"keys": ["x"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN, "{name}");
        let body = response.text().await.unwrap();
        assert!(body.contains("another site"), "{body}");
    }
    service.kill();
}

#[tokio::test]
async fn a_posted_commit_appears_in_the_live_feed_and_the_filter_hides_others() {
    let dir = fresh_dir("console-feed");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let service = serve(&dir, None, &[]);
    let browser = Browser::start("console-feed").await;
    browser.client.goto(&service.at("/")).await.unwrap();
    let within = Duration::from_secs(10);
    browser
        .wait_for("#feed-status", Some("following"), within)
        .await;
    let client = reqwest::Client::new();
    let commits = serde_json::json!([
        {"txn": "feed-car", "source": "dealer-app", "writes": [{"table": "inventory", "op": "update",
            "key": {"vin": "V3"}, "before": {"vin": "V3", "price": 9}, "after": {"vin": "V3", "price": 8}}]},
        {"txn": "feed-geld", "writes": [{"table": "geld", "op": "insert", "key": {"id": 4},
            "after": {"id": 4, "turnus_id": 4}}]}
    ]);
    let response = client
        .post(service.at("/v1/commits?wait=true"))
        .json(&commits)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let car = "#feed tr[data-txn='feed-car'][data-rule='dealership'] td.targets";
    browser.wait_for(car, None, within).await;
    let targets = browser.text(car).await;
    assert!(targets.contains("key vehicle:V3"), "{targets}");
    let geld = "#feed tr[data-txn='feed-geld'][data-rule='turnus'] td.targets";
    browser.wait_for(geld, None, within).await;
    assert!(browser.text(geld).await.contains("turnus_data_4"));

    // Filtering by a rule leaves only its rows shown.
    browser.type_into("#feed-filter", "turnus").await;
    assert!(!browser.is_shown("#feed tr[data-txn='feed-car']").await);
    assert!(browser.is_shown("#feed tr[data-txn='feed-geld']").await);
    browser.close().await;
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

/// The feed carries the application's keys: with a token configured, it
/// asks for it (or the read token), like cache reads.
#[tokio::test]
async fn the_feed_needs_the_token_when_one_is_configured() {
    let dir = fresh_dir("console-feed-token");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    let token = "feed-token-of-24-bytes!!";
    let service = serve(&dir, None, &[("INVALIDATOR_HTTP__TOKEN", token)]);
    let client = reqwest::Client::new();
    let refused = client.get(service.at("/v1/feed")).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let allowed = client
        .get(service.at("/v1/feed"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), reqwest::StatusCode::OK);
    assert_eq!(allowed.headers()["content-type"], "text/event-stream");
    // A watcher still connected does not hold up stopping.
    let started = std::time::Instant::now();
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(allowed);
}

#[tokio::test]
async fn a_rule_is_rolled_back_and_a_shadow_dropped_from_the_page() {
    let dir = fresh_dir("console-actions");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let service = serve(&dir, None, &[]);
    let browser = Browser::start("console-actions").await;
    browser.client.goto(&service.at("/")).await.unwrap();
    let within = Duration::from_secs(10);
    browser
        .wait_for(&row("turnus", "serving"), Some("1.0.0"), within)
        .await;
    deploy(guests::TURNUS_V2, &dir.join("turnus.wasm"));
    deploy(guests::TURNUS, &dir.join("turnus.shadow.wasm"));
    browser
        .wait_for(&row("turnus", "serving"), Some("2.0.0"), within)
        .await;
    browser
        .wait_for(&row("turnus", "shadow"), Some("1.0.0"), within)
        .await;

    // A rule with no earlier version cannot go back, and the page says so.
    browser
        .click("button.act[data-action='rollback'][data-rule='dealership']")
        .await;
    browser
        .wait_for("#act-result[data-outcome='refused']", None, within)
        .await;
    assert!(
        browser
            .text("#act-result")
            .await
            .contains("no earlier version"),
        "{}",
        browser.text("#act-result").await
    );

    // Version 2 goes back to 1, and is listed as rolled back.
    browser
        .click("button.act[data-action='rollback'][data-rule='turnus']")
        .await;
    browser
        .wait_for(&row("turnus", "serving"), Some("1.0.0"), within)
        .await;
    browser
        .wait_for("#rolled-back li[data-rule='turnus']", None, within)
        .await;
    let listed = browser.text("#rolled-back li[data-rule='turnus']").await;
    assert!(
        listed.contains("turnus 2.0.0 rolled back to 1.0.0"),
        "{listed}"
    );

    // The shadow stops running.
    browser
        .click("button.act[data-action='drop-shadow'][data-rule='turnus']")
        .await;
    browser
        .wait_gone("tr[data-rule='turnus'][data-state='shadow']", within)
        .await;
    browser.close().await;
    let log = service.log();
    assert!(
        log.contains("rule rolled back by hand") && log.contains("shadow dropped by hand"),
        "{log}"
    );
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

/// Asks the page to explain `key`, and waits for the row naming `txn`,
/// `rule` and the target.
async fn explained(browser: &Browser, key: &str, txn: &str, rule: &str, kind: &str, target: &str) {
    browser.type_into("#explain-key", key).await;
    browser.click("#explain-run").await;
    let row = format!(
        "#explain-results tr[data-txn='{txn}'][data-rule='{rule}'][data-kind='{kind}'] td.target"
    );
    browser
        .wait_for(
            &row,
            Some(&format!("{kind} {target}")),
            Duration::from_secs(10),
        )
        .await;
}

#[tokio::test]
async fn explain_on_the_page_names_the_commit_rule_and_target_by_key_pattern_and_tag() {
    let redis = RedisServer::start();
    let dir = fresh_dir("console-explain");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::HEDGE, &dir.join("hedge.wasm"));
    let service = serve(&dir, Some(&redis), &[]);
    // A cached offer under its car's tag.
    let put = reqwest::Client::new()
        .put(service.at("/v1/cache/offer:77?tags=offers:vehicle:V2"))
        .body("cached")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let car = |txn: &str, vin: &str| {
        serde_json::json!({"txn": txn, "source": "dealer-app", "writes": [{"table": "inventory",
            "op": "update", "key": {"vin": vin}, "before": {"vin": vin, "price": 9},
            "after": {"vin": vin, "price": 8}}]})
    };
    service.commit(None, &car("k-1", "V1")).await;
    service.commit(None, &car("t-1", "V2")).await;
    service
        .commit(
            None,
            &serde_json::json!({"txn": "p-1", "source": "ledger", "writes": [{"table": "gl_entries",
            "op": "insert", "key": {"id": 1}, "after": {"id": 1}}]}),
        )
        .await;

    let browser = Browser::start("console-explain").await;
    browser.client.goto(&service.at("/")).await.unwrap();
    explained(
        &browser,
        "vehicle:V1",
        "k-1",
        "dealership",
        "key",
        "vehicle:V1",
    )
    .await;
    explained(
        &browser,
        "offer:77",
        "t-1",
        "dealership",
        "tag",
        "offers:vehicle:V2",
    )
    .await;
    explained(
        &browser,
        "report:gl_entries:2026",
        "p-1",
        "hedge",
        "pattern",
        "*gl_entries*",
    )
    .await;
    // Only what removed the key: the pattern's row is the only one.
    assert_eq!(
        browser.text("#explain-status").await,
        "1 invalidation(s) removed report:gl_entries:2026, newest first"
    );
    browser.screenshot(&screenshot("console-explain")).await;
    // A key nothing removed says so.
    browser.type_into("#explain-key", "customer:C1").await;
    browser.click("#explain-run").await;
    browser
        .wait_gone("#explain-results tbody tr", Duration::from_secs(10))
        .await;
    assert!(
        browser
            .text("#explain-status")
            .await
            .contains("no recent invalidation removed customer:C1")
    );

    // The Redis node, and the HTTP figures, are on the page too.
    browser
        .wait_for(
            "#nodes tr[data-role='primary'][data-state='up']",
            None,
            Duration::from_secs(10),
        )
        .await;
    browser
        .wait_for(
            "dl[data-source='http'] dd[data-figure='requests']",
            None,
            Duration::from_secs(10),
        )
        .await;
    browser.close().await;
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}
