//! Our glob matcher against Redis's own, differentially: random keys and
//! random patterns go to a real `redis-server`, and the keys a sweep
//! removes must be exactly the keys `KEYS pattern` lists.
//!
//! Keys and patterns are drawn from a small alphabet dense in what makes
//! globs hard: the metacharacters, `-` and `^`, multi-byte UTF-8 (`é`,
//! `ß`), bytes above 0x7F on their own, and letters and digits on both
//! sides of them, so ranges in both directions, negation, escapes, open
//! classes and `?` against half a character all come up thousands of times
//! per run. A failure prints its seed; `GLOB_SEED=<seed>` replays it.

use std::collections::BTreeSet;

use invalidator::redis::{Redis, RedisConfig};
use invalidator::sink::glob::{PatternSet, glob_match};
use invalidator::sink::sweep::sweep;
use invalidator_tests::{RedisCluster, RedisServer};

/// Pieces keys are made of.
const KEY_PIECES: &[&str] = &[
    "a", "b", "c", "z", "0", "9", "-", "]", "[", "^", "\\", "*", "?", ":", "é", "ß", "A",
];

/// Pieces patterns are made of: the key pieces and the glob syntax.
const PATTERN_PIECES: &[&str] = &[
    "a", "b", "z", "0", "é", "ß", ":", "*", "*", "?", "?", "[", "[", "]", "]", "^", "-", "-", "\\",
    "[a-c]", "[c-a]", "[^a]", "[a-é]", "[é-a]", "[\\]]", "[]", "[^", "\\*", "\\[",
];

/// Bytes that are not UTF-8 on their own, only in keys: Redis keys are
/// binary, and the server compares them as signed `char`s.
const RAW_BYTES: &[u8] = &[0x80, 0xA9, 0xC3, 0xFF];

/// The seed of this run: `GLOB_SEED` to replay one, else a fresh one.
fn seed() -> u64 {
    let seed = match std::env::var("GLOB_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("GLOB_SEED={s:?} is not a number")),
        Err(_) => fastrand::u64(..),
    };
    eprintln!("glob differential seed: {seed} (replay with GLOB_SEED={seed})");
    seed
}

fn random_key(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut key = Vec::new();
    for _ in 0..rng.usize(0..7) {
        if rng.u8(..) < 16 {
            key.push(RAW_BYTES[rng.usize(..RAW_BYTES.len())]);
        } else {
            key.extend_from_slice(KEY_PIECES[rng.usize(..KEY_PIECES.len())].as_bytes());
        }
    }
    key
}

fn random_pattern(rng: &mut fastrand::Rng) -> String {
    (0..rng.usize(0..6))
        .map(|_| PATTERN_PIECES[rng.usize(..PATTERN_PIECES.len())])
        .collect()
}

/// `KEYS pattern` on one node.
fn keys(conn: &mut redis::Connection, pattern: &str) -> BTreeSet<Vec<u8>> {
    redis::cmd("KEYS").arg(pattern).query(conn).unwrap()
}

fn set_all(conn: &mut redis::Connection, keys: &BTreeSet<Vec<u8>>) {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("SET").arg(key).arg(1).ignore();
    }
    pipe.query::<()>(conn).unwrap();
}

fn show(keys: &BTreeSet<Vec<u8>>) -> Vec<String> {
    keys.iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn the_matcher_agrees_with_keys_on_thousands_of_random_patterns() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let server = RedisServer::start();
    let mut conn = server.connection();
    let mut cases = 0;
    for round in 0..40 {
        redis::cmd("FLUSHALL").query::<()>(&mut conn).unwrap();
        let mut stored: BTreeSet<Vec<u8>> = (0..120).map(|_| random_key(&mut rng)).collect();
        // The empty key is legal in Redis and only `*` lists it.
        stored.insert(Vec::new());
        set_all(&mut conn, &stored);
        for _ in 0..100 {
            let pattern = random_pattern(&mut rng);
            let listed = keys(&mut conn, &pattern);
            let ours: BTreeSet<Vec<u8>> = stored
                .iter()
                .filter(|k| glob_match(pattern.as_bytes(), k))
                .cloned()
                .collect();
            assert_eq!(
                show(&ours),
                show(&listed),
                "seed {seed}, round {round}: pattern {pattern:?} matched differently from KEYS"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 4000);
}

#[test]
fn more_than_a_thousand_nested_stars_match_nothing_in_redis_either() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    for n in [1000, 1001] {
        let key = "a".repeat(n);
        let pattern = "*a".repeat(n);
        redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .query::<()>(&mut conn)
            .unwrap();
        let listed = keys(&mut conn, &pattern);
        assert_eq!(
            glob_match(pattern.as_bytes(), key.as_bytes()),
            listed.contains(key.as_bytes()),
            "{n} nested stars"
        );
    }
    assert!(!glob_match(
        "*a".repeat(1001).as_bytes(),
        "a".repeat(1001).as_bytes()
    ));
}

/// One sweep per round for three random patterns at once (so our matcher,
/// not `SCAN MATCH`, decides), on `nodes` connections that together hold
/// the keyspace.
async fn sweep_rounds(url: &str, nodes: &mut [redis::Connection], seed: u64, rounds: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let redis = Redis::open(url, RedisConfig::default()).unwrap();
    for round in 0..rounds {
        let patterns: Vec<String> = (0..3).map(|_| random_pattern(&mut rng)).collect();
        // Keys are written through the sweep's own connection so that a
        // cluster routes each to its slot.
        let stored: BTreeSet<Vec<u8>> = (0..150).map(|_| random_key(&mut rng)).collect();
        for key in &stored {
            redis
                .query::<()>(redis::cmd("SET").arg(key).arg(1))
                .await
                .unwrap();
        }
        let mut expected = BTreeSet::new();
        for conn in nodes.iter_mut() {
            for pattern in &patterns {
                expected.extend(keys(conn, pattern));
            }
        }
        let set = PatternSet::new(&patterns);
        sweep(&redis, &set).await.unwrap();
        let mut left = BTreeSet::new();
        for conn in nodes.iter_mut() {
            left.extend(keys(conn, "*"));
        }
        let removed: BTreeSet<Vec<u8>> = stored.difference(&left).cloned().collect();
        assert_eq!(
            show(&removed),
            show(&expected),
            "seed {seed}, round {round}: sweep of {patterns:?} removed other keys than KEYS lists"
        );
        for conn in nodes.iter_mut() {
            redis::cmd("FLUSHALL").query::<()>(conn).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_removes_exactly_what_keys_lists_on_a_single_node() {
    let seed = seed();
    let server = RedisServer::start();
    let mut nodes = [server.connection()];
    sweep_rounds(&server.url(), &mut nodes, seed, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_removes_exactly_what_keys_lists_on_a_cluster() {
    let seed = seed();
    let cluster = RedisCluster::start(3);
    let mut nodes: Vec<_> = cluster.nodes().iter().map(|n| n.connection()).collect();
    sweep_rounds(&cluster.url(), &mut nodes, seed, 30).await;
}
