//! The `invalidator` command as a user runs it: `run` and `check` on real
//! rule components, good and bad input.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use invalidator_tests::{fresh_dir, guests};

fn invalidator(args: &[&str], stdin: Option<&str>) -> Output {
    invalidator_with(args, stdin.unwrap_or(""), &[])
}

/// `invalidator ARGS` with `envs`, fed `stdin`.
fn invalidator_with(args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_invalidator"))
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the invalidator binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// A folder holding the four example rules.
fn example_rules(name: &str) -> PathBuf {
    let dir = fresh_dir(name);
    for (name, path) in [
        ("dealership", guests::DEALERSHIP),
        ("hedge", guests::HEDGE),
        ("turnus", guests::TURNUS),
        ("pos", guests::POS),
    ] {
        std::fs::copy(path, dir.join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

const COMMITS: &str = r#"{"txn":"a","writes":[{"table":"kinder","op":"update","key":{"id":1},"before":{"id":1,"turnus_id":3},"after":{"id":1,"turnus_id":4}}]}
{"txn":"b","writes":[{"table":"inventory","op":"insert","key":{"vin":"V1"},"after":{"vin":"V1","price":9}},{"table":"employees","op":"delete","key":{"id":2},"before":{"id":2,"shop_id":5}}]}
"#;

#[test]
fn run_prints_one_sorted_line_per_commit_in_order() {
    let dir = example_rules("run");
    let out = invalidator(
        &["run", "--rules", dir.to_str().unwrap(), "--events", "-"],
        Some(COMMITS),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<&str> = text(&out.stdout).lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"txn":"a","keys":["turnus_data_3","turnus_data_4"],"patterns":[],"tags":[],"errors":[]}"#,
            r#"{"txn":"b","keys":["vehicle:V1"],"patterns":[],"tags":["inventory","offers:vehicle:V1","shop:5:employees","shop:5:staff","shop:5:users"],"errors":[]}"#,
        ]
    );
}

#[test]
fn run_reports_a_malformed_line_by_number_and_goes_on() {
    let dir = example_rules("malformed");
    let events = dir.join("events.jsonl");
    let input = format!("{}not json\n\n{}", COMMITS, COMMITS.lines().next().unwrap());
    std::fs::write(&events, input).unwrap();
    let out = invalidator(
        &[
            "run",
            "--rules",
            dir.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: line 3:"),
        "{}",
        text(&out.stderr)
    );
    let txns: Vec<&str> = text(&out.stdout).lines().map(|l| &l[8..9]).collect();
    assert_eq!(txns, ["a", "b", "a"]);
}

#[test]
fn run_shows_rule_errors_with_their_fallback() {
    let dir = example_rules("fallback");
    let out = invalidator(
        &["run", "--rules", dir.to_str().unwrap(), "--events", "-"],
        Some(
            r#"{"txn":"c","writes":[{"table":"bills","op":"insert","key":{"id":1},"after":{"id":1}}]}"#,
        ),
    );
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"txn":"c","keys":[],"patterns":["shop:*"],"tags":[],"errors":[{"rule":"pos","kind":"returned","message":"missing column `shop_id` in table `bills`"}]}"#
    );
}

#[test]
fn run_with_a_missing_events_file_fails_naming_it() {
    let dir = example_rules("missing");
    let out = invalidator(
        &[
            "run",
            "--rules",
            dir.to_str().unwrap(),
            "--events",
            "/nonexistent/events.jsonl",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`/nonexistent/events.jsonl`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_describes_a_good_rule() {
    let out = invalidator(&["check", guests::TURNUS], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("is rule turnus 1.0.0"), "{stdout}");
    assert!(
        stdout
            .contains("tables:   kinder, schwerpunkte, notizen, geld, auslagerorte, user_profiles"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fallback: pattern turnus_data_*, pattern user_profile_*"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_bad_files() {
    let garbage = std::env::temp_dir().join(format!(
        "invalidator-cli-{}-garbage.wasm",
        std::process::id()
    ));
    std::fs::write(&garbage, "not wasm at all").unwrap();
    for (path, expected) in [
        (
            garbage.to_str().unwrap(),
            "is not a valid WebAssembly component",
        ),
        (
            guests::WRONG_WORLD,
            "does not implement the `invalidator:rules/rule@0.2.0` world",
        ),
        (
            guests::OLD_WIT,
            "it was built against `invalidator:rules@0.1.0`; rebuild it with an SDK for 0.2.0",
        ),
        (
            "/nonexistent/rule.wasm",
            "cannot read `/nonexistent/rule.wasm`",
        ),
    ] {
        let out = invalidator(&["check", path], None);
        assert_eq!(out.status.code(), Some(1), "{path}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{path}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn diff_prints_the_commits_whose_targets_differ_and_exits_1() {
    let dir = example_rules("diff");
    // Two "versions": the turnus rule, and the same rule beside the
    // dealership rule in one folder, which adds the dealership's targets.
    let both = dir.join("both");
    std::fs::create_dir_all(&both).unwrap();
    std::fs::copy(guests::TURNUS, both.join("turnus.wasm")).unwrap();
    std::fs::copy(guests::DEALERSHIP, both.join("dealership.wasm")).unwrap();
    let out = invalidator(
        &[
            "diff",
            guests::TURNUS,
            both.to_str().unwrap(),
            "--events",
            "-",
        ],
        Some(COMMITS),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines: Vec<&str> = text(&out.stdout).lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"txn":"b","added":{"keys":["vehicle:V1"],"patterns":[],"tags":["inventory","offers:vehicle:V1"]},"removed":{"keys":[],"patterns":[],"tags":[]},"old_failed":false,"new_failed":false}"#
        ]
    );
    assert!(text(&out.stderr).contains("1 of 2 commits differ"));

    let same = invalidator(
        &["diff", guests::TURNUS, guests::TURNUS, "--events", "-"],
        Some(COMMITS),
    );
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert!(same.stdout.is_empty());

    let broken = invalidator(
        &["diff", guests::TURNUS, "/nonexistent.wasm", "--events", "-"],
        Some(COMMITS),
    );
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        text(&broken.stderr).contains("/nonexistent.wasm"),
        "{}",
        text(&broken.stderr)
    );
}

/// `invalidator` with `RUST_LOG` set to `filter`.
fn invalidator_logging(args: &[&str], stdin: &str, filter: &str) -> Output {
    invalidator_with(args, stdin, &[("RUST_LOG", filter)])
}

/// A rule that logs a thousand 4 KiB lines in one call gets its first 100
/// into the logs, and one line saying how many were dropped.
#[test]
fn a_rule_call_logs_at_most_its_budget_of_lines() {
    let commit = r#"{"txn":"s","writes":[{"table":"spam","op":"insert","key":{"id":1},"after":{"id":1,"n":1000}}]}"#;
    let out = invalidator_logging(
        &["run", "--rules", guests::HOSTILE, "--events", "-"],
        &format!("{commit}\n"),
        "info",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("spammed"),
        "{}",
        text(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logged = stderr
        .lines()
        .filter(|l| l.contains(&"x".repeat(64)))
        .count();
    assert_eq!(logged, 100, "lines of the rule in the logs");
    assert!(
        stderr.contains("dropped 900 log lines"),
        "one line says how many were dropped: {}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
}

/// What a rule logs or says in an error reaches the logs escaped: it can
/// neither start a forged line nor send a terminal escape sequence.
#[test]
fn rule_text_in_the_logs_is_escaped() {
    let commit = r#"{"txn":"i","writes":[{"table":"inject","op":"insert","key":{"id":1},"after":{"id":1}}]}"#;
    let out = invalidator_logging(
        &["run", "--rules", guests::HOSTILE, "--events", "-"],
        &format!("{commit}\n"),
        "info",
    );
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains('\x1b'),
        "no escape byte reaches the terminal: {stderr:?}"
    );
    assert!(stderr.contains("innocent\\n\\u{1b}[31mFORGED"), "{stderr}");
    assert!(stderr.contains("bad\\n\\u{1b}[2Jcleared"), "{stderr}");
    for line in stderr.lines().filter(|l| l.contains("FORGED")) {
        assert!(line.contains("innocent"), "a forged line: {line}");
    }
}

/// A version that looks like more log fields (`6.6.6 rule=turnus ...`)
/// is shown quoted in the human log format, so that it cannot pass for
/// another rule's line; `check` shows it as it is.
#[test]
fn a_version_cannot_forge_log_fields() {
    let out = invalidator_logging(&["check", guests::EVIL_DESCRIBE], "", "info");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("is rule evil 6.6.6 rule=turnus path=/rules/turnus.wasm"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    let loaded = stderr
        .lines()
        .find(|l| l.contains("rule loaded"))
        .unwrap_or_else(|| panic!("a `rule loaded` line: {stderr}"));
    assert!(
        loaded.contains(r#"rule="evil" version="6.6.6 rule=turnus path=/rules/turnus.wasm""#),
        "{loaded}"
    );
}

// ---- the compile cache of the one-shot commands -------------------------------

/// `invalidator run --compile-cache CACHE --rules RULES` on [`COMMITS`].
fn run_cached(cache: &std::path::Path, rules: &str) -> Output {
    invalidator(
        &[
            "run",
            "--compile-cache",
            cache.to_str().unwrap(),
            "--rules",
            rules,
            "--events",
            "-",
        ],
        Some(COMMITS),
    )
}

/// The compiled entries (`*.cwasm`) in `dir`.
fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        })
        .count()
    })
}

#[test]
fn check_keeps_compiled_code_and_the_next_run_loads_it() {
    let cache = fresh_dir("cache-kept").join("cache");
    let args = [
        "check",
        "--compile-cache",
        cache.to_str().unwrap(),
        guests::TURNUS,
    ];
    let first = invalidator(&args, None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let shown = text(&first.stdout);
    assert!(
        shown.contains(&format!(
            "compiled code: kept in `{}` (0 from it, 1 compiled now)",
            cache.display()
        )),
        "{shown}"
    );
    assert_eq!(entries(&cache), 1);
    let second = invalidator(&args, None);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let shown = text(&second.stdout);
    assert!(shown.contains("(1 from it, 0 compiled now)"), "{shown}");
    // `run` loads through the same cache.
    let run = run_cached(&cache, guests::TURNUS);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(entries(&cache), 1, "nothing compiled twice");
}

#[test]
fn the_default_compile_cache_is_under_xdg_cache_home_and_can_be_turned_off() {
    let home = fresh_dir("cache-default");
    let xdg = [("XDG_CACHE_HOME", home.to_str().unwrap())];
    let out = invalidator_with(&["check", guests::POS], "", &xdg);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cache = home.join("invalidator");
    assert!(
        text(&out.stdout).contains(&format!("kept in `{}`", cache.display())),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(entries(&cache), 1);

    let off = fresh_dir("cache-off");
    let xdg = [("XDG_CACHE_HOME", off.to_str().unwrap())];
    let out = invalidator_with(&["check", "--no-compile-cache", guests::POS], "", &xdg);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("compiled code: not kept"),
        "{}",
        text(&out.stdout)
    );
    assert!(!off.join("invalidator").exists(), "nothing written");
}

#[test]
fn an_unusable_default_compile_cache_is_a_warning_and_a_named_one_an_error() {
    use std::os::unix::fs::PermissionsExt;
    // A default folder that others can write: refused as a cache, so the
    // rule is compiled as if there were none, and the user told why.
    let home = fresh_dir("cache-open");
    let open = home.join("invalidator");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let xdg = [("XDG_CACHE_HOME", home.to_str().unwrap())];
    let out = invalidator_with(&["check", guests::POS], "", &xdg);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("warning: compiled rules are not kept: ")
            && stderr.contains(&format!("`{}`", open.display())),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("compiled code: not kept"));
    assert_eq!(entries(&open), 0);

    // Named with --compile-cache, the same folder is an error.
    let out = invalidator(
        &[
            "check",
            "--compile-cache",
            open.to_str().unwrap(),
            guests::POS,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("is not safe"),
        "{stderr}"
    );

    // So is a folder inside the rules folder given.
    let rules = example_rules("cache-inside");
    let inside = rules.join("compiled");
    let out = run_cached(&inside, rules.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is inside the rules folder"), "{stderr}");
    assert!(!inside.exists(), "nothing written there");

    // And a folder beside a single rule file given as the rules: whoever
    // may write that file's folder may plant entries there.
    let beside = rules.join("cc");
    let out = run_cached(&beside, rules.join("pos.wasm").to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is inside the rules folder"), "{stderr}");
    assert!(!beside.exists(), "nothing written there");
    // A cache deeper below a single rule file's folder (a rule checked in
    // a shared folder such as /tmp, the cache in a project under it) is not.
    let deeper = rules.join("project/target/cc");
    std::fs::create_dir_all(rules.join("project/target")).unwrap();
    let out = run_cached(&deeper, rules.join("pos.wasm").to_str().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("inside the rules folder"));
}
