//! `invalidator apply` and `invalidator cache` as a user runs them, against
//! real Redis servers the tests start: a single node and a local cluster.
//! The commits are generated afresh on every run, and the expected keys
//! come from the example rules' documented mappings, not from the host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use invalidator_tests::{RedisCluster, RedisServer, all_keys, guests};

fn invalidator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_invalidator"))
        .args(args)
        .output()
        .expect("the invalidator binary runs")
}

/// `invalidator apply` with the rules of `dir` on the commits `events`
/// (written to `dir/events.jsonl`), against `url`, with `extra` flags.
fn apply(dir: &Path, events: &str, url: &str, extra: &[&str]) -> Output {
    let file = dir.join("events.jsonl");
    std::fs::write(&file, events).unwrap();
    let mut args = vec![
        "apply",
        "--rules",
        dir.to_str().unwrap(),
        "--events",
        file.to_str().unwrap(),
        "--redis",
        url,
    ];
    args.extend_from_slice(extra);
    invalidator(&args)
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// A folder with the dealership and turnus rules.
fn rules_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("invalidator-apply-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(guests::DEALERSHIP, dir.join("dealership.wasm")).unwrap();
    std::fs::copy(guests::TURNUS, dir.join("turnus.wasm")).unwrap();
    dir
}

/// A small deterministic generator; the seed differs per run and is shown
/// in every failure.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Fresh commits, the keys to seed, and the keys the commits must remove.
struct Scenario {
    events: String,
    plain: Vec<String>,
    tagged: Vec<(String, String)>,
    gone: BTreeSet<String>,
    commits: usize,
}

fn scenario(seed: u64) -> Scenario {
    let mut rng = Lcg(seed);
    let vins: Vec<String> = (0..40)
        .map(|_| format!("V{:06}", rng.below(1_000_000)))
        .collect();
    let mut plain: Vec<String> = vins.iter().map(|v| format!("vehicle:{v}")).collect();
    plain.extend((0..60).map(|t| format!("turnus_data_{t}")));
    plain.extend((0..30).map(|u| format!("user_profile_{u}")));
    plain.push("unrelated:page".into());
    // Offers tagged by their car, and listing pages tagged `inventory`.
    let mut tagged: Vec<(String, String)> = vins
        .iter()
        .take(10)
        .flat_map(|v| {
            (0..2).map(move |j| (format!("offer:{v}:{j}"), format!("offers:vehicle:{v}")))
        })
        .collect();
    tagged.push(("listing:page:1".into(), "inventory".into()));
    let (mut lines, mut gone) = (Vec::new(), BTreeSet::new());
    let commits = 25;
    for c in 0..commits {
        let mut writes = Vec::new();
        for _ in 0..1 + rng.below(3) {
            match rng.below(3) {
                0 => {
                    // A car's price changes: its key, every offer tagged
                    // with it, and everything tagged `inventory`.
                    let v = &vins[rng.below(20) as usize];
                    writes.push(format!(
                        r#"{{"table":"inventory","op":"update","key":{{"vin":"{v}"}},"before":{{"vin":"{v}","price":{},"status":"available"}},"after":{{"vin":"{v}","price":{},"status":"available"}}}}"#,
                        20_000 + rng.below(5000),
                        15_000 + rng.below(4000)
                    ));
                    gone.insert(format!("vehicle:{v}"));
                    gone.insert("listing:page:1".to_owned());
                    for j in 0..2 {
                        gone.insert(format!("offer:{v}:{j}"));
                    }
                }
                1 => {
                    // A child moves turnus: both turnus caches.
                    let (from, to) = (rng.below(60), rng.below(60));
                    let id = rng.below(10_000);
                    writes.push(format!(
                        r#"{{"table":"kinder","op":"update","key":{{"id":{id}}},"before":{{"id":{id},"turnus_id":{from}}},"after":{{"id":{id},"turnus_id":{to}}}}}"#
                    ));
                    gone.insert(format!("turnus_data_{from}"));
                    gone.insert(format!("turnus_data_{to}"));
                }
                _ => {
                    let id = rng.below(30);
                    writes.push(format!(
                        r#"{{"table":"user_profiles","op":"update","key":{{"id":{id}}},"before":{{"id":{id},"user_id":{id}}},"after":{{"id":{id},"user_id":{id}}}}}"#
                    ));
                    gone.insert(format!("user_profile_{id}"));
                }
            }
        }
        lines.push(format!(
            r#"{{"txn":"g-{c}","writes":[{}]}}"#,
            writes.join(",")
        ));
    }
    Scenario {
        events: lines.join("\n") + "\n",
        plain,
        tagged,
        gone,
        commits,
    }
}

/// Seeds the keys (tagged ones through `invalidator cache set`), runs
/// `invalidator apply`, and checks exactly the expected keys are gone.
fn apply_removes_exactly_the_expected_keys(
    url: &str,
    name: &str,
    seed_plain: impl Fn(&[String]),
    keys: impl Fn() -> BTreeSet<String>,
) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let s = scenario(seed);
    seed_plain(&s.plain);
    for (key, tag) in &s.tagged {
        let out = invalidator(&[
            "cache", "set", "--redis", url, key, "{}", "--ttl", "600", "--tag", tag,
        ]);
        assert!(out.status.success(), "cache set: {}", text(&out.stderr));
    }
    let out = apply(&rules_dir(name), &s.events, url, &[]);
    assert!(out.status.success(), "seed {seed}: {}", text(&out.stderr));

    let all: BTreeSet<String> = s
        .plain
        .iter()
        .cloned()
        .chain(s.tagged.iter().map(|(k, _)| k.clone()))
        .collect();
    let expected: BTreeSet<String> = all.difference(&s.gone).cloned().collect();
    let remaining: BTreeSet<String> = keys()
        .into_iter()
        .filter(|k| !k.starts_with("inv:tag:"))
        .collect();
    assert_eq!(remaining, expected, "seed {seed}");

    let last = text(&out.stdout).lines().last().unwrap();
    let summary: serde_json::Value = serde_json::from_str(last).unwrap();
    let removed = all.intersection(&s.gone).count();
    assert_eq!(summary["commits"], s.commits, "seed {seed}: {summary}");
    assert_eq!(summary["deleted"], removed, "seed {seed}: {summary}");
    assert_eq!(summary["errors"], 0, "seed {seed}: {summary}");
    assert_eq!(summary["patterns"], 0, "seed {seed}: {summary}");
    let fields = ["commits", "keys", "patterns", "tags", "deleted", "errors"];
    let at: Vec<usize> = fields
        .iter()
        .map(|f| last.find(&format!("\"{f}\":")).unwrap())
        .collect();
    assert!(
        at.is_sorted() && at[0] == 1,
        "fields in the documented order: {last}"
    );
}

#[test]
fn apply_removes_exactly_the_expected_keys_on_a_single_node() {
    let server = RedisServer::start();
    apply_removes_exactly_the_expected_keys(
        &server.url(),
        "single",
        |keys| {
            let mut pipe = redis::pipe();
            for k in keys {
                pipe.set(k, "v").ignore();
            }
            pipe.exec(&mut server.connection()).unwrap();
        },
        || all_keys(&mut server.connection()).into_iter().collect(),
    );
}

#[test]
fn apply_removes_exactly_the_expected_keys_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    apply_removes_exactly_the_expected_keys(
        &cluster.url(),
        "cluster",
        |keys| {
            let mut conn = cluster.connection();
            for k in keys {
                let () = redis::cmd("SET").arg(k).arg("v").query(&mut conn).unwrap();
            }
        },
        || cluster.all_keys().into_iter().collect(),
    );
}

#[test]
fn apply_reports_bad_lines_and_gives_up_on_an_unreachable_redis() {
    let events = "{\"txn\":\"a\",\"writes\":[{\"table\":\"user_profiles\",\"op\":\"delete\",\"key\":{\"id\":1}}]}\nnot json\n";
    // A port nothing listens on: a server started and stopped.
    let url = {
        let server = RedisServer::start();
        server.url()
    };
    let out = apply(
        &rules_dir("unreachable"),
        events,
        &url,
        &["--give-up-after", "1"],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 2:"), "{stderr}");
    assert!(stderr.contains("not applied after 1s"), "{stderr}");
    // And why: what the last attempt met.
    assert!(
        stderr.contains("the last attempt failed:") && stderr.contains("refused"),
        "{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["commits"], 1);
    assert_eq!(summary["deleted"], 0);
    assert!(summary["errors"].as_u64().unwrap() >= 2, "{summary}");
}

#[test]
fn cache_set_and_get_from_the_command_line() {
    let server = RedisServer::start();
    let url = server.url();
    let out = invalidator(&[
        "cache", "set", "--redis", &url, "page:1", "hello", "--ttl", "60", "--tag", "pages",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = invalidator(&["cache", "get", "--redis", &url, "page:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    let ttl: i64 = redis::cmd("TTL")
        .arg("page:1")
        .query(&mut server.connection())
        .unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("inv:tag:pages")
        .arg(0)
        .arg(-1)
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(members, ["page:1"]);

    let out = invalidator(&["cache", "get", "--redis", &url, "page:2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("key `page:2` not found"));

    let out = invalidator(&["cache", "set", "--redis", &url, "k", "v", "--ttl", "0"]);
    assert!(
        text(&out.stderr).contains("invalid --ttl `0`"),
        "{}",
        text(&out.stderr)
    );
    let out = invalidator(&["cache", "get", "--redis", "http://nope", "k"]);
    assert!(
        text(&out.stderr).contains("invalid redis url `http://nope`"),
        "{}",
        text(&out.stderr)
    );
}
