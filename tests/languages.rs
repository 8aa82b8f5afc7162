//! Rules in Python and JavaScript, in the real host: the Python `turnus`
//! and the JavaScript `pos` give exactly what the Rust ones give on the
//! same commits (moved rows, nulls, missing columns and their fallback,
//! inserts, deletes, non-ASCII text, large integers), one commit at a time
//! and in batches; and hostile Python and JS rules are contained as the
//! Rust one is.

use std::path::Path;

use invalidator::commit::{Commit, parse_json};
use invalidator::rules::{FailureKind, LoadedRule, RuleSet, Runtime, SandboxConfig};
use invalidator_tests::{guests, polyglot};

/// Commits for both rules, each a case the SDKs must read alike.
const CASES: &[&str] = &[
    // A child moved from one turnus to another: both.
    r#"{"txn":"moved","writes":[{"table":"kinder","op":"update","key":{"id":31},"before":{"id":31,"turnus_id":4,"name":"Mia"},"after":{"id":31,"turnus_id":5,"name":"Mia"}}]}"#,
    // Unchanged turnus: one.
    r#"{"txn":"same","writes":[{"table":"geld","op":"update","key":{"id":1},"before":{"id":1,"turnus_id":4,"amount":3},"after":{"id":1,"turnus_id":4,"amount":4}}]}"#,
    // Null before, value after; and null after.
    r#"{"txn":"nulls","writes":[{"table":"notizen","op":"update","key":{"id":2},"before":{"id":2,"turnus_id":null},"after":{"id":2,"turnus_id":9}},{"table":"geld","op":"insert","key":{"id":3},"after":{"id":3,"turnus_id":null}}]}"#,
    // A column in neither image: the rule fails, its fallback applies.
    r#"{"txn":"missing","writes":[{"table":"notizen","op":"insert","key":{"id":8},"after":{"id":8,"text":"no turnus column"}}]}"#,
    // A delete with its row, one without (the rule cannot name the
    // profile's user: its fallback applies), an update without its before
    // image.
    r#"{"txn":"deletes","writes":[{"table":"user_profiles","op":"delete","key":{"id":77},"before":{"id":77,"user_id":70,"theme":"dark"}},{"table":"user_profiles","op":"delete","key":{"id":78}},{"table":"kinder","op":"update","key":{"id":5},"after":{"id":5,"turnus_id":6}}]}"#,
    // A location: every turnus.
    r#"{"txn":"location","writes":[{"table":"auslagerorte","op":"delete","key":{"id":2}}]}"#,
    // Text ids outside ASCII, and integers beyond 2^53 and below zero.
    r#"{"txn":"text","writes":[{"table":"schwerpunkte","op":"insert","key":{"id":"Grüße-🦀"},"after":{"id":"Grüße-🦀","turnus_id":"Süd-Ost 🦀"}},{"table":"user_profiles","op":"update","key":{"id":1152921504606846976},"before":{"id":1152921504606846976,"user_id":1152921504606846977,"theme":"ü"},"after":{"id":1152921504606846976,"user_id":-9223372036854775808,"theme":"ä"}}]}"#,
    // The point of sale: a bill, a product moved between shops, a deleted
    // employee with its row.
    r#"{"txn":"pos","source":"pos","writes":[{"table":"bills","op":"insert","key":{"id":"B-1001"},"after":{"id":"B-1001","shop_id":12,"total":84.5}},{"table":"products","op":"update","key":{"sku":"TEA-1"},"before":{"sku":"TEA-1","shop_id":12},"after":{"sku":"TEA-1","shop_id":14}},{"table":"employees","op":"delete","key":{"id":5},"before":{"id":5,"shop_id":"Zürich-1"}}]}"#,
    // A customer without a shop: the fallback.
    r#"{"txn":"no-shop","writes":[{"table":"customers","op":"update","key":{"id":"C1"},"before":{"id":"C1","payment_method":"card"},"after":{"id":"C1","payment_method":"cash"}}]}"#,
    // A shop id beyond 2^53, a null shop and a table no rule wants.
    r#"{"txn":"big-shop","writes":[{"table":"products","op":"insert","key":{"sku":"X"},"after":{"sku":"X","shop_id":9007199254740993}},{"table":"bills","op":"insert","key":{"id":"B-2"},"after":{"id":"B-2","shop_id":null}},{"table":"audit","op":"insert","key":{"id":1},"after":{"id":1}}]}"#,
];

fn commits() -> Vec<Commit> {
    let mut all: Vec<Commit> = CASES
        .iter()
        .map(|line| parse_json(line).expect("a valid case"))
        .collect();
    let examples = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../example-rules/commits.jsonl"
    ))
    .unwrap();
    all.extend(examples.lines().map(|l| parse_json(l).unwrap()));
    all
}

fn set(runtime: &Runtime, path: &Path) -> RuleSet {
    RuleSet::new(vec![
        LoadedRule::load(runtime, path).expect("the rule loads"),
    ])
    .unwrap()
}

/// Both rule sets give the same targets and the same failures on every
/// commit, alone and as one batch.
fn assert_same(reference: &RuleSet, other: &RuleSet, language: &str) {
    let commits = commits();
    let mut fallbacks = 0;
    for commit in &commits {
        let want = reference.evaluate(commit);
        let got = other.evaluate(commit);
        assert_eq!(
            got.targets, want.targets,
            "{language} and Rust differ on commit {}",
            commit.txn
        );
        let show = |o: &invalidator::rules::Outcome| -> Vec<(FailureKind, String)> {
            o.failures
                .iter()
                .map(|f| (f.kind, f.message.clone()))
                .collect()
        };
        assert_eq!(show(&got), show(&want), "failures on {}", commit.txn);
        fallbacks += want.failures.len();
    }
    assert!(
        fallbacks > 0,
        "the cases include a failure and its fallback"
    );
    // A batch: one call for all of them, re-run one by one where it fails.
    let want = reference.evaluate_batch(&commits);
    let got = other.evaluate_batch(&commits);
    assert_eq!(got.targets, want.targets, "{language} batch");
    assert!(!want.targets.is_empty());
}

#[test]
fn python_turnus_gives_exactly_the_rust_turnus_targets() {
    let runtime = Runtime::new(SandboxConfig::default()).unwrap();
    let rust = set(&runtime, Path::new(guests::TURNUS));
    let python = set(&runtime, &polyglot::python_rule("turnus"));
    assert_eq!(python.rules()[0].info(), rust.rules()[0].info());
    // As the console shows it, from the components' producers sections.
    assert_eq!(python.rules()[0].language(), "python");
    assert_eq!(rust.rules()[0].language(), "rust");
    assert_same(&rust, &python, "Python");
}

#[test]
fn js_pos_gives_exactly_the_rust_pos_targets() {
    let runtime = Runtime::new(SandboxConfig::default()).unwrap();
    let rust = set(&runtime, Path::new(guests::POS));
    let js = set(&runtime, &polyglot::js_rule("pos"));
    assert_eq!(js.rules()[0].info(), rust.rules()[0].info());
    assert_eq!(js.rules()[0].language(), "javascript");
    assert_same(&rust, &js, "JavaScript");
}

#[test]
fn python_and_js_components_import_only_the_host() {
    let runtime = Runtime::new(SandboxConfig::default()).unwrap();
    for path in [polyglot::python_rule("turnus"), polyglot::js_rule("pos")] {
        let rule = LoadedRule::load(&runtime, &path).unwrap();
        let imports = rule.imports();
        assert!(
            imports.iter().all(|i| i.starts_with("invalidator:rules/")),
            "{}: {imports:?}",
            path.display()
        );
        // Within the default sandbox, with room to spare.
        let peak = rule.counters().peak_memory();
        assert!(
            peak > 0 && peak < (SandboxConfig::default().memory_limit as u64) / 2,
            "{peak}"
        );
    }
}

fn one(table: &str) -> Commit {
    parse_json(&format!(
        r#"{{"txn":"{table}","writes":[{{"table":"{table}","op":"insert","key":{{"id":1}},"after":{{"id":1,"turnus_id":3}}}}]}}"#
    ))
    .unwrap()
}

/// Each case's table makes the hostile rule `rule` misbehave: it fails
/// with that kind and a message saying so, and only its fallback stands in.
fn assert_contained(rules: &RuleSet, rule: &str, cases: &[(&str, FailureKind, &str)]) {
    for &(table, kind, says) in cases {
        let outcome = rules.evaluate(&one(table));
        assert_eq!(outcome.failures.len(), 1, "{table}: {:?}", outcome.failures);
        let failure = &outcome.failures[0];
        assert_eq!(
            (failure.rule.as_str(), failure.kind),
            (rule, kind),
            "{table}"
        );
        assert!(
            failure.message.contains(says),
            "{table}: {}",
            failure.message
        );
        assert_eq!(
            outcome.targets.keys.iter().collect::<Vec<_>>(),
            ["hostile:fallback"],
            "{table}"
        );
    }
}

/// Each case's table gets its key, with no failure.
fn assert_answers(rules: &RuleSet, cases: &[(&str, &str)]) {
    for &(table, key) in cases {
        let outcome = rules.evaluate(&one(table));
        assert!(
            outcome.failures.is_empty(),
            "{table}: {:?}",
            outcome.failures
        );
        assert!(outcome.targets.keys.contains(key), "{table}");
    }
}

/// The sandbox of the hostile-rule tests: the default, with a time limit
/// long enough that a rule grabbing memory reaches the memory limit first
/// even on a busy machine (it takes some 20 ms when quiet; under a parallel
/// build it took over the default 100 ms, and failed as `time_limit`).
fn hostile_sandbox() -> Runtime {
    Runtime::new(SandboxConfig {
        time_limit: std::time::Duration::from_secs(2),
        ..SandboxConfig::default()
    })
    .unwrap()
}

#[test]
fn a_hostile_python_rule_is_contained() {
    let runtime = hostile_sandbox();
    let hostile = LoadedRule::load(&runtime, &polyglot::python_guest("hostile")).unwrap();
    let turnus = LoadedRule::load(&runtime, Path::new(guests::TURNUS)).unwrap();
    let rules = RuleSet::new(vec![hostile, turnus]).unwrap();
    assert_contained(
        &rules,
        "hostile_py",
        &[
            ("loop", FailureKind::TimeLimit, "time limit"),
            ("grab", FailureKind::MemoryLimit, "memory limit"),
            (
                "raise",
                FailureKind::Returned,
                "ValueError: refusing on purpose",
            ),
            ("recurse", FailureKind::Returned, "RecursionError"),
            // Stubbed WASI traps: no file, no clock, no environment.
            ("escape", FailureKind::Trap, "trapped"),
        ],
    );
    // Its log line goes through the host's `log`; the same instance pool
    // serves the next call as if nothing happened; and the Rust rule beside
    // it worked throughout.
    assert_answers(
        &rules,
        &[
            ("log", "logged"),
            ("fine", "ok:fine"),
            ("kinder", "turnus_data_3"),
        ],
    );
}

#[test]
fn a_hostile_js_rule_is_contained() {
    let runtime = hostile_sandbox();
    let hostile = LoadedRule::load(&runtime, &polyglot::js_guest("hostile")).unwrap();
    let rules = RuleSet::new(vec![hostile]).unwrap();
    assert_contained(
        &rules,
        "hostile_js",
        &[
            ("loop", FailureKind::TimeLimit, "time limit"),
            ("grab", FailureKind::MemoryLimit, "memory limit"),
            (
                "throw",
                FailureKind::Returned,
                "TypeError: refusing on purpose",
            ),
        ],
    );
    assert_answers(&rules, &[("log", "logged"), ("fine", "ok:fine")]);
}
