//! Invalidations applied to real Redis servers that each test starts on
//! free ports: a single node and a local cluster of three primaries run the
//! same cases. Also: the transaction guard, the cache client and its tag
//! layout, bounded pending work, and Redis killed in the middle of a stream.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use invalidator::cache::Cache;
use invalidator::commit::Value;
use invalidator::layout::tags;
use invalidator::pipeline::{Invalidator, PipelineConfig};
use invalidator::redis::{Redis, RedisConfig};
use invalidator::rules::{LoadedRule, RuleSet, Runtime, SandboxConfig};
use invalidator::sink::{self, Applied};
use invalidator::targets::{Target, TargetSet};
use invalidator_tests::{RedisCluster, RedisServer, all_keys, guests};

/// A Redis deployment under test.
enum Deployment {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Deployment {
    fn start(cluster: bool) -> Self {
        if cluster {
            Deployment::Cluster(RedisCluster::start(3))
        } else {
            Deployment::Single(RedisServer::start())
        }
    }

    fn url(&self) -> String {
        match self {
            Deployment::Single(s) => s.url(),
            Deployment::Cluster(c) => c.url(),
        }
    }

    fn redis(&self) -> Arc<Redis> {
        Arc::new(Redis::open(&self.url(), RedisConfig::default()).unwrap())
    }

    /// Sets each key to `v`, untagged.
    fn seed(&self, keys: &[String]) {
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.set(k, "v").ignore();
        }
        match self {
            Deployment::Single(s) => pipe.exec(&mut s.connection()).unwrap(),
            Deployment::Cluster(c) => {
                // A cluster pipeline must not span slots: one key at a time.
                let mut conn = c.connection();
                for k in keys {
                    let () = redis::cmd("SET").arg(k).arg("v").query(&mut conn).unwrap();
                }
            }
        }
    }

    /// Every key, across every node.
    fn keys(&self) -> BTreeSet<String> {
        match self {
            Deployment::Single(s) => all_keys(&mut s.connection()).into_iter().collect(),
            Deployment::Cluster(c) => c.all_keys().into_iter().collect(),
        }
    }
}

/// Runs a case on a single node and on a cluster.
macro_rules! on_single_node_and_cluster {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single_node() {
                super::$case(super::Deployment::start(false)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$case(super::Deployment::start(true)).await;
            }
        }
    };
}

fn rules(paths: &[&str]) -> Arc<RuleSet> {
    let runtime = Runtime::new(SandboxConfig::default()).unwrap();
    let rules = paths
        .iter()
        .map(|p| LoadedRule::load(&runtime, p.as_ref()).unwrap())
        .collect();
    Arc::new(RuleSet::new(rules).unwrap())
}

/// Quick retries, so that failure cases finish fast; no background pruning.
fn config() -> PipelineConfig {
    PipelineConfig {
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        prune_every: None,
        ..PipelineConfig::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Applies `targets` to `redis`, which must succeed, and says what it did.
async fn apply(redis: &Redis, targets: &mut TargetSet) -> Applied {
    let mut applied = Applied::default();
    sink::apply(redis, targets, &mut applied).await.unwrap();
    applied
}

async fn flush(invalidator: &Invalidator) {
    invalidator
        .flush_timeout(Duration::from_secs(20))
        .await
        .expect("invalidations applied");
}

// ---------------------------------------------------------------------------
// Each kind of target, straight through the sink.

async fn each_target_kind_removes_exactly_its_keys(d: Deployment) {
    let redis = d.redis();
    let cache = Cache::new(redis.clone());
    d.seed(&strings(&["a:1", "a:2", "b:1", "b:22", "bb:1", "c:1"]));
    for key in ["x:1", "x:2", "x:3"] {
        cache.set(key, b"v", None, &strings(&["t1"])).await.unwrap();
    }
    cache
        .set("y:1", b"v", None, &strings(&["t2"]))
        .await
        .unwrap();
    let mut targets: TargetSet = [
        Target::Key("a:1".into()),
        Target::Key("missing".into()),
        Target::Pattern("b:*".into()),
        Target::Tag("t1".into()),
        Target::Tag("never-used".into()),
    ]
    .into_iter()
    .collect();
    // Listing what it applied, as explain and the feed have it do.
    let mut applied = Applied::listing().removing(100);
    sink::apply(&redis, &mut targets, &mut applied)
        .await
        .unwrap();
    assert!(targets.is_empty(), "everything applied: {targets:?}");
    let mut listed = applied.tag_members.take().expect("listed");
    listed.sort_by(|a, b| a.tag.cmp(&b.tag));
    for tag in &mut listed {
        tag.members.sort();
    }
    let listed: Vec<(&str, &[String])> = listed
        .iter()
        .map(|t| (t.tag.as_str(), t.members.as_slice()))
        .collect();
    assert_eq!(
        listed,
        [
            ("never-used", &[][..]),
            ("t1", &strings(&["x:1", "x:2", "x:3"])[..]),
        ]
    );
    // The keys actually removed: the named key that existed (not the one
    // missing), the tag's and the pattern's.
    let removed = applied.removed.take().expect("removed listed");
    assert_eq!(removed.keys, ["a:1"]);
    let mut found = removed.found.clone();
    found.sort();
    assert_eq!(found, ["b:1", "b:22", "x:1", "x:2", "x:3"]);
    assert!(!removed.cut);
    let mut by_tag = std::mem::take(&mut applied.by_tag);
    by_tag.sort();
    assert_eq!(by_tag, [("t1".to_owned(), 3)]);
    assert_eq!(
        d.keys(),
        set_of(&["a:2", "bb:1", "c:1", "inv:tag:t2", "y:1"]),
        "only a:1, b:*, and the keys tagged t1 with their index are gone"
    );
    assert_eq!(
        applied,
        Applied {
            keys: 2,
            tags: 2,
            patterns: 1,
            deleted: 1 + 2 + 3,
            sweeps: 1,
            unapplied: Vec::new(),
            tag_members: None,
            removed: None,
            by_tag: Vec::new(),
            ..Applied::default()
        }
    );
}
on_single_node_and_cluster!(each_target_kind_removes_exactly_its_keys);

async fn one_sweep_serves_every_pending_pattern(d: Deployment) {
    let redis = d.redis();
    let mut keys = Vec::new();
    for shop in 0..40 {
        for item in 0..5 {
            keys.push(format!("shop:{shop}:item:{item}"));
        }
    }
    d.seed(&keys);
    // 20 patterns: the even shops' items, and one odd shop by a class.
    let mut targets: TargetSet = (0..40)
        .step_by(2)
        .map(|shop| Target::Pattern(format!("shop:{shop}:*")))
        .collect();
    targets.insert(Target::Pattern("shop:3[3]:item:?".into()));
    let applied = apply(&redis, &mut targets).await;
    assert_eq!(applied.sweeps, 1, "21 patterns, one sweep");
    assert_eq!(applied.patterns, 21);
    let expected: BTreeSet<String> = keys
        .iter()
        .filter(|k| {
            let shop: u32 = k.split(':').nth(1).unwrap().parse().unwrap();
            shop % 2 == 1 && shop != 33
        })
        .cloned()
        .collect();
    assert_eq!(d.keys(), expected);
    assert_eq!(applied.deleted, (keys.len() - expected.len()) as u64);
}
on_single_node_and_cluster!(one_sweep_serves_every_pending_pattern);

/// Large enough that each node's table has many buckets, so the sweep's
/// parts each walk their own range: every match must still be found.
async fn a_sweep_over_a_large_keyspace_misses_nothing(d: Deployment) {
    let redis = d.redis();
    let keys: Vec<String> = (0..30_000).map(|i| format!("k:{i}")).collect();
    d.seed(&keys);
    let mut targets: TargetSet = [
        Target::Pattern("k:*7".into()),
        Target::Pattern("k:1?".into()),
    ]
    .into_iter()
    .collect();
    let applied = apply(&redis, &mut targets).await;
    let expected: BTreeSet<String> = keys
        .iter()
        .filter(|k| !(k.ends_with('7') || (k.len() == 4 && k.starts_with("k:1"))))
        .cloned()
        .collect();
    assert_eq!(applied.deleted, (keys.len() - expected.len()) as u64);
    assert_eq!(d.keys(), expected);
}
on_single_node_and_cluster!(a_sweep_over_a_large_keyspace_misses_nothing);

async fn a_huge_tag_is_deleted_chunk_by_chunk(d: Deployment) {
    let redis = d.redis();
    let cache = Cache::new(redis.clone());
    let n = tags::TAG_CHUNK * 2 + 77;
    let tag = strings(&["huge"]);
    for i in 0..n {
        cache
            .set(
                &format!("member:{i}"),
                b"v",
                Some(Duration::from_secs(600)),
                &tag,
            )
            .await
            .unwrap();
    }
    cache.set("bystander", b"v", None, &[]).await.unwrap();
    let (deleted, listed) = tags::invalidate(&redis, "huge", true).await.unwrap();
    assert_eq!(deleted, n as u64);
    assert_eq!(d.keys(), set_of(&["bystander"]), "members and index gone");
    // Asked to, it lists every member it took, once (what explain keeps).
    let listed: BTreeSet<String> = listed.into_iter().collect();
    let members: BTreeSet<String> = (0..n).map(|i| format!("member:{i}")).collect();
    assert_eq!(listed, members);
}
on_single_node_and_cluster!(a_huge_tag_is_deleted_chunk_by_chunk);

// ---------------------------------------------------------------------------
// The seed scenarios, end to end through the pipeline.

async fn tagged_offers_vanish_when_a_cars_price_changes(d: Deployment) {
    let redis = d.redis();
    let cache = Cache::new(redis.clone());
    let invalidator = Invalidator::start(rules(&[guests::DEALERSHIP]), redis, config());
    for (offer, vin) in [(1, "VIN-A"), (2, "VIN-A"), (3, "VIN-B")] {
        let tags = vec![format!("offers:vehicle:{vin}")];
        cache
            .set(
                &format!("offer:{offer}"),
                b"{}",
                Some(Duration::from_secs(600)),
                &tags,
            )
            .await
            .unwrap();
    }
    d.seed(&strings(&["vehicle:VIN-A", "vehicle:VIN-B"]));

    let mut tx = invalidator.begin("reprice");
    tx.update(
        "inventory",
        [("vin", "VIN-A")],
        [
            ("vin", Value::from("VIN-A")),
            ("price", 21_500.into()),
            ("status", "available".into()),
        ],
        [
            ("vin", Value::from("VIN-A")),
            ("price", 19_900.into()),
            ("status", "available".into()),
        ],
    );
    tx.commit();
    flush(&invalidator).await;

    assert_eq!(
        d.keys(),
        set_of(&["inv:tag:offers:vehicle:VIN-B", "offer:3", "vehicle:VIN-B"]),
        "VIN-A's key and tagged offers are gone, VIN-B's stay"
    );
    assert!(cache.get("offer:1").await.unwrap().is_none());
    assert!(cache.get("offer:3").await.unwrap().is_some());
    let stats = invalidator.stats();
    assert_eq!((stats.commits, stats.keys, stats.tags), (1, 1, 2));
    assert_eq!(stats.deleted, 3, "vehicle:VIN-A, offer:1, offer:2");
}
on_single_node_and_cluster!(tagged_offers_vanish_when_a_cars_price_changes);

async fn a_moved_child_invalidates_both_turnus_caches(d: Deployment) {
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), d.redis(), config());
    d.seed(&strings(&[
        "turnus_data_4",
        "turnus_data_5",
        "turnus_data_6",
    ]));
    let mut tx = invalidator.begin("move-mia");
    tx.update(
        "kinder",
        [("id", 31)],
        [
            ("id", Value::from(31)),
            ("turnus_id", 4.into()),
            ("name", "Mia".into()),
        ],
        [
            ("id", Value::from(31)),
            ("turnus_id", 5.into()),
            ("name", "Mia".into()),
        ],
    );
    tx.commit();
    flush(&invalidator).await;
    assert_eq!(d.keys(), set_of(&["turnus_data_6"]));
}
on_single_node_and_cluster!(a_moved_child_invalidates_both_turnus_caches);

/// A Django project with `KEY_PREFIX = "site"` and `VERSION = 2` stores
/// `turnus_data_4` at `site:2:turnus_data_4`: with the key prefix set, the
/// rule's keys, and its fallback patterns when it fails, reach those keys,
/// and the same names without the prefix are left alone.
async fn a_key_prefix_reaches_the_keys_as_the_application_stores_them(d: Deployment) {
    let config = PipelineConfig {
        key_prefix: "site:2:".into(),
        ..config()
    };
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), d.redis(), config);
    d.seed(&strings(&[
        "site:2:turnus_data_4",
        "site:2:turnus_data_5",
        "site:2:user_profile_9",
        "turnus_data_4",
        "user_profile_9",
        "site:1:user_profile_9",
    ]));
    let mut tx = invalidator.begin("prefixed");
    tx.insert(
        "kinder",
        [("id", 1)],
        [("id", Value::from(1)), ("turnus_id", 4.into())],
    );
    tx.commit();
    flush(&invalidator).await;
    assert!(!d.keys().contains("site:2:turnus_data_4"), "{:?}", d.keys());
    // No turnus: the rule fails, and its fallback patterns apply, prefixed.
    let mut tx = invalidator.begin("no-turnus");
    tx.insert("notizen", [("id", 1)], [("id", 1)]);
    tx.commit();
    flush(&invalidator).await;
    assert_eq!(
        d.keys(),
        set_of(&["turnus_data_4", "user_profile_9", "site:1:user_profile_9"])
    );
}
on_single_node_and_cluster!(a_key_prefix_reaches_the_keys_as_the_application_stores_them);

/// Work retried after a Redis error keeps its key prefix once: put back
/// into the pending work, it was prefixed a second time, and the retry
/// deleted `site:2:site:2:turnus_data_4`, leaving the real key stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_prefix_survives_a_retry() {
    let mut server = RedisServer::start_persistent();
    {
        let mut conn = server.connection();
        let () = redis::cmd("SET")
            .arg("site:2:turnus_data_4")
            .arg("v")
            .query(&mut conn)
            .unwrap();
    }
    server.kill();
    let redis = Arc::new(Redis::open(&server.url(), RedisConfig::default()).unwrap());
    let config = PipelineConfig {
        key_prefix: "site:2:".into(),
        ..config()
    };
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), redis, config);
    let mut tx = invalidator.begin("while-down");
    tx.insert("geld", [("id", 1)], [("id", 1), ("turnus_id", 4)]);
    tx.commit();
    // Failing and being retried meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        invalidator.stats().retries >= 1,
        "{:?}",
        invalidator.stats()
    );
    server.restart();
    flush(&invalidator).await;
    let remaining: BTreeSet<String> = all_keys(&mut server.connection()).into_iter().collect();
    assert!(remaining.is_empty(), "{remaining:?}");
}

// ---------------------------------------------------------------------------
// After commit only.

async fn rollback_or_a_dropped_guard_invalidates_nothing(d: Deployment) {
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), d.redis(), config());
    d.seed(&strings(&[
        "turnus_data_1",
        "turnus_data_2",
        "turnus_data_3",
    ]));
    let write = |tx: &mut invalidator::source::Transaction<'_>, turnus: i64| {
        tx.insert("geld", [("id", 1)], [("id", 1), ("turnus_id", turnus)]);
    };

    let mut rolled_back = invalidator.begin("t-rollback");
    write(&mut rolled_back, 1);
    rolled_back.rollback();
    {
        let mut dropped = invalidator.begin("t-dropped");
        write(&mut dropped, 2);
        // Dropped here, as when the code between begin and commit fails.
    }
    flush(&invalidator).await;
    assert_eq!(invalidator.stats().commits, 0, "nothing handed over");
    assert_eq!(d.keys().len(), 3, "nothing invalidated");

    let mut committed = invalidator.begin("t-commit");
    write(&mut committed, 3);
    committed.commit();
    flush(&invalidator).await;
    assert_eq!(d.keys(), set_of(&["turnus_data_1", "turnus_data_2"]));
}
on_single_node_and_cluster!(rollback_or_a_dropped_guard_invalidates_nothing);

// ---------------------------------------------------------------------------
// Swapping the rule set in service.

/// Rules swapped back and forth under a stream of commits: no commit is
/// lost, none is evaluated twice, and each is evaluated by one version
/// whole (v2 adds the dealership rule, so a commit's car key is gone
/// exactly when v2 evaluated it, and the versions change only at swaps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_rules_under_a_stream_gives_each_commit_one_version() {
    let server = RedisServer::start();
    let n: i64 = 400;
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.set(format!("turnus_data_{i}"), "v").ignore();
        pipe.set(format!("vehicle:V{i}"), "v").ignore();
    }
    pipe.exec(&mut server.connection()).unwrap();
    let (v1, v2) = (
        rules(&[guests::TURNUS]),
        rules(&[guests::TURNUS, guests::DEALERSHIP]),
    );
    let redis = Arc::new(Redis::open(&server.url(), RedisConfig::default()).unwrap());
    let invalidator = Invalidator::start(v1.clone(), redis, config());
    let mut swaps = 0;
    for i in 0..n {
        let vin = format!("V{i}");
        let mut tx = invalidator.begin(format!("t-{i}"));
        tx.insert("geld", [("id", i)], [("id", i), ("turnus_id", i)]);
        tx.update(
            "inventory",
            [("vin", vin.as_str())],
            [("vin", Value::from(vin.as_str())), ("price", 100.into())],
            [("vin", Value::from(vin.as_str())), ("price", 90.into())],
        );
        tx.commit();
        if i % 50 == 25 {
            let next = if swaps % 2 == 0 {
                v2.clone()
            } else {
                v1.clone()
            };
            invalidator.swap_rules(next);
            swaps += 1;
        }
        if i == 10 || i == 30 {
            // Settle once on each version, so that both surely serve some
            // commits however the machine schedules the rest.
            flush(&invalidator).await;
        } else if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    flush(&invalidator).await;
    let left: BTreeSet<String> = all_keys(&mut server.connection()).into_iter().collect();
    assert!(
        (0..n).all(|i| !left.contains(&format!("turnus_data_{i}"))),
        "every commit was evaluated by some version"
    );
    let by_v2: Vec<bool> = (0..n)
        .map(|i| !left.contains(&format!("vehicle:V{i}")))
        .collect();
    let changes = by_v2.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        by_v2.iter().any(|&b| b) && by_v2.iter().any(|&b| !b),
        "both versions served"
    );
    assert!(
        changes <= swaps,
        "{changes} version changes for {swaps} swaps"
    );
    assert!(!by_v2[0], "the first commits ran on v1");
    let stats = invalidator.stats();
    assert_eq!(
        (stats.commits, stats.evaluated, stats.swaps),
        (n as u64, n as u64, swaps as u64)
    );
}

// ---------------------------------------------------------------------------
// Failures: Redis killed, and work beyond its bound.

/// A stream of commits; Redis is killed in the middle and started again
/// while commits keep coming. Afterwards exactly the keys some commit
/// invalidated are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_in_the_middle_of_a_stream_loses_nothing() {
    let mut server = RedisServer::start_persistent();
    let keys: Vec<String> = (0..400).map(|i| format!("turnus_data_{i}")).collect();
    {
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.set(k, "v").ignore();
        }
        pipe.exec(&mut server.connection()).unwrap();
    }
    let redis = Arc::new(Redis::open(&server.url(), RedisConfig::default()).unwrap());
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), redis, config());
    let mut expected_gone = BTreeSet::new();
    for i in 0..300 {
        // Every third turnus, through a child row that moves turnus.
        let (from, to) = (i * 3 % 400, (i * 3 + 1) % 400);
        let mut tx = invalidator.begin(format!("t-{i}"));
        tx.update(
            "kinder",
            [("id", i)],
            [("id", i), ("turnus_id", from)],
            [("id", i), ("turnus_id", to)],
        );
        tx.commit();
        expected_gone.insert(format!("turnus_data_{from}"));
        expected_gone.insert(format!("turnus_data_{to}"));
        match i {
            100 => server.kill(),
            200 => {
                // Commits 101..200 arrived while Redis was down.
                let stats = invalidator.stats();
                assert!(stats.retries > 0, "the pipeline retried: {stats:?}");
                server.restart();
            }
            _ => {}
        }
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    flush(&invalidator).await;
    let remaining: BTreeSet<String> = all_keys(&mut server.connection()).into_iter().collect();
    let expected: BTreeSet<String> = keys
        .iter()
        .filter(|k| !expected_gone.contains(*k))
        .cloned()
        .collect();
    assert_eq!(
        remaining, expected,
        "every invalidated key gone, every other key kept"
    );
    let stats = invalidator.stats();
    assert_eq!(stats.commits, 300);
    assert_eq!(stats.collapses, 0);
    assert!(
        stats.errors > 0 && stats.retries >= stats.errors,
        "{stats:?}"
    );
}

/// A Redis that stops answering for a while (every client paused) makes
/// the pipeline time out and retry; the writer never waits, and the work
/// is applied once Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_retried_while_the_writer_goes_on() {
    let server = RedisServer::start();
    server.connection(); // ready
    let keys = strings(&["turnus_data_1", "turnus_data_2"]);
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.set(k, "v").ignore();
    }
    pipe.exec(&mut server.connection()).unwrap();
    let quick = RedisConfig {
        response_timeout: Duration::from_millis(100),
        ..RedisConfig::default()
    };
    let redis = Arc::new(Redis::open(&server.url(), quick).unwrap());
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), redis, config());
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(800)
        .arg("ALL")
        .query(&mut server.connection())
        .unwrap();
    let mut tx = invalidator.begin("during-pause");
    tx.insert("geld", [("id", 1)], [("id", 1), ("turnus_id", 1)]);
    tx.commit();
    // Handed over while Redis is paused: queued or pending, not applied.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = invalidator.stats();
    assert_eq!(stats.commits, 1);
    assert_eq!(stats.deleted, 0, "nothing applied while paused: {stats:?}");
    flush(&invalidator).await;
    let stats = invalidator.stats();
    assert!(stats.retries >= 1, "timed out and retried: {stats:?}");
    assert_eq!(stats.deleted, 1);
    let left: BTreeSet<String> = all_keys(&mut server.connection()).into_iter().collect();
    assert_eq!(left, set_of(&["turnus_data_2"]));
}

/// With Redis down, work beyond the bound collapses into the rules'
/// fallback, which is applied when Redis is back: more is invalidated,
/// nothing is missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_beyond_its_bound_collapses_into_the_fallback() {
    let mut server = RedisServer::start_persistent();
    let mut seeded: Vec<String> = (0..50).map(|i| format!("turnus_data_{i}")).collect();
    seeded.push("user_profile_1".into());
    seeded.push("unrelated".into());
    {
        let mut pipe = redis::pipe();
        for k in &seeded {
            pipe.set(k, "v").ignore();
        }
        pipe.exec(&mut server.connection()).unwrap();
    }
    server.kill();
    let redis = Arc::new(Redis::open(&server.url(), RedisConfig::default()).unwrap());
    let config = PipelineConfig {
        max_pending: 8,
        ..config()
    };
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), redis, config);
    for i in 0..20 {
        let mut tx = invalidator.begin(format!("t-{i}"));
        tx.insert("geld", [("id", i)], [("id", i), ("turnus_id", i)]);
        tx.commit();
    }
    // The writer never waited; the work is pending, collapsed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = invalidator.stats();
    assert!(stats.collapses >= 1, "{stats:?}");
    assert!(stats.pending <= 8, "{stats:?}");
    server.restart();
    flush(&invalidator).await;
    // turnus's fallback is `turnus_data_*` and `user_profile_*`.
    let remaining: BTreeSet<String> = all_keys(&mut server.connection()).into_iter().collect();
    assert_eq!(remaining, set_of(&["unrelated"]));
}

/// Keys removed are counted per rule, exactly, whatever else is on: two
/// rules' targets merged into one batch (keys, a tag, and a pattern whose
/// sweep removes more keys than any list keeps), each rule credited with
/// what it named.
async fn removed_keys_are_counted_per_rule(d: Deployment) {
    let mut keys: Vec<String> = (0..1500).map(|i| format!("turnus_data_{i}")).collect();
    keys.extend(strings(&[
        "user_profile_1",
        "customer:C1",
        "vehicle:V1",
        "kept",
    ]));
    d.seed(&keys);
    let redis = d.redis();
    Cache::new(redis.clone())
        .set("list:inventory", b"v", None, &strings(&["inventory"]))
        .await
        .unwrap();
    let invalidator = Invalidator::start(
        rules(&[guests::TURNUS, guests::DEALERSHIP]),
        redis,
        config(),
    );
    // One commit: both rules' targets go into one batch.
    let mut tx = invalidator.begin("both");
    tx.insert("auslagerorte", [("id", 1)], [("id", 1)]);
    tx.insert("user_profiles", [("id", 1)], [("id", 1), ("user_id", 1)]);
    tx.insert("customers", [("id", "C1")], [("id", "C1")]);
    tx.insert("inventory", [("vin", "V1")], [("vin", "V1")]);
    tx.commit();
    flush(&invalidator).await;
    assert_eq!(d.keys(), set_of(&["kept"]));
    let counts = invalidator.removals();
    assert_eq!(
        counts.by_rule,
        // turnus: its pattern's 1,500 keys and its user's profile;
        // dealership: the customer, the vehicle, and the list its tag held.
        [("dealership".to_owned(), 3), ("turnus".to_owned(), 1501)].into(),
        "{counts:?}"
    );
    assert_eq!(counts.by_tag, [("inventory".to_owned(), 1)].into());
}
on_single_node_and_cluster!(removed_keys_are_counted_per_rule);

// ---------------------------------------------------------------------------
// The cache client and the tag layout.

async fn expired_keys_leave_their_tag_index(d: Deployment) {
    let redis = d.redis();
    let cache = Cache::new(redis.clone());
    let short = Some(Duration::from_millis(100));
    let tag = strings(&["t"]);
    cache.set("short", b"v", short, &tag).await.unwrap();
    cache.set("forever", b"v", None, &tag).await.unwrap();
    cache
        .set("lonely", b"v", short, &strings(&["u"]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;

    // The next write to a tag prunes its expired members.
    cache
        .set("fresh", b"v", Some(Duration::from_secs(60)), &tag)
        .await
        .unwrap();
    let members = |index: &'static str| {
        let redis = redis.clone();
        async move {
            let mut m: Vec<String> = redis
                .query(redis::cmd("ZRANGE").arg(index).arg(0).arg(-1))
                .await
                .unwrap();
            m.sort();
            m
        }
    };
    assert_eq!(members("inv:tag:t").await, ["forever", "fresh"]);
    // An index nobody writes to is pruned by the janitor's pass.
    assert_eq!(members("inv:tag:u").await, ["lonely"]);
    let removed = tags::prune(&redis).await.unwrap();
    assert_eq!(removed, 1);
    assert!(members("inv:tag:u").await.is_empty());
    assert!(!d.keys().contains("inv:tag:u"), "an emptied index is gone");
}
on_single_node_and_cluster!(expired_keys_leave_their_tag_index);

/// A tag index overwritten by another client with another type cannot be
/// used; it must not block the invalidations behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_index_of_the_wrong_type_does_not_block_the_rest() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    let () = redis::cmd("SET")
        .arg("inv:tag:broken")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let redis = Redis::open(&server.url(), RedisConfig::default()).unwrap();
    let mut targets: TargetSet = [Target::Tag("broken".into()), Target::Key("k".into())]
        .into_iter()
        .collect();
    let applied = apply(&redis, &mut targets).await;
    assert_eq!(applied.deleted, 1);
    assert_eq!(applied.unapplied.len(), 1);
    assert_eq!(applied.unapplied[0].target, Target::Tag("broken".into()));
    assert!(
        applied.unapplied[0].error.contains("WRONGTYPE"),
        "{:?}",
        applied.unapplied
    );
    assert!(targets.is_empty());
}

/// Tag indexes carry no TTL, so the `volatile-*` eviction policies never
/// evict them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_indexes_have_no_ttl_and_risky_eviction_policies_are_reported() {
    let server = RedisServer::with_args(&["--save", "", "--maxmemory-policy", "allkeys-lru"]);
    let cache = Cache::new(Arc::new(
        Redis::open(&server.url(), RedisConfig::default()).unwrap(),
    ));
    cache
        .set("k", b"v", Some(Duration::from_secs(60)), &strings(&["t"]))
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("inv:tag:t")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(ttl, -1, "the index has no expiry");
    assert_eq!(cache.check_eviction_policy().await.unwrap(), "allkeys-lru");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_counts_hits_and_misses_and_rejects_bad_input() {
    let server = RedisServer::start();
    let cache = Cache::new(Arc::new(
        Redis::open(&server.url(), RedisConfig::default()).unwrap(),
    ));
    cache.set("k", b"value", None, &[]).await.unwrap();
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    assert_eq!(cache.get("nope").await.unwrap(), None);
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    let counts = cache.stats();
    assert_eq!((counts.hits, counts.misses), (2, 1));

    let err = cache.set("inv:tag:x", b"v", None, &[]).await.unwrap_err();
    assert!(err.to_string().contains("`inv:tag:x`"), "{err}");
    let err = cache
        .set("k", b"v", Some(Duration::ZERO), &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ttl of key `k` is zero"), "{err}");
    let err = cache
        .set("k", b"v", None, &strings(&[""]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

/// A client in another language follows the documented layout by running
/// the bundled script; the host then invalidates its keys by tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_script_tags_keys_for_any_client() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    let () = redis::cmd("EVAL")
        .arg(tags::TAGGED_SET_LUA)
        .arg(3)
        .arg("page:home")
        .arg("inv:tag:pages")
        .arg("inv:tag:home")
        .arg("<html>")
        .arg(60_000)
        .query::<i64>(&mut conn)
        .map(|n| assert_eq!(n, 2))
        .unwrap();
    let redis = Redis::open(&server.url(), RedisConfig::default()).unwrap();
    assert_eq!(tags::invalidate(&redis, "home", false).await.unwrap().0, 1);
    let left: Vec<String> = all_keys(&mut conn);
    assert_eq!(
        left,
        ["inv:tag:pages"],
        "the other tag's index stays until pruned or used"
    );
}

/// A user the ACL lets touch only the keys `allowed:*` (and tag indexes).
fn limited_user(server: &RedisServer) -> String {
    server.limited_user("limited", &["allowed:*", "inv:*"])
}

/// A key, a tag and a pattern Redis refuses for good are given up on,
/// each reported with its error, and every other target is still applied:
/// before, the first `NOPERM` failed the whole apply, to be retried for
/// ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_redis_refuses_for_good_are_given_up_and_the_rest_applied() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    for key in ["allowed:1", "allowed:2", "secret:1", "secret:2"] {
        let () = redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query(&mut conn)
            .unwrap();
    }
    let () = redis::cmd("SET")
        .arg("inv:tag:broken")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let redis = Redis::open(&limited_user(&server), RedisConfig::default()).unwrap();
    let mut targets: TargetSet = [
        Target::Key("allowed:1".into()),
        Target::Key("secret:1".into()),
        Target::Tag("broken".into()),
    ]
    .into_iter()
    .collect();
    let applied = apply(&redis, &mut targets).await;
    assert!(targets.is_empty(), "nothing left to retry: {targets:?}");
    assert_eq!((applied.keys, applied.deleted), (2, 1));
    let refused: Vec<(Target, bool)> = applied
        .unapplied
        .iter()
        .map(|u| (u.target.clone(), u.error.contains("NOPERM")))
        .collect();
    assert_eq!(
        refused,
        [
            (Target::Key("secret:1".into()), true),
            (Target::Tag("broken".into()), false),
        ]
    );
    assert!(
        applied.unapplied[1].error.contains("WRONGTYPE"),
        "{:?}",
        applied.unapplied
    );
    let left = all_keys(&mut conn);
    assert!(!left.contains(&"allowed:1".to_owned()), "{left:?}");
    assert!(left.contains(&"secret:1".to_owned()), "{left:?}");

    // A pattern whose matches cannot be unlinked: the sweep is refused.
    let mut targets: TargetSet = [Target::Pattern("secret:*".into())].into_iter().collect();
    let applied = apply(&redis, &mut targets).await;
    assert_eq!(applied.unapplied.len(), 1, "{:?}", applied.unapplied);
    assert_eq!(
        applied.unapplied[0].target,
        Target::Pattern("secret:*".into())
    );

    // An error about the moment stays an error, for the caller to retry.
    drop(server);
    let mut targets: TargetSet = [Target::Key("allowed:2".into())].into_iter().collect();
    let mut applied = Applied::default();
    let err = sink::apply(&redis, &mut targets, &mut applied)
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert_eq!(targets.len(), 1, "the key stays to be retried");
}

/// Through the pipeline: a commit whose target Redis refuses for good is
/// reported (and counted) instead of blocking the commits behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_reports_a_refused_commit_and_goes_on() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    for key in ["allowed:1", "secret:1"] {
        let () = redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query(&mut conn)
            .unwrap();
    }
    let redis = Redis::open(&limited_user(&server), RedisConfig::default()).unwrap();
    let rules = Arc::new(RuleSet::new(Vec::new()).unwrap());
    let invalidator = Invalidator::start(rules, redis, PipelineConfig::default());
    let refused = invalidator.invalidate([Target::Key("secret:1".into())].into_iter().collect());
    flush(&invalidator).await;
    let fine = invalidator.invalidate([Target::Key("allowed:1".into())].into_iter().collect());
    flush(&invalidator).await;
    let failure = invalidator
        .failure(refused)
        .expect("the refused commit is reported");
    assert!(failure.to_string().contains("key `secret:1`"), "{failure}");
    assert!(failure.to_string().contains("NOPERM"), "{failure}");
    assert!(invalidator.failure(fine).is_none());
    let stats = invalidator.stats();
    assert_eq!(
        (stats.unapplied, stats.failed_commits, stats.retries),
        (1, 1, 0)
    );
    assert!(!all_keys(&mut conn).contains(&"allowed:1".to_owned()));
}

// ---------------------------------------------------------------------------
// Leases: a value loaded before an invalidation is never stored after it.

async fn a_lease_is_defeated_by_an_invalidation_of_its_key_pattern_or_tag(d: Deployment) {
    let redis = d.redis();
    let cache = Cache::new(redis.clone());
    let invalidator = Invalidator::start(rules(&[]), redis.clone(), config());
    let tags = strings(&["t:lease"]);
    let ttl = Some(Duration::from_secs(60));
    for target in [
        Target::Key("lease:1".into()),
        Target::Pattern("lease:*".into()),
        Target::Tag("t:lease".into()),
    ] {
        let read_before_the_commit = || async {
            let mut set = TargetSet::new();
            set.insert(target.clone());
            let seq = invalidator.invalidate(set);
            invalidator.applied_up_to(seq).await;
            Ok::<_, std::convert::Infallible>(b"old".to_vec())
        };
        let got = cache
            .get_or_fill("lease:1", ttl, &tags, read_before_the_commit)
            .await
            .unwrap();
        assert_eq!(got, b"old", "the caller gets what it loaded");
        assert_eq!(
            cache.get("lease:1").await.unwrap(),
            None,
            "{target:?} came after the read: nothing is stored"
        );
    }
    // Undisturbed, the value is stored, indexed under its tag, and read back.
    let fresh = || async { Ok::<_, std::convert::Infallible>(b"fresh".to_vec()) };
    cache
        .get_or_fill("lease:1", ttl, &tags, fresh)
        .await
        .unwrap();
    let never = || async { Err::<Vec<u8>, _>("the loader of a hit is not called") };
    let got = cache
        .get_or_fill("lease:1", ttl, &tags, never)
        .await
        .unwrap();
    assert_eq!(got, b"fresh");
    assert_eq!(
        tags::invalidate(&redis, "t:lease", false).await.unwrap().0,
        1
    );
    // A failing loader gives the lease back.
    let failing = || async { Err::<Vec<u8>, _>("database down") };
    let err = cache.get_or_fill("lease:1", ttl, &tags, failing).await;
    assert!(err.is_err());
    assert!(d.keys().iter().all(|k| k != "lease:1"), "{:?}", d.keys());
}
on_single_node_and_cluster!(a_lease_is_defeated_by_an_invalidation_of_its_key_pattern_or_tag);

// ---------------------------------------------------------------------------
// A rule's patterns cannot hold everyone's invalidations up.

/// One commit whose rule returns 200 patterns of 999 `*a` each, then an
/// unrelated one, over 22,000 keys in `store`: the first call fails over
/// the pattern budget and its rule's fallback applies instead of a sweep
/// that took seconds; the second commit's key goes at once. Returns how
/// long the second commit's key took to go.
async fn expensive_patterns_hold_nothing_up(
    store: invalidator::sink::Store,
    present: impl Fn(&str) -> bool,
    count: impl Fn() -> usize,
) -> Duration {
    let invalidator =
        Invalidator::start(rules(&[guests::HOSTILE, guests::TURNUS]), store, config());
    let mut bomb = invalidator.begin("bomb");
    bomb.insert(
        "bomb",
        [("id", 1)],
        [
            ("id", Value::from(1)),
            ("n", 200.into()),
            ("stars", 999.into()),
        ],
    );
    bomb.commit();
    let started = std::time::Instant::now();
    let mut unrelated = invalidator.begin("unrelated");
    unrelated.insert("geld", [("id", 7)], [("id", 7), ("turnus_id", 7)]);
    unrelated.commit();
    while present("turnus_data_7") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the unrelated commit was never applied"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    println!("the unrelated commit's key went after {took:?}");
    flush(&invalidator).await;
    assert!(!present("hostile:fallback"), "the fallback applied");
    assert_eq!(count(), 22_000, "nothing else went");
    let set = invalidator.rule_set();
    let rule = &set.rules()[0];
    assert_eq!(rule.name(), "hostile");
    // Once alone, or twice when the two commits were evaluated as one batch
    // and then again one by one.
    let over = rule
        .counters()
        .failures_of(invalidator::rules::FailureKind::OverBudget);
    assert!((1..=2).contains(&over), "{over}");
    took
}

fn bomb_keyspace() -> Vec<String> {
    let mut keys: Vec<String> = (0..22_000).map(|i| format!("k:{i}:aaaaaaaaaa")).collect();
    keys.push("turnus_data_7".into());
    keys.push("hostile:fallback".into());
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_patterns_hold_nothing_up_on_a_single_node() {
    let d = Deployment::start(false);
    d.seed(&bomb_keyspace());
    let Deployment::Single(server) = &d else {
        unreachable!("a single node")
    };
    let conn = std::sync::Mutex::new(server.connection());
    let took = expensive_patterns_hold_nothing_up(
        invalidator::sink::Store::Redis(d.redis()),
        |key| {
            let exists: bool = redis::cmd("EXISTS")
                .arg(key)
                .query(&mut *conn.lock().unwrap())
                .unwrap();
            exists
        },
        || {
            redis::cmd("DBSIZE")
                .query::<usize>(&mut *conn.lock().unwrap())
                .unwrap()
        },
    )
    .await;
    println!("single node: the unrelated commit's key went after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_patterns_hold_nothing_up_in_the_in_process_store() {
    let memory = Arc::new(invalidator::sink::MemoryStore::new());
    for key in bomb_keyspace() {
        memory.set(&key, b"v", None, &[]);
    }
    let store = invalidator::sink::Store::Memory(memory.clone());
    let took =
        expensive_patterns_hold_nothing_up(store, |key| memory.get(key).is_some(), || memory.len())
            .await;
    println!("in-process store: the unrelated commit's key went after {took:?}");
}

/// A sweep over a large keyspace holds up no commit that needs none: a
/// commit that arrives while the hedge rule's patterns are being swept
/// over 400,000 keys has its key deleted before the sweep ends, and is
/// marked applied after it, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_holds_up_no_commit_that_needs_none() {
    let d = Deployment::start(false);
    let mut keys: Vec<String> = (0..400_000).map(|i| format!("page:{i}")).collect();
    keys.push("report_v_available_amounts_fast_7".into());
    keys.push("turnus_data_7".into());
    d.seed(&keys);
    let invalidator =
        Invalidator::start(rules(&[guests::HEDGE, guests::TURNUS]), d.redis(), config());
    let Deployment::Single(server) = &d else {
        unreachable!("a single node")
    };
    let mut conn = server.connection();
    let mut hedge = invalidator.begin("hedge");
    hedge.update(
        "position_nav_master",
        [("id", 1)],
        [("id", Value::from(1))],
        [("id", Value::from(1))],
    );
    hedge.commit();
    // The sweep is under way (it reads the keyspace a thousand keys at a
    // time) when the next commit comes.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(invalidator.stats().sweeps, 0, "the sweep is still running");
    let mut unrelated = invalidator.begin("unrelated");
    unrelated.insert("geld", [("id", 7)], [("id", 7), ("turnus_id", 7)]);
    unrelated.commit();
    let started = std::time::Instant::now();
    while exists(&mut conn, "turnus_data_7") {
        assert!(started.elapsed() < Duration::from_secs(30), "never applied");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stats = invalidator.stats();
    assert_eq!(
        stats.sweeps, 0,
        "the unrelated key went while the sweep was still running: {stats:?}"
    );
    flush(&invalidator).await;
    let stats = invalidator.stats();
    assert_eq!(stats.sweeps, 1, "{stats:?}");
    assert!(!exists(&mut conn, "report_v_available_amounts_fast_7"));
    assert!(exists(&mut conn, "page:1"));
}

/// A commit that arrives while the sweep is still connecting is applied,
/// and so is the sweep. The applier applies such a commit's keys while the
/// sweep runs; were the sweep left unpolled meanwhile, it would keep the
/// handle's one-connection-at-a-time lock that the keys wait on, and both
/// would wait for ever (seen as a flush that never ends after Redis came
/// back, and a failover that left keys behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_arrives_while_a_sweep_connects_is_applied() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    let mut pipe = redis::pipe();
    for k in [
        "turnus_data_1",
        "turnus_data_2",
        "user_profile_9",
        "unrelated",
    ] {
        pipe.set(k, "v").ignore();
    }
    pipe.exec(&mut conn).unwrap();
    // The handle connects lazily, on the sweep's first command; with
    // every client paused, that connection's first command is held up,
    // and the sweep with it, while the lock is taken.
    let no_replay = RedisConfig {
        replay_window: Duration::ZERO,
        ..RedisConfig::default()
    };
    let redis = Arc::new(Redis::open(&server.url(), no_replay).unwrap());
    let invalidator = Invalidator::start(rules(&[guests::TURNUS]), redis, config());
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query(&mut conn)
        .unwrap();
    let mut sweeping = invalidator.begin("sweeping");
    sweeping.insert("auslagerorte", [("id", 1)], [("id", 1)]);
    sweeping.commit();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(invalidator.stats().sweeps, 0, "the sweep is under way");
    let mut keyed = invalidator.begin("keyed");
    keyed.insert("user_profiles", [("id", 9)], [("id", 9), ("user_id", 9)]);
    keyed.commit();
    if let Err(e) = invalidator.flush_timeout(Duration::from_secs(15)).await {
        panic!("the applier never finished: {e:?}");
    }
    let left: BTreeSet<String> = all_keys(&mut server.connection()).into_iter().collect();
    assert_eq!(left, set_of(&["unrelated"]));
}

fn exists(conn: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query(conn).unwrap()
}

/// A cluster node that stops answering (stopped, its connections open)
/// fails the calls routed to it within the handle's bound, whatever the
/// client library does meanwhile: no call on the handle waits for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_cluster_node_fails_calls_within_the_bound() {
    let cluster = RedisCluster::start(3);
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let redis = Redis::open(&cluster.url(), RedisConfig::default()).unwrap();
    redis.unlink(&keys).await.unwrap();
    cluster.nodes()[0].signal(libc::SIGSTOP);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), redis.unlink(&keys)).await;
    let took = started.elapsed();
    cluster.nodes()[0].signal(libc::SIGCONT);
    let result = result.unwrap_or_else(|_| panic!("the call still waits after {took:?}"));
    assert!(result.is_err(), "a stopped node answered: {result:?}");
    assert!(took < Duration::from_secs(15), "failed only after {took:?}");
    // The node back, the handle works again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while redis.unlink(&keys).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "never worked again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A cluster primary that dies: every delete of the keys in its slots
/// fails until its slots have an owner again, however the client library
/// repairs its view meanwhile. redis-rs 1.8 splits a multi-slot `UNLINK`
/// itself and silently drops the part for a node it could not reconnect
/// to, answering with the rest's count as if whole: the applier counted
/// those deletes as done, and a failover then promoted a replica that
/// still served them (seen in the cluster failover test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_cluster_primary_fails_the_deletes_of_its_slots_instead_of_skipping_them() {
    // A long node timeout: the cluster stays `ok` (answering for the
    // other slots) while the test runs.
    let mut cluster = RedisCluster::with(invalidator_tests::ClusterSpec {
        primaries: 3,
        node_timeout_ms: Some(30_000),
        ..Default::default()
    });
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    {
        let mut conn = cluster.connection();
        for key in &keys {
            let () = redis::cmd("SET").arg(key).arg(1).query(&mut conn).unwrap();
        }
    }
    let on_first: usize = all_keys(&mut cluster.nodes()[0].connection()).len();
    assert!(on_first > 50, "the first primary holds {on_first} keys");
    let redis = Redis::open(&cluster.url(), RedisConfig::default()).unwrap();
    // Connected to every primary, then the first one dies.
    redis.unlink(&["warm-up"]).await.unwrap();
    cluster.kill(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut attempts = 0;
    while std::time::Instant::now() < deadline {
        attempts += 1;
        if let Ok(deleted) = redis.unlink(&keys).await {
            panic!(
                "attempt {attempts} reported success ({deleted} deleted) while the owner of \
                 {on_first} of the keys was dead"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(attempts > 3, "only {attempts} attempts in the time");
}
