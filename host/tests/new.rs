//! What a rule team does, in a temporary folder outside this repository,
//! for each language: `invalidator new`, the README's one-line build
//! command, the project's native tests, `invalidator test` on the fixture
//! (and again after breaking a case, to see it fail with the targets added
//! and removed), and `invalidator check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use invalidator_tests::{fresh_dir, guests, polyglot};

fn invalidator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_invalidator"))
        .args(args)
        .output()
        .expect("the invalidator binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `line` with `sh -c` in `dir`, with `path` first on `PATH`.
fn shell(dir: &Path, line: &str, path: Option<&Path>, envs: &[(&str, &Path)]) {
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir).arg("-c").arg(line);
    if let Some(p) = path {
        let old = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{old}", p.display()));
    }
    // Flags meant for this test build must not leak into the rule's.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("sh runs");
    assert!(
        out.status.success(),
        "`{line}` failed in `{}`:\n{}",
        dir.display(),
        text(&out)
    );
}

/// The one command of the README's `sh` block.
fn build_line(project: &Path) -> String {
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("the README has a sh block");
    let line = block.lines().next().unwrap().to_owned();
    assert!(
        !line.is_empty() && block.lines().nth(1) == Some("```"),
        "one line: {block}"
    );
    line
}

/// `new`, build, native tests, `test`, a broken case, `check`.
fn round_trip(lang: &str, native_tests: &str, path: Option<&Path>, envs: &[(&str, &Path)]) {
    let name = format!("demo_{lang}");
    let project: PathBuf = fresh_dir(&format!("new-{lang}")).join(&name);
    let out = invalidator(&[
        "new",
        &name,
        "--lang",
        lang,
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let fixture = project.join(format!("{name}.test.jsonl"));
    assert!(fixture.is_file());

    shell(&project, &build_line(&project), path, envs);
    shell(&project, native_tests, path, envs);
    let wasm = project.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "the build wrote `{}`", wasm.display());

    let out = invalidator(&["test", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok: 4 of 4 cases passed"),
        "{}",
        text(&out)
    );

    // Break the second case: the rule adds a key the case no longer names,
    // and leaves out the one it names instead.
    let cases = std::fs::read_to_string(&fixture).unwrap();
    let broken = cases.replacen("\"category:8:items\"]", "\"category:9:items\"]", 1);
    assert_ne!(broken, cases);
    std::fs::write(&fixture, broken).unwrap();
    let out = invalidator(&["test", wasm.to_str().unwrap()]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains(":2 (txn moved-item)"), "{shown}");
    assert!(shown.contains("+ key category:8:items"), "{shown}");
    assert!(shown.contains("- key category:9:items"), "{shown}");
    assert!(shown.contains("3 of 4 cases passed, 1 failed"), "{shown}");

    let out = invalidator(&["check", wasm.to_str().unwrap()]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains(&format!("is rule {name} 0.1.0")), "{shown}");
    assert!(shown.contains("size:"), "{shown}");
    assert!(
        shown.contains("imports:  invalidator:rules/types@0.2.0"),
        "{shown}"
    );
    assert!(
        !shown.contains("wasi:") && !shown.contains("warning"),
        "{shown}"
    );
}

#[test]
fn a_new_rust_rule_builds_tests_and_checks() {
    // One target folder for every run, so the SDK's dependencies build once.
    let target = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/new-rust"));
    round_trip(
        "rust",
        "cargo test --quiet",
        None,
        &[("CARGO_TARGET_DIR", &target)],
    );
}

#[test]
fn a_new_python_rule_builds_tests_and_checks() {
    let bin = polyglot::componentize_py_bin();
    round_trip("python", "pytest -q", Some(&bin), &[]);
}

#[test]
fn a_new_js_rule_builds_tests_and_checks() {
    round_trip("js", "npm test --silent", None, &[]);
}

#[test]
fn check_warns_when_a_rule_imports_wasi() {
    // The hostile guest uses `std`, so it imports WASI.
    let out = invalidator(&["check", guests::HOSTILE]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("wasi:cli/environment"), "{shown}");
    assert!(shown.contains("warning: the rule imports WASI"), "{shown}");
}

#[test]
fn new_refuses_a_bad_name_and_a_folder_in_use() {
    let out = invalidator(&["new", "Bad-Name", "--lang", "python"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("`Bad-Name` is not a usable rule name"),
        "{}",
        text(&out)
    );
    let dir = fresh_dir("new-in-use");
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let out = invalidator(&["new", "fine", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("already exists and is not empty"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn test_without_a_fixture_names_the_file_it_looked_for() {
    let out = invalidator(&["test", guests::TURNUS]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no fixture file"), "{}", text(&out));
    assert!(text(&out).contains("turnus.test.jsonl"), "{}", text(&out));
}
