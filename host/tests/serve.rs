//! `invalidator serve` as an operator runs it: no Redis (the in-process
//! store), a watched rules folder, and a rule deployed while it serves.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use invalidator_tests::{deploy, fresh_dir, guests};

fn folder(name: &str) -> PathBuf {
    fresh_dir(&format!("serve-{name}"))
}

const GELD: &str = r#"{"txn":"a","writes":[{"table":"geld","op":"insert","key":{"id":1},"after":{"id":1,"turnus_id":3}}]}"#;
const CAR: &str = r#"{"txn":"b","writes":[{"table":"inventory","op":"update","key":{"vin":"V1"},"before":{"vin":"V1","price":9},"after":{"vin":"V1","price":8}}]}"#;

/// `invalidator serve` on the rules of `dir`, reading the commits `events`
/// (written to `dir/events.jsonl`) until they end, with the platform cache
/// folder at `dir.cache` (beside the rules folder, not in it) and `extra`
/// flags.
fn serve_file_with(dir: &Path, events: &str, extra: &[&str]) -> std::process::Output {
    let file = dir.join("events.jsonl");
    std::fs::write(&file, events).unwrap();
    Command::new(env!("CARGO_BIN_EXE_invalidator"))
        .args([
            "serve",
            "--rules",
            dir.to_str().unwrap(),
            "--events",
            file.to_str().unwrap(),
        ])
        .args(extra)
        .env("XDG_CACHE_HOME", xdg_cache(dir))
        .output()
        .unwrap()
}

fn serve_file(dir: &Path, events: &str) -> std::process::Output {
    serve_file_with(dir, events, &[])
}

/// The `XDG_CACHE_HOME` that `serve_file` gives a rules folder `dir`.
fn xdg_cache(dir: &Path) -> PathBuf {
    dir.with_extension("cache")
}

/// [`serve_file`], which must succeed.
fn serve_ok(dir: &Path, events: &str) -> std::process::Output {
    let out = serve_file(dir, events);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn summary(stdout: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(stdout).unwrap();
    serde_json::from_str(text.lines().last().expect("a summary line")).unwrap()
}

#[test]
fn serve_runs_with_no_redis_and_caches_compiled_rules() {
    let dir = folder("plain");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let out = serve_file(&dir, &format!("{GELD}\n{CAR}\nnot json\n"));
    let s = summary(&out.stdout);
    assert_eq!(s["commits"], 2, "{s}");
    assert_eq!(s["keys"], 1, "turnus_data_3 only: {s}");
    assert_eq!(s["swaps"], 0, "{s}");
    assert_eq!(s["errors"], 1, "the malformed line: {s}");
    assert!(!out.status.success(), "a malformed line fails the run");
    assert_eq!(s["rollbacks"], 0, "{s}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3:"), "{stderr}");
    let cached: Vec<String> = std::fs::read_dir(xdg_cache(&dir).join("invalidator"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        cached.iter().filter(|n| n.ends_with(".cwasm")).count(),
        1,
        "one compiled rule kept in the platform cache folder: {cached:?}"
    );
    assert!(cached.contains(&"key".to_owned()), "{cached:?}");
    assert!(
        !dir.join(".invalidator-cache").exists(),
        "nothing in the rules folder"
    );
}

#[test]
fn serve_swaps_in_a_rule_deployed_while_it_runs() {
    let dir = folder("swap");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_invalidator"))
        .args(["serve", "--rules", dir.to_str().unwrap()])
        .env("RUST_LOG", "invalidator=info")
        .env("XDG_CACHE_HOME", xdg_cache(&dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &dyn Fn(&str) -> bool| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve logs what it does");
        if what(&line) {
            return;
        }
    };
    wait_for(&|l| l.contains("serving"));
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{GELD}").unwrap();
    deploy(guests::DEALERSHIP, &dir.join("dealership.wasm"));
    wait_for(&|l| l.contains("in service") && l.contains("dealership"));
    writeln!(stdin, "{CAR}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s = summary(&out.stdout);
    assert_eq!(s["commits"], 2, "{s}");
    assert_eq!(s["swaps"], 1, "{s}");
    assert_eq!(
        s["keys"], 2,
        "turnus_data_3, and vehicle:V1 from the new rule: {s}"
    );
}

#[test]
fn serve_counts_a_refused_rule_file_and_keeps_serving() {
    let dir = folder("refused");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    std::fs::write(dir.join("broken.wasm"), b"not a component").unwrap();
    let out = serve_ok(&dir, &format!("{GELD}\n"));
    let s = summary(&out.stdout);
    assert_eq!(
        (s["commits"].as_u64(), s["keys"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert!(s["refused"].as_u64().unwrap() >= 1, "{s}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.wasm"),
        "the refusal names the file: {stderr}"
    );
}

/// Compiled code planted in the rules folder, where the cache used to be,
/// is never run: a `.cwasm` of the dealership rule under the entry name of
/// turnus's hash would otherwise make turnus's file run the dealership's
/// code.
#[test]
fn serve_ignores_compiled_code_planted_in_the_rules_folder() {
    use invalidator::rules::{LoadedRule, Runtime, SandboxConfig};
    let dir = folder("planted");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    // Compile both rules in a scratch cache to learn the entry names and
    // get the dealership's compiled code.
    let scratch = dir.with_extension("scratch");
    let runtime = Runtime::with_compile_cache(SandboxConfig::default(), &scratch).unwrap();
    let turnus = LoadedRule::load(&runtime, Path::new(guests::TURNUS)).unwrap();
    let dealership = LoadedRule::load(&runtime, Path::new(guests::DEALERSHIP)).unwrap();
    let cache = runtime.compile_cache().unwrap();
    // The bare compiled code: the entry without its 8-byte header and
    // 32-byte MAC, as the previous cache layout stored it.
    let code = std::fs::read(cache.entry(dealership.hash())).unwrap()[40..].to_vec();
    let planted = dir.join(".invalidator-cache");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(
        planted.join(cache.entry(turnus.hash()).file_name().unwrap()),
        code,
    )
    .unwrap();

    let s = summary(&serve_ok(&dir, &format!("{GELD}\n")).stdout);
    assert_eq!(s["keys"], 1, "turnus's own code ran on the geld row: {s}");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A compile cache inside the rules folder, or one that others can write,
/// is refused before anything is served, with an error naming it.
#[test]
fn serve_refuses_an_unsafe_compile_cache() {
    use std::os::unix::fs::PermissionsExt;
    let dir = folder("unsafe-cache");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let inside = dir.join("compiled");
    let out = serve_file_with(&dir, "", &["--compile-cache", inside.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(inside.to_str().unwrap()) && stderr.contains("inside the rules folder"),
        "{stderr}"
    );
    assert!(!inside.exists(), "nothing was created there");

    let shared = dir.with_extension("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = serve_file_with(&dir, "", &["--compile-cache", shared.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(shared.to_str().unwrap()) && stderr.contains("others can write"),
        "{stderr}"
    );
}

/// A rule called often cannot flood the logs one call's budget at a time:
/// past `sandbox.max_log_lines_per_minute`, its lines are dropped and
/// counted, across calls.
#[test]
fn a_rules_log_lines_are_bounded_per_minute_across_calls() {
    let dir = folder("log-minute");
    deploy(guests::HOSTILE, &dir.join("hostile.wasm"));
    // Five calls of 100 lines each: within the budget of one call, 500
    // lines in all, against 150 a minute.
    let events: String = (1..=5)
        .map(|i| {
            format!(
                "{{\"txn\":\"s{i}\",\"writes\":[{{\"table\":\"spam\",\"op\":\"insert\",\"key\":{{\"id\":{i}}},\"after\":{{\"id\":{i},\"n\":100}}}}]}}\n"
            )
        })
        .collect();
    let file = dir.with_extension("events.jsonl");
    std::fs::write(&file, events).unwrap();
    // One commit per batch, so that each is a call of its own.
    let out = Command::new(env!("CARGO_BIN_EXE_invalidator"))
        .args([
            "serve",
            "--rules",
            dir.to_str().unwrap(),
            "--events",
            file.to_str().unwrap(),
        ])
        .env("XDG_CACHE_HOME", xdg_cache(&dir))
        .env("INVALIDATOR_SANDBOX__MAX_LOG_LINES_PER_MINUTE", "150")
        .env("INVALIDATOR_PIPELINE__MAX_BATCH", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let logged = stderr
        .lines()
        .filter(|l| l.contains(&"x".repeat(64)))
        .count();
    assert_eq!(logged, 150, "the rule's lines in the logs over five calls");
}

/// A SIGTERM sent as soon as `serve` says where it listens stops it as any
/// other: drained, with its summary and exit 0. Before, the signals were
/// listened for only after every source had started, and a SIGTERM in
/// that gap took the default action: killed by signal 15, no summary (CI
/// saw it when a test stopped `serve` as soon as Postgres streamed).
#[test]
fn a_sigterm_right_after_listening_begins_stops_serve_cleanly() {
    let dir = folder("early-sigterm");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    deploy(guests::TURNUS, &rules.join("turnus.wasm"));
    let cache = xdg_cache(&dir);
    let cache = cache.to_str().unwrap();
    // Several times: the gap was short.
    for _ in 0..20 {
        let serve = invalidator_tests::ServeProcess::start(
            env!("CARGO_BIN_EXE_invalidator"),
            &[
                "--rules",
                rules.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
            &[("XDG_CACHE_HOME", cache)],
        );
        let (status, summary) = serve.stop(Duration::from_secs(30));
        assert!(status.success(), "{status}: {summary}");
        assert_eq!(summary["commits"], 0, "{summary}");
    }
}
