//! The monitoring kit in `deploy/`: the Prometheus alerts, checked and
//! unit-tested by `promtool`, and the Grafana dashboard, whose queries
//! `promtool` parses. Every metric name the three files mention is one a
//! real `serve` exports, with Redis, a Postgres source and a stream source
//! (so that every family shows) and the dealership rule serving.
//!
//! `promtool` is found on `PATH`; without it the tests fail (Debian's
//! `prometheus` package has it).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use invalidator_tests::{PostgresServer, RedisServer, ServeProcess, deploy, fresh_dir, guests};
use redis::Commands;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

/// The files, under `deploy/`.
const DASHBOARD: &str = "grafana/invalidator.json";
const ALERTS: &str = "prometheus/alerts.yml";
const ALERT_TESTS: &str = "prometheus/alerts_test.yml";

/// `deploy/FILE` of the repository.
fn deployed(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    let path = deployed(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()))
}

/// `promtool`, from `PATH`. Missing, the test fails: it is never skipped.
fn promtool() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "`promtool` is not on PATH: it checks and tests deploy/prometheus/alerts.yml. \
                 Install Debian's `prometheus` package (`apt-get install prometheus`), which \
                 provides it"
            )
        })
}

/// Runs `promtool ARGS` and fails with its output unless it succeeds.
fn run_promtool(args: &[&Path]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`promtool {}` failed ({}):\n{text}",
        args.iter()
            .map(|a| a.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        out.status
    );
    text
}

/// The metric names `text` mentions: `invalidator_[a-z0-9_]+`, as words.
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "invalidator_";
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(PREFIX) {
        if text[..at].chars().next_back().is_some_and(word) {
            continue;
        }
        let rest = &text[at + PREFIX.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            names.insert(format!("{PREFIX}{}", &rest[..end]));
        }
    }
    names
}

/// The alert names of the rule file: its `- alert: NAME` lines.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

/// Every `expr` of the dashboard (its panels' queries and its
/// annotations'), wherever it is nested.
fn dashboard_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

#[test]
fn promtool_accepts_the_alert_rules_and_every_alert_says_what_to_do() {
    let out = run_promtool(&[Path::new("check"), Path::new("rules"), &deployed(ALERTS)]);
    assert!(out.contains("SUCCESS"), "{out}");

    let rules = read(ALERTS);
    let alerts = alert_names(&rules);
    for wanted in [
        "InvalidatorDown",
        "InvalidatorPostgresDisconnected",
        "InvalidatorPostgresSlotRetainingWal",
        "InvalidatorPostgresLagging",
        "InvalidatorCommitsQueued",
        "InvalidatorUnappliedInvalidations",
        "InvalidatorRuleFailing",
        "InvalidatorRuleRolledBack",
        "InvalidatorReplicasNotAcknowledging",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "no alert {wanted}");
    }
    // Each alert's block (up to the next) has both annotations.
    for block in rules.split("- alert:").skip(1) {
        let name = block.lines().next().unwrap_or_default().trim();
        for annotation in ["summary:", "description:"] {
            assert!(
                block.contains(annotation),
                "alert {name} has no {annotation}"
            );
        }
    }
}

#[test]
fn the_alerts_pass_their_promtool_unit_tests_one_test_at_least_per_alert() {
    let out = run_promtool(&[
        Path::new("test"),
        Path::new("rules"),
        &deployed(ALERT_TESTS),
    ]);
    assert!(out.contains("SUCCESS"), "{out}");

    let tests = read(ALERT_TESTS);
    for alert in alert_names(&read(ALERTS)) {
        assert!(
            tests.contains(&format!("alertname: {alert}\n        exp_alerts:\n")),
            "no test of {ALERT_TESTS} expects alert {alert} to fire"
        );
    }
}

#[test]
fn the_dashboard_is_importable_json_and_its_queries_are_promql() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    assert_eq!(dashboard["title"], "Invalidator");
    assert!(
        dashboard["id"].is_null(),
        "an importable dashboard has no id"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a `datasource` variable picks the Prometheus"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {} reads the chosen data source",
            panel["title"]
        );
        assert!(
            panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "panel {} has a query",
            panel["title"]
        );
    }

    // promtool parses each query as a recording rule's, Grafana's
    // variables given values.
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(queries.len() > 20, "{queries:?}");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        let mut expr = query.clone();
        for (variable, value) in [
            ("$__rate_interval", "5m"),
            ("$__interval", "1m"),
            ("$__range", "6h"),
            ("$job", ".*"),
            ("$instance", ".*"),
            ("$rule", ".*"),
        ] {
            expr = expr.replace(variable, value);
        }
        assert!(!expr.contains('$'), "a variable left in {query}");
        // A JSON string is a YAML double-quoted scalar.
        let expr = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {expr}\n"
        ));
    }
    let dir = fresh_dir("deploy-queries");
    let file = dir.join("dashboard_queries.yml");
    std::fs::write(&file, rules).unwrap();
    run_promtool(&[Path::new("check"), Path::new("rules"), &file]);
}

/// What one scrape of `/metrics` exports: the names of its samples, and
/// each family's type (from its `# TYPE` line).
struct Exported {
    samples: BTreeSet<String>,
    types: BTreeMap<String, String>,
}

impl Exported {
    fn parse(text: &str) -> Self {
        let mut samples = BTreeSet::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                samples.insert(line[..end].to_owned());
            }
        }
        Self { samples, types }
    }

    /// Whether Prometheus would hold series named `name`: a sample's name,
    /// or one a histogram or summary family gives its samples.
    fn has(&self, name: &str) -> bool {
        if self.samples.contains(name) {
            return true;
        }
        ["_bucket", "_sum", "_count", "_created"]
            .iter()
            .any(|suffix| {
                name.strip_suffix(suffix).is_some_and(|family| {
                    self.types.get(family).is_some_and(|kind| {
                        matches!(kind.as_str(), "histogram" | "gaugehistogram" | "summary")
                    })
                })
            })
    }
}

/// The dealership rule's tables.
const SCHEMA: &str = "
    CREATE TABLE customers (id text PRIMARY KEY, shop_id int, payment_method text,
        credit_score int, income numeric);
    CREATE TABLE inventory (vin text PRIMARY KEY, price numeric, status text);
    CREATE TABLE offers (id int PRIMARY KEY, customer_id text);
";

/// A price change of car `vin`: the dealership rule invalidates
/// `vehicle:VIN`.
fn car(txn: &str, vin: &str) -> Value {
    json!({"txn": txn, "writes": [{"table": "inventory", "op": "update", "key": {"vin": vin},
        "before": {"vin": vin, "price": 9}, "after": {"vin": vin, "price": 8}}]})
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_name_is_exported_by_serve() {
    let mut mentioned: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for file in [DASHBOARD, ALERTS, ALERT_TESTS] {
        for name in metric_names(&read(file)) {
            mentioned.entry(name).or_default().push(file);
        }
    }
    assert!(mentioned.len() > 40, "{mentioned:?}");

    let pg = PostgresServer::start();
    pg.client("postgres")
        .batch_execute("CREATE DATABASE app")
        .unwrap();
    pg.client("app").batch_execute(SCHEMA).unwrap();
    let redis = RedisServer::start();
    let rules = fresh_dir("deploy-metrics");
    deploy(guests::DEALERSHIP, &rules.join("dealership.wasm"));
    let serve = ServeProcess::start(
        BIN,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--redis",
            &redis.url(),
            "--postgres",
            &pg.url("app"),
            "--stream",
            "commits",
            "--group",
            "invalidator",
            "--consumer",
            "deploy",
            "--listen",
            "127.0.0.1:0",
            // The feed, so that removed keys are counted by rule too.
            "--feed",
            "invalidations",
        ],
        &[
            ("INVALIDATOR_POSTGRES__CONFIRM_EVERY", "100ms"),
            ("INVALIDATOR_POSTGRES__STATS_EVERY", "200ms"),
            ("INVALIDATOR_STREAM__BLOCK", "100ms"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let scrape = || {
        rt.block_on(async {
            let r = reqwest::get(serve.at("/metrics")).await.unwrap();
            assert!(r.status().is_success(), "GET /metrics: {}", r.status());
            r.text().await.unwrap()
        })
    };

    // A commit from each source, so that the rule has been called (its
    // latency quantiles show only then) and every figure has moved; the
    // first removes a tagged value (the counts by rule and by tag).
    rt.block_on(async {
        let put = reqwest::Client::new()
            .put(serve.at("/v1/cache/offer:1?tags=offers:vehicle:V1"))
            .body("cached")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204, "{}", serve.log());
    });
    let response = rt.block_on(async {
        reqwest::Client::new()
            .post(serve.at("/v1/commits?wait=true"))
            .json(&car("t1", "V1"))
            .send()
            .await
            .unwrap()
    });
    assert!(response.status().is_success(), "{}", serve.log());
    let _: String = redis
        .connection()
        .xadd("commits", "*", &[("commit", car("t2", "V2").to_string())])
        .unwrap();
    pg.client("app")
        .batch_execute("INSERT INTO inventory VALUES ('V3', 9, 'available')")
        .unwrap();

    // Until every name shows, or a while has passed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (exported, text) = loop {
        let text = scrape();
        let exported = Exported::parse(&text);
        let streamed = text.contains("invalidator_postgres_connected 1")
            && text.contains("invalidator_stream_acked_total 1")
            && !text.contains("invalidator_postgres_transactions_total 0");
        if (streamed && mentioned.keys().all(|n| exported.has(n))) || Instant::now() > deadline {
            break (exported, text);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing: Vec<String> = mentioned
        .iter()
        .filter(|(name, _)| !exported.has(name))
        .map(|(name, files)| format!("{name} (in {})", files.join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "names in deploy/ that `serve` does not export:\n  {}\n\nits /metrics:\n{text}",
        missing.join("\n  ")
    );
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}
