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

fn row(rule: &str, state: &str) -> String {
    format!("tr[data-rule='{rule}'][data-state='{state}'] td.version")
}

#[tokio::test]
async fn the_console_lists_the_rules_and_follows_a_swap_and_a_shadow_without_reloading() {
    let redis = RedisServer::start();
    let dir = fresh_dir("console");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let service = ServeProcess::start(
        BIN,
        &[
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            &redis.url(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
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
    let service = ServeProcess::start(
        BIN,
        &["--rules", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
    );
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
