//! `cargo xtask bench-redis`: how fast invalidations reach Redis, measured
//! against Redis itself on the same machine in the same run.
//!
//! 1. The reference: `redis-benchmark` sending pipelined `DEL`s (16 per
//!    round trip, 50 connections), the rate Redis sustains here.
//! 2. End to end: commits handed to the pipeline, through the `turnus`
//!    rule (one key per write, 10 writes per commit), until the keys are
//!    gone: keys removed per second.
//! 3. The pattern sweep over 1,000,000 keys: 100 patterns in one sweep,
//!    against one plain `SCAN MATCH` pass for a single pattern (and against
//!    our own sweep of that one pattern).
//! 4. Intake of one-write commits: `invalidator apply`'s path (JSON line
//!    read, parsed, the dealership rule, one exact key deleted) on 20,000
//!    commits of one customer update each: commits per second, printed as
//!    `one-write commits/s: N`. `cargo xtask bench-redis one-write` runs only
//!    this part.
//!
//! 5. Replica acknowledgements (`cargo xtask bench-redis replicas` runs only
//!    this part): the end-to-end figure on a primary with one replica,
//!    with `replicas = 1` (a `WAIT` per batch) against `0`, alternately
//!    in the same run. Last line: `replica-acked/unacked throughput ratio:
//!    X`.
//!
//! 6. The explain log (`cargo xtask bench-redis explain` runs only this
//!    part): the end-to-end and one-write figures with the log on (100,000
//!    targets, as `serve --explain` keeps) against off (the default),
//!    alternately in the same run; and what the tag script's listing of
//!    the members it took costs: 2,000 tags of 50 keys each invalidated
//!    through the sink, listing against not. Last line: `explain on/off
//!    ratio: end to end X, one-write Y, tags listed/unlisted Z`.
//!
//! 7. The invalidation feed (`cargo xtask bench-redis feed` runs only this
//!    part): the same figures with `--feed` on (an entry per applied
//!    batch, listing the keys removed) against off. Last line: `feed
//!    on/off ratio: end to end X, one-write Y, tags listed/unlisted Z`.
//!
//! Each figure is the median of several rounds; each ratio is taken within
//! a round, where both sides met the same machine, and the median ratio is
//! what the targets are set on, because this machine is shared and noisy.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use invalidator::commit::{Commit, Op, Value, Write};
use invalidator::pipeline::{Invalidator, PipelineConfig};
use invalidator::redis::{Redis, RedisConfig};
use invalidator::rules::{LoadedRule, RuleSet, Runtime, SandboxConfig};
use invalidator::sink::Applied;
use invalidator::sink::glob::PatternSet;
use invalidator::sink::sweep::sweep;
use invalidator::targets::{Target, TargetSet};
use invalidator_tests::{RedisServer, guests};

const ROUNDS: usize = 5;
const EXPLAIN_ROUNDS: usize = 9;
const E2E_KEYS: usize = 400_000;
const WRITES_PER_COMMIT: usize = 10;
const SWEEP_KEYS: usize = 1_000_000;
const ONE_WRITE_COMMITS: usize = 20_000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let server = RedisServer::with_args(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--enable-debug-command",
        "yes",
    ]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    if std::env::args().any(|a| a == "replicas") {
        drop(server);
        replicas(&runtime);
        return;
    }
    if std::env::args().any(|a| a == "explain") {
        let on = || PipelineConfig {
            explain_capacity: invalidator::pipeline::DEFAULT_EXPLAIN_CAPACITY,
            ..PipelineConfig::default()
        };
        on_against_off(&server, &runtime, "explain", on);
        return;
    }
    if std::env::args().any(|a| a == "feed") {
        let on = || PipelineConfig {
            feed: invalidator::pipeline::FeedConfig {
                stream: FEED.to_owned(),
                ..Default::default()
            },
            ..PipelineConfig::default()
        };
        on_against_off(&server, &runtime, "feed", on);
        return;
    }
    let only_one_write = std::env::args().any(|a| a == "one-write");
    let mut one_write_rates = Vec::new();
    for round in 1..=ROUNDS {
        let rate = runtime.block_on(one_write(&server, PipelineConfig::default()));
        println!("round {round}: one-write commits {rate:.0}/s");
        one_write_rates.push(rate);
    }
    let one_write_rate = median(one_write_rates);
    if only_one_write {
        println!("one-write commits/s: {one_write_rate:.0}");
        return;
    }
    let (mut reference, mut e2e, mut e2e_ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let r = redis_benchmark_del(&server);
        let e = runtime.block_on(end_to_end(&server));
        println!(
            "round {round}: redis-benchmark DEL {r:.0}/s, end to end {e:.0} keys/s, ratio {:.2}",
            e / r
        );
        reference.push(r);
        e2e.push(e);
        e2e_ratio.push(e / r);
    }
    let sweeps = runtime.block_on(pattern_sweeps(&server));
    println!(
        "redis-benchmark pipelined DEL: {:.0} keys/s (median of {ROUNDS})",
        median(reference)
    );
    println!(
        "end to end (turnus rule, {WRITES_PER_COMMIT} writes per commit, {E2E_KEYS} keys): \
         {:.0} keys removed/s (median of {ROUNDS})",
        median(e2e)
    );
    println!(
        "pattern sweep over {SWEEP_KEYS} keys (medians of {ROUNDS}): one SCAN pass {:.0} ms, \
         our sweep of one pattern {:.0} ms, of 100 patterns {:.0} ms",
        median(sweeps.plain) * 1e3,
        median(sweeps.one) * 1e3,
        median(sweeps.many) * 1e3
    );
    // Ratios are taken within each round, where both sides met the same
    // machine, then the median of the rounds.
    println!(
        "pattern sweep (100 patterns)/(our sweep of one pattern) ratio: {:.2}",
        median(sweeps.strict)
    );
    println!(
        "pattern sweep (100 patterns)/(one SCAN pass) ratio: {:.2}",
        median(sweeps.ratios)
    );
    println!("end-to-end/redis-benchmark ratio: {:.2}", median(e2e_ratio));
    println!("one-write commits/s: {one_write_rate:.0}");
}

/// Commits per second through `apply`'s path: from the first JSON line
/// read until the last key is gone, for `ONE_WRITE_COMMITS` commits of one
/// customer update each (the dealership rule: key `customer:{id}`, no tag,
/// since no offer-relevant column changes).
async fn one_write(server: &RedisServer, config: PipelineConfig) -> f64 {
    let mut conn = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..ONE_WRITE_COMMITS {
        pipe.set(format!("customer:C{i}"), "v").ignore();
    }
    pipe.exec(&mut conn).unwrap();
    let mut input = String::new();
    for i in 0..ONE_WRITE_COMMITS {
        input.push_str(&format!(
            r#"{{"txn":"t-{i}","source":"app","writes":[{{"table":"customers","op":"update","key":{{"id":"C{i}"}},"before":{{"id":"C{i}","city":"Graz","payment_method":"card","credit_score":700,"income":52000}},"after":{{"id":"C{i}","city":"Linz","payment_method":"card","credit_score":700,"income":52000}}}}]}}"#
        ));
        input.push('\n');
    }
    let sandbox = Runtime::new(SandboxConfig::default()).unwrap();
    let rules = RuleSet::new(vec![
        LoadedRule::load(&sandbox, guests::DEALERSHIP.as_ref()).unwrap(),
    ])
    .unwrap();
    let redis = Redis::open(&server.url(), RedisConfig::default()).unwrap();
    let start = Instant::now();
    let config = PipelineConfig {
        prune_every: None,
        ..config
    };
    let summary = invalidator::batch::replay::apply_events_with(
        config,
        rules,
        redis,
        std::io::Cursor::new(input),
        Duration::from_secs(300),
        std::io::sink(),
    )
    .await
    .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.deleted as usize, ONE_WRITE_COMMITS, "{summary:?}");
    // One exact key per commit and nothing else: the offer columns are in
    // both images and unchanged, so the rule asks for no tag.
    assert_eq!(summary.keys as usize, ONE_WRITE_COMMITS, "{summary:?}");
    assert_eq!((summary.tags, summary.patterns), (0, 0), "{summary:?}");
    assert_eq!(
        keys_left(&mut conn),
        0,
        "every key gone: {:?}",
        invalidator_tests::all_keys(&mut conn)
    );
    ONE_WRITE_COMMITS as f64 / elapsed
}

/// The feed's stream, in the runs with the feed on.
const FEED: &str = "bench:feed";

/// The keys in Redis, but for the feed's stream (which a run with the
/// feed on leaves, and its writer may still be adding to: counted in one
/// transaction).
fn keys_left(conn: &mut redis::Connection) -> u64 {
    let (keys, stream): (u64, u64) = redis::pipe()
        .atomic()
        .cmd("DBSIZE")
        .cmd("EXISTS")
        .arg(FEED)
        .query(conn)
        .unwrap();
    keys - stream
}

/// `redis-benchmark`'s pipelined `DEL` rate, on keys it first creates.
fn redis_benchmark_del(server: &RedisServer) -> f64 {
    let port = server.port().to_string();
    let n = "1000000";
    let run = |args: &[&str]| {
        let out = Command::new("redis-benchmark")
            .args(["-p", &port, "-n", n, "-r", n, "-P", "16", "-c", "50", "-q"])
            .args(args)
            .output()
            .expect("redis-benchmark runs (Debian package redis-tools)");
        assert!(out.status.success(), "redis-benchmark failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["SET", "key:__rand_int__", "v"]);
    let text = run(&["DEL", "key:__rand_int__"]);
    // `-q` prints `DEL key:__rand_int__: 1234567.89 requests per second, ...`
    // after progress lines separated by carriage returns.
    let line = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))
        .unwrap_or_else(|| panic!("unexpected redis-benchmark output: {text}"));
    let rate = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in `{line}`"));
    let () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    rate
}

fn rules() -> Arc<RuleSet> {
    let runtime = Runtime::new(SandboxConfig::default()).unwrap();
    let rule = LoadedRule::load(&runtime, guests::TURNUS.as_ref()).unwrap();
    Arc::new(RuleSet::new(vec![rule]).unwrap())
}

/// The end-to-end figure with one replica acknowledging each batch,
/// against none asked, alternately, on a primary with one replica.
fn replicas(runtime: &tokio::runtime::Runtime) {
    let mut args = vec!["--save", "", "--appendonly", "no"];
    let primary = RedisServer::with_args(&args);
    let port = primary.port().to_string();
    args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = RedisServer::with_args(&args);
    invalidator_tests::wait_link_up(&replica);
    let (mut acked, mut unacked, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let none = runtime.block_on(end_to_end_with(&primary, 0));
        let one = runtime.block_on(end_to_end_with(&primary, 1));
        println!(
            "round {round}: end to end with --redis-replicas 0: {none:.0} keys/s, with 1: \
             {one:.0} keys/s, ratio {:.2}",
            one / none
        );
        unacked.push(none);
        acked.push(one);
        ratios.push(one / none);
    }
    println!(
        "end to end on a primary with one replica ({E2E_KEYS} keys, medians of {ROUNDS}): \
         --redis-replicas 0: {:.0} keys/s, --redis-replicas 1: {:.0} keys/s",
        median(unacked),
        median(acked)
    );
    println!(
        "replica-acked/unacked throughput ratio: {:.2}",
        median(ratios)
    );
}

/// The end-to-end and one-write figures with `what` (the explain log, or
/// the feed) on, as `on` configures it, and off (the default),
/// alternately.
fn on_against_off(
    server: &RedisServer,
    runtime: &tokio::runtime::Runtime,
    what: &str,
    on: impl Fn() -> PipelineConfig,
) {
    let off = PipelineConfig::default;
    let (mut e2e, mut one, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    // More rounds than the other parts: the difference sought is small
    // beside this machine's noise. Which side goes first alternates.
    for round in 1..=EXPLAIN_ROUNDS {
        let (e_off, e_on, o_off, o_on);
        if round % 2 == 1 {
            e_off = runtime.block_on(end_to_end_configured(server, 0, off()));
            e_on = runtime.block_on(end_to_end_configured(server, 0, on()));
            o_off = runtime.block_on(one_write(server, off()));
            o_on = runtime.block_on(one_write(server, on()));
        } else {
            e_on = runtime.block_on(end_to_end_configured(server, 0, on()));
            e_off = runtime.block_on(end_to_end_configured(server, 0, off()));
            o_on = runtime.block_on(one_write(server, on()));
            o_off = runtime.block_on(one_write(server, off()));
        }
        println!(
            "round {round}: end to end {what} off {e_off:.0} keys/s, on {e_on:.0} keys/s \
             (ratio {:.3}); one-write off {o_off:.0}/s, on {o_on:.0}/s (ratio {:.3})",
            e_on / e_off,
            o_on / o_off
        );
        e2e.push(e_on / e_off);
        one.push(o_on / o_off);
        let (listed, unlisted) = if round % 2 == 1 {
            let l = runtime.block_on(tag_rate(server, true));
            (l, runtime.block_on(tag_rate(server, false)))
        } else {
            let u = runtime.block_on(tag_rate(server, false));
            (runtime.block_on(tag_rate(server, true)), u)
        };
        println!(
            "round {round}: tags of {TAG_MEMBERS} keys, listing members {listed:.0} tags/s, \
             not {unlisted:.0} tags/s (ratio {:.3})",
            listed / unlisted
        );
        tags.push(listed / unlisted);
    }
    println!(
        "{what} on/off ratio: end to end {:.3}, one-write {:.3}, tags listed/unlisted {:.3}",
        median(e2e),
        median(one),
        median(tags)
    );
}

const TAGS: usize = 2_000;
const TAG_MEMBERS: usize = 50;

/// Tags invalidated per second through the sink, `TAGS` tags of
/// `TAG_MEMBERS` keys each, with the script listing the members it took
/// (`listing`, as explain has it) or not.
async fn tag_rate(server: &RedisServer, listing: bool) -> f64 {
    let mut conn = server.connection();
    for tag in 0..TAGS {
        let mut pipe = redis::pipe();
        for member in 0..TAG_MEMBERS {
            let key = format!("tagged:{tag}:{member}");
            pipe.set(&key, "v").ignore();
            pipe.cmd("ZADD")
                .arg(format!("inv:tag:t{tag}"))
                .arg("+inf")
                .arg(&key)
                .ignore();
        }
        pipe.exec(&mut conn).unwrap();
    }
    let redis = Redis::open(&server.url(), RedisConfig::default()).unwrap();
    let mut targets: TargetSet = (0..TAGS).map(|t| Target::Tag(format!("t{t}"))).collect();
    let mut applied = if listing {
        Applied::listing()
    } else {
        Applied::default()
    };
    let start = Instant::now();
    invalidator::sink::apply(&redis, &mut targets, &mut applied)
        .await
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(applied.deleted as usize, TAGS * TAG_MEMBERS);
    if listing {
        let listed: usize = applied
            .tag_members
            .iter()
            .flatten()
            .map(|t| t.members.len())
            .sum();
        assert_eq!(listed, TAGS * TAG_MEMBERS);
    }
    assert_eq!(keys_left(&mut conn), 0, "every key and index gone");
    TAGS as f64 / elapsed
}

/// Keys removed per second: from the first commit handed over until the
/// last key is gone.
async fn end_to_end(server: &RedisServer) -> f64 {
    end_to_end_with(server, 0).await
}

/// [`end_to_end`], with `replicas` acknowledging each batch.
async fn end_to_end_with(server: &RedisServer, replicas: u32) -> f64 {
    end_to_end_configured(server, replicas, PipelineConfig::default()).await
}

/// [`end_to_end_with`], with the pipeline configured as given.
async fn end_to_end_configured(server: &RedisServer, replicas: u32, config: PipelineConfig) -> f64 {
    let mut conn = server.connection();
    for chunk in (0..E2E_KEYS).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(format!("user_profile_{i}"), "v").ignore();
        }
        pipe.exec(&mut conn).unwrap();
    }
    // Spread each commit's writes over the keyspace.
    let commits: Vec<Commit> = (0..E2E_KEYS / WRITES_PER_COMMIT)
        .map(|c| Commit {
            txn: format!("t-{c}"),
            source: None,
            writes: (0..WRITES_PER_COMMIT)
                .map(|w| {
                    let id = (w * (E2E_KEYS / WRITES_PER_COMMIT) + c) as i64;
                    let row = vec![
                        ("id".to_owned(), Value::Integer(id)),
                        ("user_id".to_owned(), Value::Integer(id)),
                    ];
                    Write {
                        table: "user_profiles".into(),
                        op: Op::Update,
                        key: row.clone(),
                        before: Some(row.clone()),
                        after: Some(row),
                    }
                })
                .collect(),
        })
        .collect();
    let redis = Redis::open(
        &server.url(),
        RedisConfig {
            replicas,
            ..RedisConfig::default()
        },
    )
    .unwrap();
    let config = PipelineConfig {
        prune_every: None,
        ..config
    };
    let invalidator = Invalidator::start(rules(), redis, config);
    let start = Instant::now();
    for commit in commits {
        invalidator.after_commit(commit);
    }
    invalidator
        .flush_timeout(Duration::from_secs(300))
        .await
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let stats = invalidator.stats();
    assert_eq!(
        stats.deleted as usize, E2E_KEYS,
        "every key removed: {stats:?}"
    );
    assert_eq!(keys_left(&mut conn), 0, "every key removed");
    E2E_KEYS as f64 / elapsed
}

/// Seconds for one SCAN pass (a plain one-cursor `SCAN MATCH` loop for one
/// pattern, unlinking its matches, as any client would write it), for our
/// sweep of that one pattern (four parts of the scan order at once), and
/// for our sweep of 100 patterns, over 1,000,000 keys. The issue's ratio is
/// against the SCAN pass; the ratio against our own one-pattern sweep is
/// printed too, as the stricter comparison.
struct Sweeps {
    one: Vec<f64>,
    many: Vec<f64>,
    plain: Vec<f64>,
    /// 100 patterns against a plain one-cursor `SCAN MATCH` pass.
    ratios: Vec<f64>,
    /// 100 patterns against our own sweep of one pattern.
    strict: Vec<f64>,
}

/// Creates (or recreates, after a sweep removed them) the `SWEEP_KEYS`
/// keys `item:0`, `item:1`...
fn populate(conn: &mut redis::Connection) {
    let () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(SWEEP_KEYS)
        .arg("item")
        .query(conn)
        .unwrap();
}

async fn pattern_sweeps(server: &RedisServer) -> Sweeps {
    let mut conn = server.connection();
    let redis = Redis::open(&server.url(), RedisConfig::default()).unwrap();
    // 100 patterns of the form `item:NNNN*`, each matching 11 to 111 keys.
    let many: Vec<String> = (0..100)
        .map(|i| format!("item:{}*", 1000 + i * 89))
        .collect();
    let one = vec!["item:5000*".to_owned()];
    let (mut t_one, mut t_many, mut t_plain) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        populate(&mut conn);
        let start = Instant::now();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&one[0])
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .unwrap();
            if !keys.is_empty() {
                let _: u64 = redis::cmd("UNLINK").arg(&keys).query(&mut conn).unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        t_plain.push(start.elapsed().as_secs_f64());
        for (patterns, times) in [(&one, &mut t_one), (&many, &mut t_many)] {
            populate(&mut conn);
            let set = PatternSet::new(patterns.iter());
            let start = Instant::now();
            let swept = sweep(&redis, &set).await.unwrap();
            times.push(start.elapsed().as_secs_f64());
            assert!(swept.deleted > 0, "the patterns matched keys");
        }
        let (plain, one, many) = (
            *t_plain.last().unwrap(),
            *t_one.last().unwrap(),
            *t_many.last().unwrap(),
        );
        println!(
            "sweep round {}: plain SCAN pass {:.0} ms, our sweep of 1 pattern {:.0} ms, \
             of 100 patterns {:.0} ms; ratios {:.2} and {:.2}",
            t_one.len(),
            plain * 1e3,
            one * 1e3,
            many * 1e3,
            many / plain,
            many / one
        );
    }
    let ratios = t_many.iter().zip(&t_plain).map(|(m, p)| m / p).collect();
    let strict = t_many.iter().zip(&t_one).map(|(m, o)| m / o).collect();
    Sweeps {
        one: t_one,
        many: t_many,
        plain: t_plain,
        ratios,
        strict,
    }
}
