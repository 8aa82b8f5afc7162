//! `invalidator serve --mysql`: commits read from a real MariaDB's binary
//! log (a throwaway server per test), invalidations applied to a real
//! Redis, through the example rules. Nothing in the application posts a
//! commit: the tests only write SQL.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use invalidator_tests::{
    MariadbServer, RedisServer, SIGCONT, SIGSTOP, ServeProcess, all_keys, deploy, fresh_dir, guests,
};
use redis::Commands;

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

/// The example rules' tables, as their applications would have them.
const SCHEMA: &str = "
    CREATE DATABASE app;
    USE app;
    CREATE TABLE customers (id varchar(20) PRIMARY KEY, shop_id int, payment_method text,
        credit_score int, income decimal(12,2)) ENGINE=InnoDB;
    CREATE TABLE inventory (vin varchar(20) PRIMARY KEY, price decimal(10,2),
        status enum('available','reserved','sold')) ENGINE=InnoDB;
    CREATE TABLE kinder (id int PRIMARY KEY, turnus_id int, notes text) ENGINE=InnoDB;
    CREATE TABLE user_profiles (id int PRIMARY KEY, user_id int, name text) ENGINE=InnoDB;
    CREATE TABLE hedge_instructions (id int PRIMARY KEY, currency char(3), entity_id int)
        ENGINE=InnoDB;
    CREATE TABLE products (id int PRIMARY KEY, shop_id int, name text) ENGINE=InnoDB;
    CREATE TABLE bills (id int PRIMARY KEY, shop_id int, total decimal(10,2)) ENGINE=InnoDB;
";

/// A server with the schema, a Redis, and a rules folder with the
/// dealership and turnus rules.
struct Setup {
    db: MariadbServer,
    redis: RedisServer,
    rules: PathBuf,
}

fn setup(name: &str, options: &[&str]) -> Setup {
    setup_with_rules(
        name,
        options,
        &[
            (guests::DEALERSHIP, "dealership.wasm"),
            (guests::TURNUS, "turnus.wasm"),
        ],
    )
}

/// [`setup`], with the rules `guests` (component, file name).
fn setup_with_rules(name: &str, options: &[&str], guests: &[(&str, &str)]) -> Setup {
    let db = MariadbServer::start_with(options);
    db.sql(None, SCHEMA);
    let rules = fresh_dir(&format!("mysql-{name}"));
    for (guest, file) in guests {
        deploy(guest, &rules.join(file));
    }
    Setup {
        db,
        redis: RedisServer::start(),
        rules,
    }
}

impl Setup {
    /// `serve --mysql` on database `app`, listening (so that it has read
    /// the server's position when this returns), with `args` added.
    fn serve(&self, args: &[&str]) -> ServeProcess {
        let url = self.db.url("app");
        let mut all = vec![
            "--rules",
            self.rules.to_str().unwrap(),
            "--redis",
            &self.redis.url(),
            "--mysql",
            &url,
            "--listen",
            "127.0.0.1:0",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let e = [
            ("INVALIDATOR_PIPELINE__RETRY_MIN", "20ms"),
            ("INVALIDATOR_PIPELINE__RETRY_MAX", "500ms"),
            ("INVALIDATOR_MYSQL__HEARTBEAT", "1s"),
            // A killed reader's lease runs out soon: a restart reads again
            // within seconds.
            ("INVALIDATOR_MYSQL__LEASE", "2s"),
        ];
        ServeProcess::start(BIN, &all, &e)
    }

    fn sql(&self, sql: &str) -> String {
        self.db.sql(Some("app"), sql)
    }

    fn cache(&self, keys: &[&str]) {
        let mut conn = self.redis.connection();
        for key in keys {
            let () = conn.set(key, "cached").unwrap();
        }
    }

    /// The application's keys in Redis (the source's own position left
    /// out).
    fn keys(&self) -> BTreeSet<String> {
        all_keys(&mut self.redis.connection())
            .into_iter()
            .filter(|k| !k.starts_with("inv:mysql:"))
            .collect()
    }

    /// Waits until the position stored is the server's now (its last
    /// transaction's), or fails naming `what`.
    fn wait_stored(&self, serve: &ServeProcess, what: &str) {
        let position = self
            .db
            .sql(None, "SELECT @@gtid_binlog_pos")
            .trim()
            .to_owned();
        serve.wait_until(what, Duration::from_secs(30), || {
            self.stored().as_deref() == Some(position.as_str())
        });
    }

    /// The position stored in Redis.
    fn stored(&self) -> Option<String> {
        let mut conn = self.redis.connection();
        let keys: Vec<String> = conn.keys("inv:mysql:*:gtid").unwrap();
        assert!(keys.len() <= 1, "{keys:?}");
        keys.first().map(|k| conn.get(k).unwrap())
    }
}

fn set_of(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn writes_in_sql_invalidate_the_rules_keys() {
    let s = setup("writes", &[]);
    s.sql(
        "INSERT INTO customers VALUES ('C1', 1, 'card', 700, 50000), ('C2', 2, 'cash', 600, 1);
         INSERT INTO inventory VALUES ('VIN-A', 21500, 'available'), ('VIN-B', 9000, 'sold');
         INSERT INTO kinder VALUES (3, 1, 'x'), (4, 2, 'y'), (5, 3, 'z');",
    );
    s.cache(&[
        "customer:C1",
        "customer:C2",
        "vehicle:VIN-A",
        "vehicle:VIN-B",
        "turnus_data_1",
        "turnus_data_2",
        "turnus_data_3",
        "turnus_data_4",
        "user_profile_9",
        "unrelated",
    ]);
    let serve = s.serve(&[]);
    let mut expected = s.keys();

    // An update: the dealership rule's key.
    s.sql("UPDATE inventory SET price = 19900, status = 'reserved' WHERE vin = 'VIN-A'");
    expected.remove("vehicle:VIN-A");
    serve.wait_for_keys(|| s.keys(), &expected);

    // A multi-statement transaction: every write's targets, once committed.
    s.sql(
        "BEGIN;
         UPDATE customers SET payment_method = 'cash' WHERE id = 'C1';
         INSERT INTO user_profiles VALUES (1, 9, 'Ada');
         COMMIT;",
    );
    expected.remove("customer:C1");
    expected.remove("user_profile_9");
    serve.wait_for_keys(|| s.keys(), &expected);

    // A delete.
    s.sql("DELETE FROM customers WHERE id = 'C2'");
    expected.remove("customer:C2");
    serve.wait_for_keys(|| s.keys(), &expected);

    // A rolled-back transaction is never in the log; what commits after it
    // is.
    s.sql(
        "BEGIN; UPDATE kinder SET notes = 'r' WHERE id = 4; ROLLBACK;
         UPDATE kinder SET notes = 'w' WHERE id = 3;",
    );
    expected.remove("turnus_data_1");
    serve.wait_for_keys(|| s.keys(), &expected);
    assert!(
        s.keys().contains("turnus_data_2"),
        "the rolled-back update left it"
    );

    // DDL in the middle of the stream: the next table map has the new
    // column, and the rows after it are read with it.
    s.sql("ALTER TABLE kinder ADD COLUMN age int AFTER id");
    s.sql("UPDATE kinder SET age = 4 WHERE id = 4");
    expected.remove("turnus_data_2");
    serve.wait_for_keys(|| s.keys(), &expected);

    // A row that moves: the turnus it left and the one it joined.
    s.sql("UPDATE kinder SET turnus_id = 4 WHERE id = 5");
    expected.remove("turnus_data_3");
    expected.remove("turnus_data_4");
    serve.wait_for_keys(|| s.keys(), &expected);

    // A key update: the old key and the new.
    s.cache(&["vehicle:VIN-B", "vehicle:VIN-C"]);
    let mut expected = s.keys();
    s.sql("UPDATE inventory SET vin = 'VIN-C' WHERE vin = 'VIN-B'");
    expected.remove("vehicle:VIN-B");
    expected.remove("vehicle:VIN-C");
    serve.wait_for_keys(|| s.keys(), &expected);
    assert!(s.keys().contains("unrelated"));

    s.wait_stored(&serve, "the last transaction's position is stored");
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["mysql"]["in_flight"], 0, "{summary}");
    assert_eq!(summary["mysql"]["oddities"], 0, "{summary}");
    assert!(
        summary["mysql"]["transactions"].as_u64().unwrap() >= 8,
        "{summary}"
    );
}

#[test]
fn a_restart_resumes_from_the_stored_position() {
    let s = setup("resume", &[]);
    s.sql("INSERT INTO kinder VALUES (1, 1, 'a'), (2, 2, 'b')");
    let serve = s.serve(&[]);
    s.cache(&["turnus_data_1"]);
    s.sql("UPDATE kinder SET notes = 'x' WHERE id = 1");
    serve.wait_for_keys(|| s.keys(), &set_of(&[]));
    s.wait_stored(&serve, "the position is stored");
    serve.kill();
    // Written while nobody reads: read at the next start, from the
    // stored position.
    s.cache(&["turnus_data_2", "unrelated"]);
    s.sql("UPDATE kinder SET notes = 'y' WHERE id = 2");
    let serve = s.serve(&[]);
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));
    s.wait_stored(&serve, "the new position is stored");
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[test]
fn a_server_that_cannot_be_read_is_refused_naming_the_fix() {
    let s = setup(
        "unfit",
        &["--binlog-format=STATEMENT", "--binlog-row-metadata=MINIMAL"],
    );
    let mut serve = s.serve_unlistened();
    let status = serve.wait(Duration::from_secs(30));
    assert!(!status.success());
    let log = serve.log();
    for fix in [
        "SET GLOBAL binlog_format = 'ROW';",
        "SET GLOBAL binlog_row_metadata = 'FULL';",
    ] {
        assert!(log.contains(fix), "{fix} not in:\n{log}");
    }
    assert!(
        !log.contains("binlog_row_image"),
        "the row image is right:\n{log}"
    );

    // `invalidator mysql check` prints the same fixes as SQL; run as it is
    // by an administrator, it readies the server, and `serve` starts.
    let check = |expected: i32| {
        let out = std::process::Command::new(BIN)
            .args(["mysql", "check", "--mysql", &s.db.url("app")])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let sql = check(1);
    assert!(sql.contains("SET GLOBAL binlog_format = 'ROW';"), "{sql}");
    s.db.sql(None, &sql);
    assert!(check(0).contains("ready"));
    let serve = s.serve(&[]);
    s.cache(&["turnus_data_1"]);
    s.sql("INSERT INTO kinder VALUES (1, 1, 'a')");
    serve.wait_for_keys(|| s.keys(), &set_of(&[]));
}

/// Writes a session hides from the rows of the log are counted and logged
/// with what can be said of them: a statement logged as text, rows with
/// some columns only.
#[test]
fn sessions_that_hide_rows_are_counted_and_logged() {
    let s = setup("hidden", &[]);
    s.sql("INSERT INTO kinder VALUES (1, 1, 'a'), (2, 2, 'b')");
    let serve = s.serve(&[]);
    s.cache(&["turnus_data_1", "turnus_data_2"]);
    s.sql(
        "SET SESSION binlog_format = 'STATEMENT';
         UPDATE kinder SET notes = 'x' WHERE id = 1;",
    );
    serve.wait_until("the statement is logged", Duration::from_secs(30), || {
        let log = serve.log();
        log.contains("a write logged as a statement")
            && log.contains("UPDATE kinder SET notes = 'x'")
    });
    // Its rows are not in the log: nothing can name its keys (what the
    // README says of such sessions).
    assert!(s.keys().contains("turnus_data_1"));
    s.sql(
        "SET SESSION binlog_row_image = 'MINIMAL';
         UPDATE kinder SET notes = 'y' WHERE id = 2;",
    );
    serve.wait_until(
        "the partial rows are logged",
        Duration::from_secs(30),
        || {
            serve
                .log()
                .contains("rows of `kinder` logged with some columns only")
        },
    );
    // The minimal image lacks `turnus_id`: the rule cannot name the
    // turnus, and its fallback (`turnus_data_*`) applies. Misses, never a
    // stale key.
    serve.wait_for_keys(|| s.keys(), &set_of(&[]));
    let (_, summary) = serve.stop(Duration::from_secs(30));
    assert_eq!(summary["mysql"]["oddities"], 2, "{summary}");
}

/// `TRUNCATE`, `DROP TABLE` and the `RENAME TABLE` swap that ends an ETL
/// load or an online schema change empty or replace a table with no row
/// events: each reaches rules as a delete with nothing known, as a
/// `TRUNCATE` from the Postgres source, and the dealership rule's fallback
/// invalidates every vehicle. (Each was an empty commit, and every cached
/// row of the table stayed.)
#[test]
fn truncate_drop_and_rename_invalidate_the_whole_table() {
    let s = setup("truncate", &[]);
    s.sql("INSERT INTO inventory VALUES ('VIN-A', 1, 'available'), ('VIN-B', 2, 'sold')");
    s.cache(&["vehicle:VIN-A", "vehicle:VIN-B", "unrelated"]);
    let serve = s.serve(&[]);
    s.sql("TRUNCATE TABLE inventory");
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));

    // A new table loaded aside, then swapped in.
    s.cache(&["vehicle:VIN-A"]);
    s.sql(
        "CREATE TABLE inventory_new LIKE inventory;
         INSERT INTO inventory_new VALUES ('VIN-C', 3, 'available');
         RENAME TABLE inventory TO inventory_old, inventory_new TO inventory;",
    );
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));

    s.cache(&["vehicle:VIN-C"]);
    s.sql("DROP TABLE IF EXISTS inventory, inventory_old");
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));
}

/// Rows a foreign key's `ON DELETE CASCADE` deletes are not in the binary
/// log (InnoDB deletes them inside the engine): the source follows the
/// key, and the turnus rule names the children's turnus from the key's
/// column. The key is added while `serve` reads: DDL makes it read the
/// keys again. (Every child's key stayed cached.)
#[test]
fn rows_a_foreign_key_cascade_deletes_are_invalidated() {
    let s = setup("cascade", &[]);
    s.sql(
        "CREATE TABLE turnus (id int PRIMARY KEY) ENGINE=InnoDB;
         INSERT INTO turnus VALUES (1), (2);
         INSERT INTO kinder VALUES (1, 1, 'a'), (2, 2, 'b');",
    );
    s.cache(&["turnus_data_1", "turnus_data_2", "unrelated"]);
    let serve = s.serve(&[]);
    s.sql(
        "ALTER TABLE kinder ADD CONSTRAINT kinder_turnus FOREIGN KEY (turnus_id)
             REFERENCES turnus (id) ON DELETE CASCADE",
    );
    s.sql("DELETE FROM turnus WHERE id = 1");
    serve.wait_for_keys(|| s.keys(), &set_of(&["turnus_data_2", "unrelated"]));
    assert_eq!(s.sql("SELECT COUNT(*) FROM kinder").trim(), "1");
}

/// Savepoints (Django's nested `atomic` and `get_or_create`,
/// SQLAlchemy's `begin_nested`) are logged as text inside a transaction:
/// they write nothing, so they are no oddity, and the rows kept are
/// invalidated. (Each was counted and logged as a write hidden in a
/// statement.)
#[test]
fn savepoints_are_no_oddity_and_the_rows_kept_are_invalidated() {
    let s = setup("savepoints", &[]);
    s.sql("INSERT INTO inventory VALUES ('VIN-A', 1, 'available')");
    s.cache(&["vehicle:VIN-A", "unrelated"]);
    let serve = s.serve(&[]);
    s.sql(
        "BEGIN;
         UPDATE inventory SET price = 2 WHERE vin = 'VIN-A';
         SAVEPOINT s1;
         INSERT INTO inventory VALUES ('VIN-B', 3, 'sold');
         ROLLBACK TO SAVEPOINT s1;
         SAVEPOINT s2;
         RELEASE SAVEPOINT s2;
         COMMIT;",
    );
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));
    let (_, summary) = serve.stop(Duration::from_secs(30));
    assert_eq!(summary["mysql"]["oddities"], 0, "{summary}");
}

impl Setup {
    /// `serve --mysql` without a listener: for a start that must fail.
    fn serve_unlistened(&self) -> ServeProcess {
        let url = self.db.url("app");
        ServeProcess::start(
            BIN,
            &[
                "--rules",
                self.rules.to_str().unwrap(),
                "--redis",
                &self.redis.url(),
                "--mysql",
                &url,
            ],
            &[],
        )
    }
}

/// A transaction in the log but not yet visible to other sessions is not
/// invalidated until it is: here semi-synchronous replication waits after
/// the log is synced (`AFTER_SYNC`) for a replica that never answers, as
/// it would for a slow one, while the log is read. Invalidating then would
/// let a reader store the old row for good.
#[test]
fn a_commit_is_invalidated_only_once_visible() {
    let s = setup("visible", &[]);
    s.sql("INSERT INTO kinder VALUES (1, 1, 'old')");
    let serve = s.serve(&[]);
    s.cache(&["turnus_data_1"]);
    s.db.sql(
        None,
        "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC';
         SET GLOBAL rpl_semi_sync_master_timeout = 4000;
         SET GLOBAL rpl_semi_sync_master_enabled = 1;",
    );
    let before = s.db.sql(None, "SELECT @@gtid_binlog_pos");
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| s.sql("UPDATE kinder SET notes = 'new' WHERE id = 1"));
        // The commit waits for the replica: in the log, not visible.
        serve.wait_until("the commit is in the log", Duration::from_secs(30), || {
            s.db.sql(None, "SELECT @@gtid_binlog_pos") != before
        });
        assert_eq!(s.sql("SELECT notes FROM kinder WHERE id = 1").trim(), "old");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            s.sql("SELECT notes FROM kinder WHERE id = 1").trim(),
            "old",
            "still invisible (the wait is 4 s)"
        );
        assert!(
            s.keys().contains("turnus_data_1"),
            "invalidated before the row could be seen; serve's log:\n{}",
            serve.log()
        );
        writer.join().unwrap();
    });
    // Visible now: the key goes.
    assert_eq!(s.sql("SELECT notes FROM kinder WHERE id = 1").trim(), "new");
    serve.wait_for_keys(|| s.keys(), &set_of(&[]));
    let (_, summary) = serve.stop(Duration::from_secs(30));
    assert!(
        summary["mysql"]["visibility_checks"].as_u64() > Some(1),
        "{summary}"
    );
}

/// An XA transaction's rows are invalidated at its `XA COMMIT`, not at its
/// `XA PREPARE` (they are not visible before), and never after an
/// `XA ROLLBACK`; a restart between the two reads the prepared rows again.
#[test]
fn xa_transactions_are_invalidated_at_their_commit() {
    let s = setup("xa", &[]);
    s.sql("INSERT INTO kinder VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c')");
    let serve = s.serve(&[]);
    s.cache(&[
        "turnus_data_1",
        "turnus_data_2",
        "turnus_data_3",
        "unrelated",
    ]);
    s.sql(
        "XA START 'one'; UPDATE kinder SET notes = 'x' WHERE id = 1; XA END 'one';
         XA PREPARE 'one';",
    );
    s.sql(
        "XA START 'two'; UPDATE kinder SET notes = 'y' WHERE id = 2; XA END 'two';
         XA PREPARE 'two';",
    );
    // A plain transaction after them is applied, and its position stored
    // stays before the prepared ones.
    s.sql("UPDATE kinder SET notes = 'z' WHERE id = 3");
    serve.wait_for_keys(
        || s.keys(),
        &set_of(&["turnus_data_1", "turnus_data_2", "unrelated"]),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.keys(),
        set_of(&["turnus_data_1", "turnus_data_2", "unrelated"]),
        "prepared, not committed: nothing to invalidate yet"
    );
    // Killed while both are held: the restart reads them again.
    serve.kill();
    let serve = s.serve(&[]);
    s.sql("XA ROLLBACK 'two'");
    s.sql("XA COMMIT 'one'");
    serve.wait_for_keys(|| s.keys(), &set_of(&["turnus_data_2", "unrelated"]));
    s.wait_stored(&serve, "the position after the XA commit is stored");
    assert!(s.keys().contains("turnus_data_2"), "rolled back: kept");
    let (_, summary) = serve.stop(Duration::from_secs(30));
    assert_eq!(summary["mysql"]["oddities"], 0, "{summary}");
}

/// A stored position whose logs were purged is refused loudly: `serve`
/// logs why, `/readyz` names the way out, nothing is read past the gap.
/// `--mysql-resync` then invalidates the rules' fallback targets and reads
/// from the server's position.
#[test]
fn purged_logs_are_refused_and_resync_recovers() {
    let s = setup("purged", &[]);
    s.sql("INSERT INTO kinder VALUES (1, 1, 'a')");
    let serve = s.serve(&[]);
    s.sql("UPDATE kinder SET notes = 'b' WHERE id = 1");
    s.wait_stored(&serve, "the position is stored");
    let position = s.stored().unwrap();
    serve.kill();
    // Written while nobody reads, then purged.
    s.sql("UPDATE kinder SET notes = 'c' WHERE id = 1");
    s.db.sql(None, "FLUSH BINARY LOGS");
    let last = s.db.sql(None, "SHOW MASTER STATUS");
    let file = last.split_whitespace().next().unwrap().to_owned();
    // MariaDB keeps a log until InnoDB's checkpoint has passed it (for
    // crash recovery): purge until it is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        s.db.sql(None, &format!("PURGE BINARY LOGS TO '{file}'"));
        let logs = s.db.sql(None, "SHOW BINARY LOGS");
        if logs.lines().count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never purged: {logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
    s.cache(&[
        "turnus_data_1",
        "turnus_data_7",
        "user_profile_3",
        "unrelated",
    ]);

    let serve = s.serve(&[]);
    serve.wait_until("the purge is reported", Duration::from_secs(30), || {
        serve.log().contains("is no longer on the server")
    });
    let (status, why) = get(&serve, "/readyz");
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("--mysql-resync"), "{why}");
    assert_eq!(
        s.stored().as_deref(),
        Some(position.as_str()),
        "nothing read past the gap"
    );
    assert!(s.keys().contains("turnus_data_1"));
    serve.kill();

    // The way out: the fallback targets go, and reading starts from now.
    let serve = s.serve(&["--mysql-resync"]);
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));
    s.wait_stored(&serve, "the server's position is stored");
    s.cache(&["turnus_data_1"]);
    s.sql("UPDATE kinder SET notes = 'd' WHERE id = 1");
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));
    serve.wait_until("ready", Duration::from_secs(30), || {
        get(&serve, "/readyz").0 == 200
    });
}

/// `GET path` on `serve`: the status and the body.
fn get(serve: &ServeProcess, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(serve.at(path)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// A 12 MB value, a transaction over two engines (MariaDB logs it as two
/// transactions), and the server restarted under the stream: every key
/// goes, and nothing is odd.
#[test]
fn large_values_mixed_engines_and_a_server_restart() {
    let mut s = setup("mixed", &[]);
    s.sql(
        "CREATE TABLE blobs (id int PRIMARY KEY, turnus_id int, body longtext) ENGINE=InnoDB;
         CREATE TABLE legacy (id int PRIMARY KEY, user_id int) ENGINE=MyISAM;
         INSERT INTO kinder VALUES (1, 1, 'a');",
    );
    // `blobs` is not a rule's table: the turnus rule reads `kinder`;
    // a 12 MB row beside a write to it in one transaction.
    let serve = s.serve(&[]);
    s.cache(&["turnus_data_1", "user_profile_5", "unrelated"]);
    let big = "x".repeat(12 << 20);
    s.sql(&format!(
        "BEGIN; INSERT INTO blobs VALUES (1, 1, '{big}');
         UPDATE kinder SET notes = 'b' WHERE id = 1; COMMIT;"
    ));
    serve.wait_for_keys(|| s.keys(), &set_of(&["user_profile_5", "unrelated"]));
    // InnoDB and MyISAM in one transaction: `user_profiles` is the turnus
    // rule's; MyISAM's `legacy` is logged apart, at once.
    s.sql(
        "BEGIN; INSERT INTO legacy VALUES (1, 5);
         INSERT INTO user_profiles VALUES (1, 5, 'Ada'); COMMIT;",
    );
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));

    // The server restarted: the stream ends, `serve` reconnects and reads
    // from where it was.
    s.db.restart();
    s.cache(&["turnus_data_1"]);
    s.sql("UPDATE kinder SET notes = 'c' WHERE id = 1");
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["mysql"]["oddities"], 0, "{summary}");
    assert!(
        summary["mysql"]["reconnects"].as_u64() >= Some(1),
        "{summary}"
    );
}

/// Two `serve` processes on one server: one reads (it holds the lease in
/// Redis), the other stands by without disturbing it, and takes over from
/// the stored position when the first dies.
#[test]
fn a_standby_takes_over_when_the_reader_dies() {
    let s = setup("standby", &[]);
    s.sql("INSERT INTO kinder VALUES (1, 1, 'a'), (2, 2, 'b')");
    let first = s.serve(&[]);
    first.wait_until("the first reads", Duration::from_secs(30), || {
        first.log().contains("this process reads the binary log")
    });
    let second = s.serve(&[]);
    second.wait_until("the second stands by", Duration::from_secs(30), || {
        second.log().contains("stands by")
    });
    s.cache(&["turnus_data_1"]);
    s.sql("UPDATE kinder SET notes = 'x' WHERE id = 1");
    first.wait_for_keys(|| s.keys(), &set_of(&[]));
    assert!(
        !first.log().contains("lost its stream"),
        "the standby disturbed the reader:\n{}",
        first.log()
    );
    first.kill();
    // Written while nobody reads: the standby reads it once it takes over.
    s.cache(&["turnus_data_2"]);
    s.sql("UPDATE kinder SET notes = 'y' WHERE id = 2");
    second.wait_for_keys(|| s.keys(), &set_of(&[]));
    assert!(second.log().contains("this process reads the binary log"));
    let (status, summary) = second.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

/// `kill -9` of `serve` in the middle of 5,000 transactions, then a
/// restart: every key is gone, and the stored position is the last
/// transaction's.
#[test]
fn a_kill_in_the_middle_of_5000_transactions_loses_nothing() {
    let s = setup("kill", &[]);
    let serve = s.serve(&[]);
    let keys: Vec<String> = (0..5000).map(|i| format!("turnus_data_{i}")).collect();
    {
        let mut conn = s.redis.connection();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.set(k, "cached").ignore();
        }
        pipe.exec(&mut conn).unwrap();
    }
    let statements: String = (0..5000)
        .map(|i| format!("INSERT INTO kinder VALUES ({i}, {i}, 'n');\n"))
        .collect();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| s.sql(&statements));
        // Some applied, most not yet.
        serve.wait_until("some keys are gone", Duration::from_secs(30), || {
            s.keys().len() < 4990
        });
        serve.kill();
        writer.join().unwrap();
    });
    let left = s.keys().len();
    assert!(left > 0, "everything was applied before the kill: no test");
    let serve = s.serve(&[]);
    serve.wait_for_keys(|| s.keys(), &set_of(&[]));
    s.wait_stored(&serve, "the last transaction's position is stored");
    let (status, summary) = serve.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

/// The hedge rule's patterns and tags and the point of sale's shop tags,
/// from inserts, updates and deletes, one of them in a multi-statement
/// transaction.
#[test]
fn the_hedge_and_point_of_sale_rules_invalidate_their_patterns_and_tags() {
    let s = setup_with_rules(
        "hedge-pos",
        &[],
        &[(guests::HEDGE, "hedge.wasm"), (guests::POS, "pos.wasm")],
    );
    s.sql(
        "INSERT INTO products VALUES (1, 7, 'tea'), (2, 8, 'coffee');
         INSERT INTO bills VALUES (1, 8, 9.50);",
    );
    let serve = s.serve(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = invalidator::cache::Cache::new(std::sync::Arc::new(
        invalidator::redis::Redis::open(&s.redis.url(), Default::default()).unwrap(),
    ));
    rt.block_on(async {
        for (key, tag) in [
            ("shop7-catalog", "shop:7:catalog"),
            ("shop8-revenue", "shop:8:revenue"),
            ("eur-report", "currency:EUR"),
        ] {
            cache
                .set(key, b"{}", None, &[tag.to_owned()])
                .await
                .unwrap();
        }
    });
    s.cache(&[
        "report_v_available_amounts_fast_7",
        "gl_hedge_positions_v1",
        "unrelated",
    ]);
    let mut expected = s.keys();

    // The hedge rule: a table's views, by pattern, and its currency tag.
    s.sql("INSERT INTO hedge_instructions VALUES (1, 'EUR', 9)");
    for gone in [
        "report_v_available_amounts_fast_7",
        "gl_hedge_positions_v1",
        "eur-report",
        "inv:tag:currency:EUR",
    ] {
        expected.remove(gone);
    }
    serve.wait_for_keys(|| s.keys(), &expected);

    // The point of sale: an update and a delete in one transaction, each
    // its shop's tags.
    s.sql(
        "BEGIN; UPDATE products SET name = 'green tea' WHERE id = 1;
         DELETE FROM bills WHERE id = 1; COMMIT;",
    );
    for gone in [
        "shop7-catalog",
        "inv:tag:shop:7:catalog",
        "shop8-revenue",
        "inv:tag:shop:8:revenue",
    ] {
        expected.remove(gone);
    }
    serve.wait_for_keys(|| s.keys(), &expected);
    assert!(s.keys().contains("unrelated"));
    let (_, summary) = serve.stop(Duration::from_secs(30));
    assert_eq!(summary["mysql"]["oddities"], 0, "{summary}");
}

/// On a server with no transaction in its log yet, a stream lost before
/// the first transaction is read opens again where the first one began,
/// not at the log's end then: a write made while it was down is read.
/// (Each reconnect used to read the log's end afresh, skipping it.)
#[test]
fn a_stream_lost_before_its_first_transaction_skips_nothing() {
    let db = MariadbServer::start_with(&[]);
    // The schema kept out of the log: the log holds no transaction.
    db.sql(None, &format!("SET sql_log_bin = 0; {SCHEMA}"));
    assert_eq!(db.sql(None, "SELECT @@gtid_binlog_pos").trim(), "");
    let rules = fresh_dir("mysql-first-reconnect");
    deploy(guests::DEALERSHIP, &rules.join("dealership.wasm"));
    let s = Setup {
        db,
        redis: RedisServer::start(),
        rules,
    };
    s.cache(&["vehicle:VIN-A", "unrelated"]);
    let serve = s.serve(&[]);
    let streaming = || {
        s.sql(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'",
        )
        .trim()
            == "1"
    };
    serve.wait_until("serve streams", Duration::from_secs(30), streaming);
    // The stream is cut while serve cannot reconnect, and a write lands.
    serve.signal(SIGSTOP);
    s.sql(
        "SELECT CONCAT('KILL ', id) INTO @kill FROM information_schema.processlist \
         WHERE command LIKE 'Binlog Dump%'; \
         PREPARE k FROM @kill; EXECUTE k;",
    );
    s.sql("INSERT INTO inventory VALUES ('VIN-A', 21500, 'available')");
    serve.signal(SIGCONT);
    serve.wait_for_keys(|| s.keys(), &set_of(&["unrelated"]));
}
