//! `invalidator serve` as an operator runs it: no Redis (the in-process
//! store), a watched rules folder, and a rule deployed while it serves.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
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
/// (written to `dir/events.jsonl`) until they end.
fn serve_file(dir: &std::path::Path, events: &str) -> std::process::Output {
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
        .output()
        .unwrap()
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
    let cached = std::fs::read_dir(dir.join(".invalidator-cache"))
        .unwrap()
        .count();
    assert_eq!(cached, 1, "one compiled rule kept");
}

#[test]
fn serve_swaps_in_a_rule_deployed_while_it_runs() {
    let dir = folder("swap");
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_invalidator"))
        .args(["serve", "--rules", dir.to_str().unwrap()])
        .env("RUST_LOG", "invalidator=info")
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
    let out = serve_file(&dir, &format!("{GELD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
