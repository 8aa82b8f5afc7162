//! Production Redis, as operators run it: TLS with client certificates
//! (a single node and a cluster), a primary found through sentinels, and
//! failovers. The failover tests cut a replica off its primary (its
//! replication user turned off and its link dropped: a clean partition),
//! invalidate through `serve`, kill the primary, let the replica be
//! promoted, and look for stale values on it. A control in each deletes
//! keys straight on the primary, as any client would, and shows them come
//! back: the hole the test would otherwise not see.

use std::time::{Duration, Instant};

use invalidator::layout::leases::{self, Taken};
use invalidator::redis::{Redis, RedisConfig};
use invalidator_tests::{
    ClusterSpec, PostgresServer, RedisCluster, RedisServer, SentinelGroup, SentinelSpec,
    ServeProcess, TlsCerts, all_keys, deploy, fresh_dir, guests,
};
use redis::Commands;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

/// Commits whose rule deletes `vehicle:V{i}` for each `i`.
fn cars(range: std::ops::Range<usize>) -> Value {
    let commits: Vec<Value> = range
        .map(|i| {
            let vin = format!("V{i}");
            json!({"txn": format!("t{i}"), "writes": [{"table": "inventory", "op": "update",
                "key": {"vin": vin}, "before": {"vin": vin, "price": 9},
                "after": {"vin": vin, "price": 8}}]})
        })
        .collect();
    Value::Array(commits)
}

fn vehicles(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("vehicle:V{i}")).collect()
}

/// `serve` with the dealership rule on `redis`, listening, with `args`.
fn serve(name: &str, redis: &str, args: &[&str]) -> ServeProcess {
    let dir = fresh_dir(&format!("prod-{name}"));
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    let mut all = vec![
        "--rules",
        dir.to_str().unwrap(),
        "--redis",
        redis,
        "--listen",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    ServeProcess::start(
        BIN,
        &all,
        &[
            ("INVALIDATOR_PIPELINE__RETRY_MIN", "20ms"),
            ("INVALIDATOR_PIPELINE__RETRY_MAX", "300ms"),
            // Each attempt to apply, in the log a failure prints.
            ("RUST_LOG", "info,invalidator::pipeline::applier=debug"),
        ],
    )
}

async fn post(service: &ServeProcess, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(service.at(path))
        .json(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the request reaches serve")
}

async fn stats(service: &ServeProcess) -> Value {
    reqwest::get(service.at("/v1/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /v1/explain?key=KEY`.
async fn explain(service: &ServeProcess, key: &str) -> Value {
    reqwest::Client::new()
        .get(service.at("/v1/explain"))
        .query(&[("key", key)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How many of `keys` exist on `conn`'s server.
fn present(conn: &mut impl redis::ConnectionLike, keys: &[String]) -> usize {
    keys.iter()
        .filter(|k| redis::cmd("EXISTS").arg(k).query::<bool>(conn).unwrap())
        .count()
}

fn set_all(conn: &mut impl redis::ConnectionLike, keys: &[String]) {
    for key in keys {
        let () = redis::cmd("SET").arg(key).arg("stale").query(conn).unwrap();
    }
}

/// Waits up to `within` for `done`; on a timeout, serve's log.
async fn wait_for(
    service: &ServeProcess,
    within: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            return Err(service.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Waits up to `within` for `done`, failing with `what` and serve's log.
async fn wait_until(
    what: &str,
    service: &ServeProcess,
    within: Duration,
    done: impl FnMut() -> bool,
) {
    if let Err(log) = wait_for(service, within, done).await {
        panic!("timed out waiting until {what}; serve's log:\n{log}");
    }
}

#[tokio::test]
async fn invalidations_apply_over_tls_with_client_certificates() {
    let certs = TlsCerts::make("single");
    let redis = RedisServer::with_tls(&certs, &["--save", ""]);
    let keys = vehicles(0..20);
    set_all(&mut redis.connection(), &keys);
    let flags = certs.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--redis-replicas", "0"]);
    let service = serve("tls", &redis.url(), &args);
    let response = post(&service, "/v1/commits?wait=true", &cars(0..20)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", service.log());
    assert_eq!(present(&mut redis.connection(), &keys), 0);

    // The cache endpoints share the connection's settings.
    let response = reqwest::Client::new()
        .put(service.at("/v1/cache/greeting?tags=t"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let value: Option<String> = redis.connection().get("greeting").unwrap();
    assert_eq!(value.as_deref(), Some("hello"));

    // So do the one-shot commands.
    let out = std::process::Command::new(BIN)
        .args(["cache", "get", "--redis", &redis.url()])
        .args(&flags)
        .arg("greeting")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[tokio::test]
async fn invalidations_apply_on_a_tls_cluster() {
    let certs = TlsCerts::make("cluster");
    let cluster = RedisCluster::with(ClusterSpec {
        primaries: 3,
        tls: Some(&certs),
        ..ClusterSpec::default()
    });
    assert!(
        cluster.url().starts_with("rediss+cluster://"),
        "{}",
        cluster.url()
    );
    let keys = vehicles(0..60);
    set_all(&mut cluster.connection(), &keys);
    let flags = certs.flags();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let service = serve("tls-cluster", &cluster.url(), &args);
    let response = post(&service, "/v1/commits?wait=true", &cars(0..60)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", service.log());
    assert_eq!(present(&mut cluster.connection(), &keys), 0);
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[test]
fn a_certificate_that_does_not_verify_is_refused_at_start_naming_the_url_and_the_reason() {
    let certs = TlsCerts::make("bad-ca");
    let redis = RedisServer::with_tls(&certs, &["--save", ""]);
    let dir = fresh_dir("prod-bad-ca");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            &redis.url(),
        ])
        .args(["--listen", "127.0.0.1:0", "--redis-tls-ca"])
        .arg(&certs.other_ca)
        .arg("--redis-tls-cert")
        .arg(&certs.client_cert)
        .arg("--redis-tls-key")
        .arg(&certs.client_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&redis.url()), "{stderr}");
    assert!(
        stderr.contains("certificate") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );

    // TLS files with a URL that is not TLS: refused before anything runs.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--print-config", "--redis", "redis://127.0.0.1:1"])
        .arg("--redis-tls-ca")
        .arg(&certs.ca)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("redis://127.0.0.1:1") && stderr.contains("rediss://"),
        "{stderr}"
    );
}

/// What a Sentinel failover left: invalidated keys found again on the
/// promoted replica, through `serve` and through the control.
struct Left {
    through_serve: usize,
    control: usize,
    stats: Value,
    /// Whether a lease taken before the cut could fill the key after the
    /// failover, before and after `serve` applied its deletes there.
    lease_filled_early: bool,
    lease_filled_late: bool,
}

/// Fills `lease` through `redis`, riding out the failover's connection
/// errors for up to 20 s.
async fn fill_retrying(redis: &Redis, lease: &leases::Lease) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match leases::fill(redis, lease, b"stale", 0).await {
            Ok(stored) => return stored,
            Err(e) => assert!(Instant::now() < deadline, "filling the lease: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Sentinel scenario: 300 keys invalidated through `serve` (with
/// `replicas` acknowledgements asked) and 300 deleted straight on the
/// primary, after the replica was cut off; then the primary killed and
/// the replica promoted.
async fn sentinel_failover(name: &str, replicas: &str) -> Left {
    let mut group = SentinelGroup::start(name);
    let mut ours = vehicles(0..300);
    // A reader that missed `vehicle:V900` holds a lease on it, taken (and
    // replicated) before the cut; its loader read the row before the
    // commit below.
    let reader = Redis::open(&group.url(), RedisConfig::default()).unwrap();
    let Taken::Granted(lease) = leases::take(&reader, "vehicle:V900", &[], 60_000)
        .await
        .unwrap()
    else {
        panic!("the lease is not granted")
    };
    let control: Vec<String> = (0..300).map(|i| format!("control:{i}")).collect();
    {
        let mut conn = group.primary.connection();
        set_all(&mut conn, &ours);
        set_all(&mut conn, &control);
        let acked: u64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut conn)
            .unwrap();
        assert_eq!(acked, 1, "the replica holds the values before the cut");
    }
    let service = serve(
        name,
        &group.url(),
        &["--redis-replicas", replicas, "--explain"],
    );
    // A first commit connects serve to the primary (and, with
    // acknowledgements asked, shows the replica acknowledging).
    let response = post(&service, "/v1/commits?wait=true", &cars(1000..1001)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", service.log());

    group.assert_unchanged();
    group.primary.cut_off_replicas();
    let unlinked: u64 = redis::cmd("UNLINK")
        .arg(&control)
        .query(&mut group.primary.connection())
        .unwrap();
    assert_eq!(unlinked, 300);
    let response = post(&service, "/v1/commits", &cars(0..300)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = post(&service, "/v1/commits", &cars(900..901)).await;
    ours.push("vehicle:V900".to_owned());
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let primary = &group.primary;
    wait_until(
        "serve deleted its keys on the primary",
        &service,
        Duration::from_secs(30),
        || present(&mut primary.connection(), &ours) == 0,
    )
    .await;
    if replicas != "0" {
        // Not confirmed: counted, and readiness says why.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stats = stats(&service).await;
            let ready = reqwest::get(service.at("/readyz")).await.unwrap();
            let status = ready.status();
            let body = ready.text().await.unwrap();
            if stats["pipeline"]["unreplicated"].as_u64() > Some(0)
                && status == StatusCode::SERVICE_UNAVAILABLE
            {
                assert!(body.contains("replicas"), "{body}");
                // Not confirmed is not applied: explain has nothing yet.
                let explained = explain(&service, "vehicle:V0").await;
                assert_eq!(explained["invalidations"], json!([]), "{explained}");
                let metrics = reqwest::get(service.at("/metrics"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert!(
                    metrics
                        .lines()
                        .any(|l| l.starts_with("invalidator_unreplicated_total ")
                            && !l.ends_with(" 0")),
                    "{metrics}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never unreplicated: {stats} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    group.fail_over(Duration::from_secs(30));
    // The promoted replica still holds the marker: a fill may land before
    // serve has applied its deletes there, never after.
    let lease_filled_early = fill_retrying(&reader, &lease).await;
    let promoted = &group.replica;
    wait_for(&service, Duration::from_secs(30), || {
        present(&mut promoted.connection(), &ours) == 0
    })
    .await
    .unwrap_or_else(|log| {
        let left: Vec<&String> = ours
            .iter()
            .filter(|k| promoted.connection().exists(k).unwrap_or(false))
            .collect();
        panic!(
            "left on the promoted replica: {left:?} (lease filled early: {lease_filled_early}); \
             serve's log:\n{log}"
        )
    });
    let lease_filled_late = fill_retrying(&reader, &lease).await;
    // Explain names the commit's rule (and the replay), however many
    // attempts it took, never the fallback. With acknowledgements asked
    // for, the promoted replica has no replica of its own: nothing is
    // confirmed, so nothing may be listed as applied.
    let explained = explain(&service, "vehicle:V0").await;
    let invalidations = explained["invalidations"].as_array().unwrap();
    assert!(
        invalidations
            .iter()
            .all(|i| i["cause"] == "rule" || i["cause"] == "replay"),
        "{explained}"
    );
    if replicas == "0" {
        let first = invalidations.last().expect("applied, so explained");
        assert_eq!(first["rule"], "dealership", "{explained}");
        assert_eq!(first["cause"], "rule", "{explained}");
    } else {
        assert!(invalidations.is_empty(), "{explained}");
    }
    let left = Left {
        through_serve: present(&mut promoted.connection(), &ours),
        control: present(&mut promoted.connection(), &control),
        stats: stats(&service).await,
        lease_filled_early,
        lease_filled_late,
    };
    service.kill();
    left
}

#[tokio::test]
async fn a_sentinel_failover_resurrects_nothing_with_replica_acknowledgements() {
    let left = sentinel_failover("acked", "1").await;
    assert_eq!(left.through_serve, 0);
    assert!(
        !left.lease_filled_late,
        "a lease stored a stale value after the deletes"
    );
    assert_eq!(
        left.control, 300,
        "the control shows the hole: {:?}",
        left.stats
    );
}

#[tokio::test]
async fn a_sentinel_failover_within_the_replay_window_resurrects_nothing() {
    let left = sentinel_failover("replay", "0").await;
    assert_eq!(left.through_serve, 0);
    // Whether or not the fill landed before the replay (it may: the
    // marker is back on the promoted replica until then), the replay
    // removed it, and no fill lands after.
    eprintln!(
        "lease filled before the replay: {}",
        left.lease_filled_early
    );
    assert!(
        !left.lease_filled_late,
        "a lease stored a stale value after the replay"
    );
    assert_eq!(left.control, 300, "the control shows the hole");
    assert!(
        left.stats["pipeline"]["replays"].as_u64() >= Some(1),
        "{}",
        left.stats
    );
    assert!(
        left.stats["pipeline"]["replayed_targets"].as_u64() >= Some(300),
        "{}",
        left.stats
    );
}

#[tokio::test]
async fn a_cluster_failover_within_the_replay_window_resurrects_nothing() {
    let stats = cluster_failover("cluster-replay", "0").await;
    assert!(stats["pipeline"]["replays"].as_u64() >= Some(1), "{stats}");
}

#[tokio::test]
async fn a_cluster_failover_resurrects_nothing_with_each_primary_waiting_for_its_replica() {
    let stats = cluster_failover("cluster-acked", "1").await;
    assert!(
        stats["pipeline"]["unreplicated"].as_u64() >= Some(1),
        "{stats}"
    );
}

/// A cluster of three primaries with a replica each: the first primary's
/// replica cut off, 300 keys over every slot invalidated through `serve`
/// (asking `replicas` acknowledgements), that primary killed and its
/// replica promoted. Fails if an invalidated key is on it; `serve`'s stats.
async fn cluster_failover(name: &str, replicas: &str) -> Value {
    // One cluster failover at a time: twelve servers failing over at once
    // on two cores made the clusters fail over primaries that were only
    // slow, and the scenario was no longer the one set up.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = RedisCluster::with(ClusterSpec {
        primaries: 3,
        replicas: true,
        node_timeout_ms: Some(3000),
        ..ClusterSpec::default()
    });
    let ours = vehicles(0..300);
    set_all(&mut cluster.connection(), &ours);
    // Give the replicas the values for sure.
    for node in cluster.nodes() {
        let acked: u64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut node.connection())
            .unwrap();
        assert_eq!(acked, 1);
    }
    let service = serve(name, &cluster.url(), &["--redis-replicas", replicas]);
    // Every primary's replica acknowledges: confirmed.
    let response = post(&service, "/v1/commits?wait=true", &cars(1000..1030)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", service.log());

    cluster.nodes()[0].cut_off_replicas();
    let response = post(&service, "/v1/commits", &cars(0..300)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    wait_until(
        "serve deleted its keys on the primaries",
        &service,
        Duration::from_secs(30),
        || present(&mut cluster.connection(), &ours) == 0,
    )
    .await;
    // The keys of the first primary's slots, which its replica still holds.
    let stale_on_replica = all_keys(&mut cluster.replicas()[0].connection())
        .into_iter()
        .filter(|k| k.starts_with("vehicle:"))
        .count();
    assert!(
        stale_on_replica > 50,
        "the replica was not cut off: {stale_on_replica}"
    );
    if replicas != "0" {
        // The first primary's replica no longer acknowledges.
        let deadline = Instant::now() + Duration::from_secs(20);
        while stats(&service).await["pipeline"]["unreplicated"].as_u64() == Some(0) {
            assert!(
                Instant::now() < deadline,
                "never unreplicated: {}",
                service.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Only the primary killed below may fail over.
    let layout: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut cluster.nodes()[1].connection())
        .unwrap();
    let failed_over = layout.lines().filter(|l| l.contains("slave")).count();
    assert_eq!(
        failed_over, 3,
        "a primary failed over on its own:\n{layout}"
    );
    cluster.kill(0);
    let replica = &cluster.replicas()[0];
    wait_until(
        "the replica is promoted",
        &service,
        Duration::from_secs(30),
        || replica.role() == "master",
    )
    .await;
    wait_for(&service, Duration::from_secs(30), || {
        all_keys(&mut replica.connection())
            .iter()
            .all(|k| !k.starts_with("vehicle:"))
    })
    .await
    .unwrap_or_else(|log| {
        let left: Vec<String> = all_keys(&mut replica.connection())
            .into_iter()
            .filter(|k| k.starts_with("vehicle:"))
            .collect();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut replica.connection())
            .unwrap_or_default();
        panic!(
            "{} invalidated keys left on the promoted replica (port {}): {:?}...\n\
             CLUSTER NODES:\n{nodes}\nserve's log:\n{log}",
            left.len(),
            replica.port(),
            &left[..left.len().min(5)]
        )
    });
    let stats = stats(&service).await;
    service.kill();
    stats
}

#[test]
fn the_postgres_position_waits_for_the_replicas_and_is_confirmed_after_the_failover() {
    let pg = PostgresServer::start();
    pg.client("postgres")
        .batch_execute("CREATE DATABASE app")
        .unwrap();
    let mut sql = pg.client("app");
    sql.batch_execute(
        "CREATE TABLE inventory (vin text PRIMARY KEY, price numeric, status text);
         INSERT INTO inventory SELECT 'V' || i, 9, 'new' FROM generate_series(0, 99) i;",
    )
    .unwrap();
    let mut group = SentinelGroup::start("postgres");
    let ours = vehicles(0..100);
    set_all(&mut group.primary.connection(), &ours);
    let dir = fresh_dir("prod-postgres");
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    let service = ServeProcess::start(
        BIN,
        &[
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            &group.url(),
            "--redis-replicas",
            "1",
            "--postgres",
            &pg.url("app"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[
            ("INVALIDATOR_PIPELINE__RETRY_MIN", "20ms"),
            ("INVALIDATOR_PIPELINE__RETRY_MAX", "300ms"),
            ("INVALIDATOR_POSTGRES__CONFIRM_EVERY", "100ms"),
        ],
    );
    let positions = |sql: &mut invalidator_tests::postgres::Client| -> (i64, i64) {
        let row = sql
            .query_one(
                "SELECT (confirmed_flush_lsn - '0/0')::int8, (pg_current_wal_lsn() - '0/0')::int8 \
                 FROM pg_replication_slots WHERE slot_name = 'invalidator'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    service.wait_until(
        "serve streams from the slot",
        Duration::from_secs(30),
        || {
            sql.query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'invalidator' AND active",
                &[],
            )
            .is_ok_and(|r| r.is_some())
        },
    );

    group.assert_unchanged();
    group.primary.cut_off_replicas();
    sql.batch_execute("UPDATE inventory SET price = 8").unwrap();
    let (_, written) = positions(&mut sql);
    let primary = &group.primary;
    service.wait_until(
        "the deletes reach the primary",
        Duration::from_secs(30),
        || present(&mut primary.connection(), &ours) == 0,
    );
    // Applied on the primary, unacknowledged: the slot stays behind.
    std::thread::sleep(Duration::from_secs(2));
    let (confirmed, _) = positions(&mut sql);
    assert!(
        confirmed < written,
        "confirmed {confirmed} before the replica acknowledged {written}"
    );

    group.fail_over(Duration::from_secs(30));
    // The old primary comes back; the sentinels make it the new one's
    // replica, which then acknowledges.
    group.primary.restart();
    let promoted = &group.replica;
    service.wait_until(
        "the invalidations are confirmed",
        Duration::from_secs(60),
        || positions(&mut sql).0 >= written,
    );
    assert_eq!(present(&mut promoted.connection(), &ours), 0);
    service.kill();
}

/// An application's Redis user often lacks the `@dangerous` commands
/// (`ROLE`, `INFO`) that tell the primary's identity: invalidations still
/// apply, the server known by its address.
#[tokio::test]
async fn a_user_without_dangerous_commands_still_invalidates() {
    let redis = RedisServer::start();
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@all")
        .arg("-@dangerous")
        .query(&mut redis.connection())
        .unwrap();
    let keys = vehicles(0..10);
    set_all(&mut redis.connection(), &keys);
    let url = format!("redis://app:pw@127.0.0.1:{}", redis.port());
    let service = serve("no-dangerous", &url, &[]);
    let response = post(&service, "/v1/commits?wait=true", &cars(0..10)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", service.log());
    assert_eq!(present(&mut redis.connection(), &keys), 0);
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

/// `rediss+sentinel://` with the primary's password and the sentinels'
/// own: TLS to the sentinels and to the primary, client certificates
/// required everywhere; the process follows a failover, and neither
/// password reaches its log.
#[tokio::test]
async fn a_primary_behind_sentinels_over_tls_with_passwords_is_followed_across_a_failover() {
    let certs = TlsCerts::make("sentinel-tls");
    let mut group = SentinelGroup::with(
        "tls",
        SentinelSpec {
            tls: Some(&certs),
            password: Some("primary-pw"),
            sentinel_password: Some("sentinel-pw"),
        },
    );
    assert!(
        group.url().starts_with("rediss+sentinel://:primary-pw@"),
        "{}",
        group.url()
    );
    let before = vehicles(0..50);
    set_all(&mut group.primary.connection(), &before);
    let flags = certs.flags();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let service = serve("sentinel-tls", &group.url(), &args);
    let response = post(&service, "/v1/commits?wait=true", &cars(0..50)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", service.log());
    assert_eq!(present(&mut group.primary.connection(), &before), 0);

    group.fail_over(Duration::from_secs(30));
    let after = vehicles(50..60);
    set_all(&mut group.replica.connection(), &after);
    let response = post(&service, "/v1/commits?wait=true", &cars(50..60)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", service.log());
    assert_eq!(present(&mut group.replica.connection(), &after), 0);
    let log = service.log();
    assert!(
        !log.contains("primary-pw") && !log.contains("sentinel-pw"),
        "{log}"
    );
    service.kill();
}
