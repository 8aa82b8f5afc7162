//! `invalidator serve --postgres`: commits read from a real Postgres's
//! logical replication (a throwaway cluster per test), invalidations
//! applied to a real Redis, through the four example rules. Nothing in the
//! application posts a commit: the tests only write SQL.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use invalidator::cache::Cache;
use invalidator::redis::{Redis, RedisConfig};
use invalidator_tests::postgres::Client;
use invalidator_tests::{
    PostgresServer, RedisServer, ServeProcess, all_keys, deploy, fresh_dir, guests, wait_until,
};
use redis::Commands;

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

/// The example rules' tables, as their applications would have them.
const SCHEMA: &str = "
    CREATE TABLE customers (id text PRIMARY KEY, shop_id int, payment_method text,
        credit_score int, income numeric);
    CREATE TABLE inventory (vin text PRIMARY KEY, price numeric, status text);
    CREATE TABLE offers (id int PRIMARY KEY, customer_id text);
    CREATE TABLE kinder (id int PRIMARY KEY, turnus_id int, notes text);
    CREATE TABLE geld (id int PRIMARY KEY, turnus_id int, amount float8);
    CREATE TABLE user_profiles (id int PRIMARY KEY, user_id int, name text);
    CREATE TABLE hedge_instructions (id int PRIMARY KEY, currency text, entity_id int);
    CREATE TABLE products (id int PRIMARY KEY, shop_id int, name text);
    CREATE TABLE bills (id int PRIMARY KEY, shop_id int, total numeric);
    ALTER TABLE kinder REPLICA IDENTITY FULL;
    ALTER TABLE products REPLICA IDENTITY FULL;
";

/// A database with the schema, a Redis, and a rules folder with the four
/// example rules.
struct Setup {
    pg: PostgresServer,
    redis: RedisServer,
    rules: PathBuf,
}

fn setup(name: &str) -> Setup {
    let pg = PostgresServer::start();
    pg.client("postgres")
        .batch_execute("CREATE DATABASE app")
        .unwrap();
    pg.client("app").batch_execute(SCHEMA).unwrap();
    let rules = fresh_dir(&format!("pg-{name}"));
    for (guest, file) in [
        (guests::DEALERSHIP, "dealership.wasm"),
        (guests::TURNUS, "turnus.wasm"),
        (guests::HEDGE, "hedge.wasm"),
        (guests::POS, "pos.wasm"),
    ] {
        deploy(guest, &rules.join(file));
    }
    Setup {
        pg,
        redis: RedisServer::start(),
        rules,
    }
}

impl Setup {
    /// `serve --postgres` on the database, with `args` and `envs` added.
    fn serve(&self, args: &[&str], envs: &[(&str, &str)]) -> ServeProcess {
        serve(
            &self.rules,
            &self.redis.url(),
            &self.pg.url("app"),
            args,
            envs,
        )
    }

    fn sql(&self) -> Client {
        self.pg.client("app")
    }

    /// Waits until a process streams from slot `invalidator`.
    fn wait_streaming(&self, within: Duration) {
        let mut client = self.pg.client("app");
        wait_until("a process streams from the slot", within, || {
            client
                .query_opt(
                    "SELECT 1 FROM pg_replication_slots \
                     WHERE slot_name = 'invalidator' AND active",
                    &[],
                )
                .is_ok_and(|r| r.is_some())
        });
    }

    /// Sets each key in Redis.
    fn cache(&self, keys: &[&str]) {
        let mut conn = self.redis.connection();
        for key in keys {
            let () = conn.set(key, "cached").unwrap();
        }
    }

    fn keys(&self) -> BTreeSet<String> {
        all_keys(&mut self.redis.connection()).into_iter().collect()
    }

    /// The tables publication `invalidator` names.
    fn published(&self) -> BTreeSet<String> {
        self.sql()
            .query(
                "SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'invalidator'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The slot's confirmed position and the server's current one.
    fn positions(&self) -> (u64, u64) {
        let row = self
            .sql()
            .query_one(
                "SELECT (confirmed_flush_lsn - '0/0')::int8, (pg_current_wal_lsn() - '0/0')::int8 \
                 FROM pg_replication_slots WHERE slot_name = 'invalidator'",
                &[],
            )
            .unwrap();
        (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64)
    }
}

fn serve(
    rules: &Path,
    redis: &str,
    pg: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> ServeProcess {
    let mut all = vec![
        "--rules",
        rules.to_str().unwrap(),
        "--redis",
        redis,
        "--postgres",
        pg,
    ];
    all.extend_from_slice(args);
    let mut e = vec![
        // Quick retries and confirmations, so that tests wait little.
        ("INVALIDATOR_PIPELINE__RETRY_MIN", "20ms"),
        ("INVALIDATOR_PIPELINE__RETRY_MAX", "500ms"),
        ("INVALIDATOR_POSTGRES__CONFIRM_EVERY", "100ms"),
        ("INVALIDATOR_POSTGRES__STATS_EVERY", "200ms"),
    ];
    e.extend_from_slice(envs);
    ServeProcess::start(BIN, &all, &e)
}

fn set_of(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn writes_in_sql_invalidate_the_example_rules_keys_patterns_and_tags() {
    let s = setup("writes");
    let mut db = s.sql();
    db.batch_execute(
        "INSERT INTO customers VALUES ('C1', 1, 'card', 700, 50000), ('C2', 2, 'cash', 600, 1);
         INSERT INTO inventory VALUES ('VIN-A', 21500, 'available'), ('VIN-B', 9000, 'sold');
         INSERT INTO kinder VALUES (3, 1, 'x'), (4, 2, 'y');
         INSERT INTO products VALUES (1, 7, 'tea');",
    )
    .unwrap();
    // Tagged entries, as the application's cache client stores them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Cache::new(std::sync::Arc::new(
        Redis::open(&s.redis.url(), RedisConfig::default()).unwrap(),
    ));
    rt.block_on(async {
        for (key, tag) in [
            ("offer-list:A", "offers:vehicle:VIN-A"),
            ("offer-list:B", "offers:vehicle:VIN-B"),
            ("shop7-catalog", "shop:7:catalog"),
        ] {
            cache
                .set(key, b"{}", None, &[tag.to_owned()])
                .await
                .unwrap();
        }
    });
    s.cache(&[
        "customer:C1",
        "customer:C2",
        "vehicle:VIN-A",
        "vehicle:VIN-B",
        "turnus_data_1",
        "turnus_data_2",
        "gl_hedge_positions_v1",
        "unrelated",
    ]);
    let serve = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let before = s.keys();

    // An update through the dealership rule: key and tag.
    db.batch_execute("UPDATE inventory SET price = 19900 WHERE vin = 'VIN-A'")
        .unwrap();
    let mut expected = before.clone();
    for gone in ["vehicle:VIN-A", "offer-list:A"] {
        expected.remove(gone);
    }
    expected.remove("inv:tag:offers:vehicle:VIN-A");
    serve.wait_for_keys(|| s.keys(), &expected);

    // A multi-statement transaction: every write's targets, once committed.
    db.batch_execute(
        "BEGIN;
         UPDATE customers SET payment_method = 'cash' WHERE id = 'C1';
         INSERT INTO hedge_instructions VALUES (1, 'EUR', 9);
         UPDATE products SET name = 'green tea' WHERE id = 1;
         COMMIT;",
    )
    .unwrap();
    for gone in [
        "customer:C1",
        "gl_hedge_positions_v1",
        "shop7-catalog",
        "inv:tag:shop:7:catalog",
    ] {
        expected.remove(gone);
    }
    serve.wait_for_keys(|| s.keys(), &expected);

    // A delete without REPLICA IDENTITY FULL names only its key: the
    // customer's key still goes.
    db.batch_execute("DELETE FROM customers WHERE id = 'C2'")
        .unwrap();
    expected.remove("customer:C2");
    serve.wait_for_keys(|| s.keys(), &expected);

    // A rolled-back transaction invalidates nothing, and what commits after
    // it still does.
    db.batch_execute(
        "BEGIN; UPDATE kinder SET notes = 'z' WHERE id = 4; ROLLBACK;
         UPDATE kinder SET notes = 'w' WHERE id = 3;",
    )
    .unwrap();
    expected.remove("turnus_data_1");
    serve.wait_for_keys(|| s.keys(), &expected);
    assert!(
        s.keys().contains("turnus_data_2"),
        "the rolled-back update left it"
    );
    assert!(s.keys().contains("unrelated"));

    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["postgres"]["in_flight"], 0, "{summary}");
    assert_eq!(summary["postgres"]["oddities"], 0, "{summary}");
    assert!(
        summary["postgres"]["transactions"].as_u64().unwrap() >= 4,
        "{summary}"
    );
}

#[test]
fn a_row_that_moves_invalidates_both_places_and_truncate_applies_the_fallback() {
    let s = setup("moves");
    let mut db = s.sql();
    db.batch_execute("INSERT INTO kinder VALUES (3, 1, 'x'), (5, 3, 'y')")
        .unwrap();
    s.cache(&["turnus_data_1", "turnus_data_2", "turnus_data_3"]);
    let serve = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    // `kinder` has REPLICA IDENTITY FULL: the old row is known, and the
    // turnus the child left is as stale as the one it joined.
    db.batch_execute("UPDATE kinder SET turnus_id = 2 WHERE id = 3")
        .unwrap();
    serve.wait_for_keys(|| s.keys(), &set_of(&["turnus_data_3"]));

    // TRUNCATE names no row: the rule cannot find a turnus, fails, and its
    // fallback (`turnus_data_*`, `user_profile_*`) is applied.
    s.cache(&["user_profile_1", "other"]);
    db.batch_execute("TRUNCATE kinder").unwrap();
    serve.wait_for_keys(|| s.keys(), &set_of(&["other"]));
    let _ = serve.stop(Duration::from_secs(30));
}

#[test]
fn an_unchanged_toasted_column_is_not_reported_as_changed() {
    let s = setup("toast");
    let mut db = s.sql();
    // Stored out of line (TOAST), uncompressed: Postgres sends it as
    // "unchanged" when an update leaves it alone.
    db.batch_execute(
        "ALTER TABLE customers REPLICA IDENTITY FULL;
         ALTER TABLE customers ALTER COLUMN payment_method SET STORAGE EXTERNAL;
         INSERT INTO customers SELECT 'C1', 1, string_agg(md5(i::text), ''), 700, 5
             FROM generate_series(1, 250) i;",
    )
    .unwrap();
    let stored: String = db
        .query_one(
            "SELECT pg_column_size(payment_method)::text FROM customers",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        stored.parse::<usize>().unwrap() > 2000,
        "the column must be stored out of line, uncompressed: {stored} bytes"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Cache::new(std::sync::Arc::new(
        Redis::open(&s.redis.url(), RedisConfig::default()).unwrap(),
    ));
    let offers = |key: &str| {
        rt.block_on(cache.set(key, b"{}", None, &["offers:customer:C1".to_owned()]))
            .unwrap();
    };
    offers("offers-of-C1");
    s.cache(&["customer:C1"]);
    let serve = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));

    // Only the shop changes: no offer input (`payment_method`, the long
    // one, among them), so the customer's key goes and the offers stay.
    db.batch_execute("UPDATE customers SET shop_id = 2 WHERE id = 'C1'")
        .unwrap();
    wait_until(
        "the customer's key is gone",
        Duration::from_secs(30),
        || !s.keys().contains("customer:C1"),
    );
    assert!(
        rt.block_on(cache.get("offers-of-C1")).unwrap().is_some(),
        "the TOASTed payment method did not change; the offers must stay. Log:\n{}",
        serve.log()
    );
    // And when it does change, they go.
    db.batch_execute("UPDATE customers SET payment_method = 'cash' WHERE id = 'C1'")
        .unwrap();
    wait_until("the offers are gone", Duration::from_secs(30), || {
        rt.block_on(cache.get("offers-of-C1")).unwrap().is_none()
    });
    let _ = serve.stop(Duration::from_secs(30));
}

/// Inserts `geld` rows 0..n (one per turnus) and caches their turnus keys.
fn geld_rows(s: &Setup, n: u32) {
    s.sql()
        .execute(
            "INSERT INTO geld SELECT i, i, 0 FROM generate_series(0, $1 - 1) i",
            &[&(n as i32)],
        )
        .unwrap();
    let mut conn = s.redis.connection();
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.set(format!("turnus_data_{i}"), "cached").ignore();
    }
    let () = pipe.query(&mut conn).unwrap();
}

/// Updates `geld` rows 0..n, one transaction each, retrying a row (on a new
/// connection) while the database is away. Returns the server's WAL
/// position after the last commit.
fn update_each(url: String, n: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let connect = || loop {
            match invalidator_tests::postgres::Client::connect(
                &url,
                invalidator_tests::postgres::NoTls,
            ) {
                Ok(c) => return c,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let mut db = connect();
        for i in 0..n {
            let deadline = Instant::now() + Duration::from_secs(120);
            // An update is idempotent for the test: a retried one whose
            // first answer was lost only changes the amount again.
            while let Err(e) = db.execute(
                "UPDATE geld SET amount = amount + 1 WHERE id = $1",
                &[&(i as i32)],
            ) {
                assert!(Instant::now() < deadline, "update {i} kept failing: {e}");
                std::thread::sleep(Duration::from_millis(20));
                db = connect();
            }
        }
        let lsn: i64 = db
            .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
            .unwrap()
            .get(0);
        lsn as u64
    })
}

/// The `turnus_data_*` keys still in Redis.
fn turnus_left(s: &Setup) -> usize {
    s.keys()
        .iter()
        .filter(|k| k.starts_with("turnus_data_"))
        .count()
}

#[test]
fn kill_9_in_the_middle_of_5000_transactions_loses_nothing() {
    const N: u32 = 5000;
    let s = setup("kill");
    geld_rows(&s, N);
    let victim = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let writer = update_each(s.pg.url("app"), N);
    wait_until("a third is invalidated", Duration::from_secs(120), || {
        turnus_left(&s) <= (N - N / 3) as usize
    });
    victim.kill();
    let last = writer.join().unwrap();
    assert!(
        turnus_left(&s) > 0,
        "the kill came too late to test anything"
    );

    let serve = s.serve(&[], &[]);
    wait_until("every key is invalidated", Duration::from_secs(120), || {
        turnus_left(&s) == 0
    });
    wait_until(
        "the slot's confirmed position reaches the last commit",
        Duration::from_secs(30),
        || s.positions().0 >= last,
    );
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[test]
fn postgres_restarting_under_a_stream_of_transactions_loses_nothing() {
    const N: u32 = 1500;
    let mut s = setup("restart");
    geld_rows(&s, N);
    let serve = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let writer = update_each(s.pg.url("app"), N);
    wait_until("a third is invalidated", Duration::from_secs(120), || {
        turnus_left(&s) <= (N - N / 3) as usize
    });
    s.pg.restart();
    writer.join().unwrap();
    wait_until("every key is invalidated", Duration::from_secs(120), || {
        turnus_left(&s) == 0
    });
    let log = serve.log();
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert!(
        summary["postgres"]["reconnects"].as_u64().unwrap() >= 1,
        "the restart was seen: {summary}"
    );
    // The primary-key lookup after the restart found its catalog
    // connection killed: it reconnects rather than falling back to every
    // column as the key.
    assert_eq!(summary["postgres"]["oddities"], 0, "{summary}");
    // One outage, told once by the source: not every retry of it.
    assert!(!log.contains("pg_walstream::retry"), "{log}");
}

#[test]
fn a_second_process_on_the_slot_takes_over_when_the_first_dies() {
    const N: u32 = 2000;
    let s = setup("standby");
    geld_rows(&s, N);
    let first = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let standby = s.serve(&[], &[]);
    // The standby cannot stream (Postgres lets one process use a slot); it
    // waits and retries.
    std::thread::sleep(Duration::from_secs(1));
    let writer = update_each(s.pg.url("app"), N);
    wait_until("a third is invalidated", Duration::from_secs(120), || {
        turnus_left(&s) <= (N - N / 3) as usize
    });
    let pid_of_first = first.pid();
    first.kill();
    writer.join().unwrap();
    wait_until("every key is invalidated", Duration::from_secs(120), || {
        turnus_left(&s) == 0
    });
    let (status, summary) = standby.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert!(
        summary["postgres"]["transactions"].as_u64().unwrap() > 0,
        "the standby (not {pid_of_first}) took over: {summary}"
    );
}

#[test]
fn a_missing_slot_is_refused_when_creating_is_off_and_tables_without_full_identity_are_named() {
    let s = setup("refuse");
    let out = std::process::Command::new(BIN)
        .args(["serve", "--rules", s.rules.to_str().unwrap(), "--postgres"])
        .arg(s.pg.url("app"))
        .env("INVALIDATOR_POSTGRES__CREATE", "false")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("publication `invalidator` does not exist"),
        "{err}"
    );

    let out = std::process::Command::new(BIN)
        .args(["serve", "--rules", s.rules.to_str().unwrap(), "--postgres"])
        .arg(s.pg.url("app"))
        .env("INVALIDATOR_POSTGRES__REQUIRE_FULL_IDENTITY", "true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("customers") && err.contains("geld") && !err.contains("kinder"),
        "the tables without REPLICA IDENTITY FULL are named, and only those: {err}"
    );
}

#[test]
fn an_idle_slot_holds_no_wal_back_and_the_source_is_in_stats_metrics_and_readiness() {
    let s = setup("idle");
    let serve = s.serve(&["--listen", "127.0.0.1:0"], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |path: &str| {
        rt.block_on(async {
            let r = reqwest::get(serve.at(path)).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    wait_until("the source reports ready", Duration::from_secs(30), || {
        get("/readyz").0 == 200
    });

    // WAL written for another database is none of this slot's business;
    // with nothing in flight, the server's keepalive positions are
    // confirmed, so the slot does not hold it back.
    s.pg.client("postgres")
        .batch_execute(
            "CREATE TABLE filler (v text);
             INSERT INTO filler SELECT md5(i::text) FROM generate_series(1, 20000) i;",
        )
        .unwrap();
    let (_, written_to) = s.positions();
    wait_until(
        "the idle slot's confirmed position passes the other database's writes",
        Duration::from_secs(30),
        || s.positions().0 >= written_to,
    );

    let stats: serde_json::Value = serde_json::from_str(&get("/v1/stats").1).unwrap();
    let pg = &stats["postgres"];
    assert_eq!(pg["connected"], 1, "{stats}");
    assert!(
        pg["retained_wal_bytes"].is_u64() && pg["lag_ms"].is_u64(),
        "{stats}"
    );
    wait_until("the retained WAL is read", Duration::from_secs(30), || {
        let stats: serde_json::Value = serde_json::from_str(&get("/v1/stats").1).unwrap();
        stats["postgres"]["confirmed_lsn"].as_u64() >= Some(written_to)
    });
    let metrics = get("/metrics").1;
    for name in [
        "invalidator_postgres_retained_wal_bytes",
        "invalidator_postgres_lag_ms",
        "invalidator_postgres_transactions_total",
        "invalidator_postgres_connected 1",
    ] {
        assert!(metrics.contains(name), "`{name}` missing from:\n{metrics}");
    }

    // Postgres gone: not ready, naming the source.
    let mut s = s;
    s.pg.stop();
    wait_until(
        "the source reports not ready",
        Duration::from_secs(30),
        || {
            let (status, body) = get("/readyz");
            status == 503 && body.contains("Postgres")
        },
    );
    s.pg.start_again();
    wait_until("ready again", Duration::from_secs(60), || {
        get("/readyz").0 == 200
    });
    let _ = serve.stop(Duration::from_secs(30));
}

/// Sets a server setting as the superuser and reloads the configuration.
fn set_system(s: &Setup, setting: &str) {
    // One statement per call: ALTER SYSTEM refuses to run in the
    // transaction a multi-statement call makes.
    let mut su = s.pg.client("postgres");
    su.batch_execute(&format!("ALTER SYSTEM {setting}"))
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
}

/// Waits until commits wait for the synchronous standby.
///
/// `pg_reload_conf()` only sends a signal: commits start to wait once the
/// checkpointer has read the new `synchronous_standby_names`, which can be
/// after a commit made right away (CI saw one go through). So a probe
/// commits to a table no rule reads, again until one is seen waiting in
/// `SyncRep`; that one is cancelled, which commits it locally.
///
/// The probe's table must exist before the setting is made: creating it
/// would be a commit that waits.
fn wait_for_synchronous_commits(s: &Setup) {
    let mut su = s.pg.client("postgres");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = s.pg.url("app");
        let probe = std::thread::spawn(move || {
            let mut db = Client::connect(&url, invalidator_tests::postgres::NoTls).unwrap();
            // A cancelled wait commits locally, with a warning; a probe
            // cancelled before its commit fails, which is as good.
            let _ = db.batch_execute("INSERT INTO sync_probe VALUES (1)");
        });
        // Up to a second for the probe to be seen waiting, or to finish
        // (the setting not read yet).
        let mut waiting = false;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(20));
            let cancelled: i64 = su
                .query_one(
                    "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity \
                     WHERE wait_event = 'SyncRep' AND query LIKE '%sync_probe%'",
                    &[],
                )
                .unwrap()
                .get(0);
            if cancelled > 0 {
                waiting = true;
                break;
            }
            if probe.is_finished() {
                break;
            }
        }
        if !waiting && !probe.is_finished() {
            // Neither seen waiting nor done: cancel whatever it is in.
            su.batch_execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE '%INSERT INTO sync_probe%' AND pid <> pg_backend_pid()",
            )
            .unwrap();
        }
        probe.join().unwrap();
        if waiting {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "commits never waited for the standby named in synchronous_standby_names"
        );
    }
}

#[test]
fn a_commit_is_invalidated_only_once_other_sessions_can_see_it() {
    let s = setup("visible");
    let mut db = s.sql();
    db.batch_execute(
        "INSERT INTO geld VALUES (1, 1, 10);
         CREATE TABLE sync_probe (n int);",
    )
    .unwrap();
    let serve = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Cache::new(std::sync::Arc::new(
        Redis::open(&s.redis.url(), RedisConfig::default()).unwrap(),
    ));
    let amount = |db: &mut Client| -> Vec<u8> {
        let v: f64 = db
            .query_one("SELECT amount FROM geld WHERE id = 1", &[])
            .unwrap()
            .get(0);
        v.to_string().into_bytes()
    };
    let fill = |db: &mut Client| -> (Vec<u8>, bool) {
        // Read before the fill: the synchronous client cannot run inside
        // the runtime. What the loader would return is what it read.
        let row = amount(db);
        let mut loaded = false;
        let value = rt
            .block_on(cache.get_or_fill("turnus_data_1", None, &[], || {
                loaded = true;
                async move { Ok::<_, std::convert::Infallible>(row) }
            }))
            .unwrap();
        (value, loaded)
    };
    assert_eq!(fill(&mut db), (b"10".to_vec(), true));

    // A synchronous standby that never answers: every commit is flushed
    // (and decoded, and sent to us) but stays invisible to other sessions
    // until the setting is cleared.
    set_system(&s, "SET synchronous_standby_names = 'ghost'");
    wait_for_synchronous_commits(&s);
    let url = s.pg.url("app");
    let writer = std::thread::spawn(move || {
        let mut db = Client::connect(&url, invalidator_tests::postgres::NoTls).unwrap();
        db.batch_execute("UPDATE geld SET amount = 20 WHERE id = 1")
            .unwrap();
    });
    // Long enough for the commit to be decoded and handed over many times
    // over, had it not been held back.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!writer.is_finished(), "the commit must still be waiting");
    assert!(
        s.keys().contains("turnus_data_1"),
        "invalidated before the commit was visible; log:\n{}",
        serve.log()
    );
    assert_eq!(
        fill(&mut db),
        (b"10".to_vec(), false),
        "readers keep the cached value, which is still what they would read"
    );

    set_system(&s, "RESET synchronous_standby_names");
    writer.join().unwrap();
    wait_until(
        "the key is invalidated once the commit is visible",
        Duration::from_secs(30),
        || !s.keys().contains("turnus_data_1"),
    );
    assert_eq!(fill(&mut db), (b"20".to_vec(), true));
    assert_eq!(
        fill(&mut db),
        (b"20".to_vec(), false),
        "the new row is stored"
    );
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert!(
        summary["postgres"]["visibility_checks"].as_u64().unwrap() >= 2,
        "{summary}"
    );
}

#[test]
fn the_publication_names_only_the_rules_tables_and_no_write_of_the_application_is_refused() {
    let s = setup("publication");
    let mut db = s.sql();
    // An application's table that no rule reads, without a primary key;
    // and one a rule reads (`notizen`, the turnus rule's), also without.
    db.batch_execute(
        "CREATE TABLE legacy_import (turnus_id int, note text);
         INSERT INTO legacy_import VALUES (1, 'x');
         CREATE TABLE notizen (turnus_id int, text text);
         INSERT INTO notizen VALUES (1, 'x');",
    )
    .unwrap();
    let serve = s.serve(&[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let all: bool = db
        .query_one(
            "SELECT puballtables FROM pg_publication WHERE pubname = 'invalidator'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!all, "the publication must not be FOR ALL TABLES");
    let published = s.published();
    assert!(published.contains("kinder") && published.contains("customers"));
    assert!(!published.contains("legacy_import"), "{published:?}");
    assert!(!published.contains("notizen"), "{published:?}");
    // The application's writes go through, as before we were installed.
    db.batch_execute(
        "UPDATE legacy_import SET note = 'y';
         DELETE FROM legacy_import;
         UPDATE notizen SET text = 'y';
         DELETE FROM notizen;",
    )
    .unwrap();
    let log = serve.log();
    assert!(
        log.contains("notizen") && log.contains("ALTER TABLE public.notizen REPLICA IDENTITY FULL"),
        "the rule's table without identity is named with its fix:\n{log}"
    );
    assert!(
        !log.contains("legacy_import"),
        "a table no rule reads is none of our business:\n{log}"
    );
    let _ = serve.stop(Duration::from_secs(30));
}

#[test]
fn a_swap_that_brings_a_table_publishes_it_before_the_new_rule_serves() {
    let s = setup("swap-table");
    let rules = fresh_dir("pg-swap-table-rules");
    deploy(guests::DEALERSHIP, &rules.join("dealership.wasm"));
    let serve = serve(
        &rules,
        &s.redis.url(),
        &s.pg.url("app"),
        &["--listen", "127.0.0.1:0"],
        &[],
    );
    s.wait_streaming(Duration::from_secs(30));
    let mut db = s.sql();
    assert_eq!(s.published(), set_of(&["customers", "inventory", "offers"]));
    deploy(guests::TURNUS, &rules.join("turnus.wasm"));
    wait_until("the turnus rule serves", Duration::from_secs(60), || {
        serve.log().contains("turnus") && s.published().contains("kinder")
    });
    // Published before the rule served: once it serves, its writes count.
    let rt = tokio::runtime::Runtime::new().unwrap();
    wait_until("the turnus rule is listed", Duration::from_secs(60), || {
        rt.block_on(async {
            reqwest::get(serve.at("/v1/rules"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("turnus")
        })
    });
    s.cache(&["turnus_data_4"]);
    db.batch_execute("INSERT INTO kinder VALUES (1, 4, 'x')")
        .unwrap();
    wait_until(
        "the new table's write invalidates",
        Duration::from_secs(30),
        || !s.keys().contains("turnus_data_4"),
    );
    let _ = serve.stop(Duration::from_secs(30));
}

#[test]
fn a_role_that_is_not_a_superuser_starts_after_running_the_sql_check_prints() {
    let s = setup("role");
    s.pg.client("postgres")
        .batch_execute("CREATE ROLE app LOGIN")
        .unwrap();
    let url = format!("postgres://app@127.0.0.1:{}/app", s.pg.port());
    let check = || {
        std::process::Command::new(BIN)
            .args(["postgres", "check", "--postgres", &url, "--rules"])
            .arg(&s.rules)
            .env(
                "XDG_CACHE_HOME",
                std::env::temp_dir().join("invalidator-test-cache"),
            )
            .output()
            .unwrap()
    };
    let out = check();
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "statements to run: {script}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "ALTER ROLE app WITH REPLICATION;",
        "CREATE PUBLICATION invalidator FOR TABLE ",
        "ALTER PUBLICATION invalidator OWNER TO app;",
        "ALTER TABLE public.customers REPLICA IDENTITY FULL;",
    ] {
        assert!(script.contains(expected), "`{expected}` missing:\n{script}");
    }
    for line in script.lines() {
        assert!(
            line.starts_with("-- ") || line.ends_with(';'),
            "not for psql: {line}"
        );
    }
    // What an administrator does with it: run it as a superuser.
    s.sql().batch_execute(&script).unwrap();
    let out = check();
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing left to do:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    s.cache(&["customer:C9"]);
    let serve = serve(&s.rules, &s.redis.url(), &url, &[], &[]);
    s.wait_streaming(Duration::from_secs(30));
    s.sql()
        .batch_execute("INSERT INTO customers VALUES ('C9', 1, 'card', 1, 1)")
        .unwrap();
    wait_until(
        "the role's stream invalidates",
        Duration::from_secs(30),
        || !s.keys().contains("customer:C9"),
    );
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[test]
fn a_stalled_pipeline_makes_the_source_not_ready_and_it_recovers_with_transactions_larger_than_its_bounds()
 {
    let s = setup("stall");
    set_system(&s, "SET wal_sender_timeout = '2s'");
    geld_rows(&s, 300);
    let serve = s.serve(
        &["--listen", "127.0.0.1:0"],
        &[
            ("INVALIDATOR_POSTGRES__MAX_IN_FLIGHT", "2"),
            ("INVALIDATOR_PIPELINE__MAX_PENDING", "50"),
        ],
    );
    s.wait_streaming(Duration::from_secs(30));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ready = || {
        rt.block_on(async {
            let r = reqwest::get(serve.at("/readyz")).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    wait_until("ready", Duration::from_secs(30), || ready().0 == 200);
    let pid = |db: &mut Client| -> Option<i32> {
        db.query_one(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'invalidator'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let streaming_pid = pid(&mut s.sql()).expect("streaming");

    // Redis frozen: nothing is applied, reading pauses at two transactions
    // in flight.
    s.redis.signal(libc::SIGSTOP);
    let mut db = s.sql();
    for i in 0..10 {
        db.execute("UPDATE geld SET amount = amount + 1 WHERE id = $1", &[&i])
            .unwrap();
    }
    wait_until(
        "the source says it is stalled",
        Duration::from_secs(20),
        || {
            let (status, body) = ready();
            status == 503 && body.contains("stalled")
        },
    );
    // Three of the server's timeouts later it has not ended our stream:
    // the paused reader still answers it.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        pid(&mut s.sql()),
        Some(streaming_pid),
        "the walsender was ended while the pipeline stalled; log:\n{}",
        serve.log()
    );
    // One transaction larger than both bounds (300 rows).
    db.batch_execute("UPDATE geld SET amount = amount + 1")
        .unwrap();
    s.redis.signal(libc::SIGCONT);
    wait_until("every key is invalidated", Duration::from_secs(60), || {
        turnus_left(&s) == 0
    });
    wait_until("ready again", Duration::from_secs(30), || ready().0 == 200);
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[test]
fn slots_are_listed_an_idle_one_is_named_at_start_and_dropped_on_request() {
    let s = setup("slots");
    s.sql()
        .batch_execute(
            "SELECT pg_create_logical_replication_slot('trial', 'pgoutput');
             CREATE TABLE filler (v text);
             INSERT INTO filler SELECT md5(i::text) FROM generate_series(1, 20000) i;",
        )
        .unwrap();
    let serve = s.serve(&[], &[("INVALIDATOR_POSTGRES__WARN_RETAINED", "1000")]);
    s.wait_streaming(Duration::from_secs(30));
    wait_until("the idle slot is named", Duration::from_secs(10), || {
        serve.log().contains("drop-slot trial")
    });
    let postgres = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("postgres")
            .args(args)
            .args(["--postgres", &s.pg.url("app")])
            .output()
            .unwrap()
    };
    let out = postgres(&["slots"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("trial\t") && l.contains("inactive")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("invalidator\t") && l.contains("\tactive")),
        "{listed}"
    );
    let out = postgres(&["drop-slot", "invalidator"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = postgres(&["drop-slot", "trial"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&postgres(&["slots"]).stdout).into_owned();
    assert!(!listed.contains("trial"), "{listed}");
    let _ = serve.stop(Duration::from_secs(30));
}

#[test]
fn a_dropped_slot_is_named_by_readiness_with_what_to_do() {
    let s = setup("dropped");
    let serve = s.serve(&["--listen", "127.0.0.1:0"], &[]);
    s.wait_streaming(Duration::from_secs(30));
    let mut db = s.pg.client("postgres");
    // The slot is in use: end its walsender and drop it before serve is
    // back on it.
    wait_until("the slot is dropped", Duration::from_secs(30), || {
        db.batch_execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name = 'invalidator' AND active_pid IS NOT NULL",
        )
        .unwrap();
        db.batch_execute("SELECT pg_drop_replication_slot('invalidator')")
            .is_ok()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    wait_until(
        "readiness names the missing slot",
        Duration::from_secs(30),
        || {
            rt.block_on(async {
                let r = reqwest::get(serve.at("/readyz")).await.unwrap();
                r.status().as_u16() == 503
                    && r.text()
                        .await
                        .unwrap()
                        .contains("slot `invalidator` is gone")
            })
        },
    );
    assert!(
        serve.log().contains("the replication slot is gone"),
        "{}",
        serve.log()
    );
    let _ = serve.stop(Duration::from_secs(30));
}
