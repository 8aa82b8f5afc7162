//! The rules benchmark: each example rule natively and as Wasm on the same
//! commits, at 1 and at 100 writes per commit.
//!
//! Run with `cargo xtask bench-rules`. Prints ns per write for each side and
//! their ratio, and the geometric mean of the ratios at 100 writes per
//! commit. Both sides run interleaved in one process, and each figure is the
//! best of several rounds, so machine noise hits both alike.
//!
//! Then the same for the rules in Python (`turnus`) and JavaScript (`pos`)
//! against the Rust ones, all as Wasm: at 1 and 100 writes per commit, and
//! at 256 one-write commits per batch through `RuleSet::evaluate_batch`, as
//! the pipeline calls it; with the memory one instance of each used. The
//! last two lines are the Python/Rust and JS/Rust ratios at 256 commits per
//! batch.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use invalidator::commit::{Commit, parse_json};
use invalidator::rules::{LoadedRule, RuleSet, Runtime, SandboxConfig};
use invalidator::targets::TargetSet;
use invalidator_rules as sdk;
use invalidator_tests::{guests, polyglot};

/// Rounds per measurement; the fastest counts.
const ROUNDS: usize = 15;
/// Minimum time of one round.
const ROUND_TIME: Duration = Duration::from_millis(80);

type NativeFn = fn(&sdk::Commit) -> Result<Vec<sdk::Target>, sdk::RuleError>;

struct Case {
    name: &'static str,
    wasm: &'static str,
    native: NativeFn,
    /// Makes the `i`-th write of the workload, as a JSON object.
    write: fn(u64) -> String,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "dealership",
            wasm: guests::DEALERSHIP,
            native: sdk::evaluate::<dealership::Dealership>,
            write: |i| match i % 3 {
                0 => format!(
                    r#"{{"table":"customers","op":"update","key":{{"id":"C{i}"}},"before":{{"id":"C{i}","name":"Ann","payment_method":"card","credit_score":700,"income":52000}},"after":{{"id":"C{i}","name":"Ann","payment_method":"{}","credit_score":700,"income":52000}}}}"#,
                    if i % 2 == 0 { "cash" } else { "card" }
                ),
                1 => format!(
                    r#"{{"table":"inventory","op":"update","key":{{"vin":"VIN{i}"}},"before":{{"vin":"VIN{i}","price":21500,"status":"listed"}},"after":{{"vin":"VIN{i}","price":19900,"status":"listed"}}}}"#
                ),
                _ => format!(
                    r#"{{"table":"offers","op":"insert","key":{{"id":{i}}},"after":{{"id":{i},"customer_id":"C{}","apr":3.9}}}}"#,
                    i / 7
                ),
            },
        },
        Case {
            name: "hedge",
            wasm: guests::HEDGE,
            native: sdk::evaluate::<hedge::Hedge>,
            write: |i| {
                let table = [
                    "hedge_instructions",
                    "position_nav_master",
                    "deal_bookings",
                    "gl_entries",
                ][(i % 4) as usize];
                format!(
                    r#"{{"table":"{table}","op":"insert","key":{{"id":{i}}},"after":{{"id":{i},"currency":"{}","entity_id":"E{}","amount":1250000.5}}}}"#,
                    ["USD", "EUR", "CHF"][(i % 3) as usize],
                    i % 11
                )
            },
        },
        Case {
            name: "turnus",
            wasm: guests::TURNUS,
            native: sdk::evaluate::<turnus::Turnus>,
            write: |i| match i % 5 {
                4 => format!(
                    r#"{{"table":"user_profiles","op":"update","key":{{"id":{i}}},"before":{{"id":{i},"user_id":{i},"theme":"dark"}},"after":{{"id":{i},"user_id":{i},"theme":"light"}}}}"#
                ),
                n => format!(
                    r#"{{"table":"{}","op":"update","key":{{"id":{i}}},"before":{{"id":{i},"turnus_id":{},"name":"x"}},"after":{{"id":{i},"turnus_id":{},"name":"y"}}}}"#,
                    ["kinder", "schwerpunkte", "notizen", "geld"][n as usize],
                    i % 13,
                    (i + n) % 13
                ),
            },
        },
        Case {
            name: "pos",
            wasm: guests::POS,
            native: sdk::evaluate::<pos::Pos>,
            write: |i| {
                let table = ["products", "customers", "bills", "employees"][(i % 4) as usize];
                format!(
                    r#"{{"table":"{table}","op":"insert","key":{{"id":{i}}},"after":{{"id":{i},"shop_id":{},"name":"item {i}","total":12.5}}}}"#,
                    i % 17
                )
            },
        },
    ]
}

/// `commits` commits of `per_commit` writes each, as host commits.
fn workload(case: &Case, per_commit: u64, commits: u64) -> Vec<Commit> {
    (0..commits)
        .map(|c| {
            let writes: Vec<String> = (0..per_commit)
                .map(|w| (case.write)(c * per_commit + w))
                .collect();
            parse_json(&format!(
                r#"{{"txn":"t{c}","writes":[{}]}}"#,
                writes.join(",")
            ))
            .expect("benchmark commits are valid")
        })
        .collect()
}

/// The same commit in the SDK's types, for the native side.
fn to_sdk(c: &Commit) -> sdk::Commit {
    use invalidator::commit::{Op, Row, Value};
    fn row(r: &Row) -> Vec<(&str, sdk::Value<'_>)> {
        r.iter()
            .map(|(name, value)| {
                let v = match value {
                    Value::Null => sdk::Value::Null,
                    Value::Boolean(b) => sdk::Value::Boolean(*b),
                    Value::Integer(i) => sdk::Value::Integer(*i),
                    Value::Float(f) => sdk::Value::Float(*f),
                    Value::Text(s) => sdk::Value::Text(s),
                };
                (name.as_str(), v)
            })
            .collect()
    }
    let mut b = sdk::Commit::build(&c.txn);
    for w in &c.writes {
        let op = match w.op {
            Op::Insert => sdk::Op::Insert,
            Op::Update => sdk::Op::Update,
            Op::Delete => sdk::Op::Delete,
        };
        let before = w.before.as_ref().map(row);
        let after = w.after.as_ref().map(row);
        b = b.write(
            &w.table,
            op,
            &row(&w.key),
            before.as_deref(),
            after.as_deref(),
        );
    }
    b.finish()
}

/// Best-of-rounds time per call of `f` over `items`, in ns per write.
fn measure<T>(items: &[T], writes_per_item: u64, mut f: impl FnMut(&T)) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut calls: u64 = 0;
        while start.elapsed() < ROUND_TIME {
            for item in items {
                f(item);
            }
            calls += items.len() as u64;
        }
        let ns = start.elapsed().as_nanos() as f64 / (calls * writes_per_item) as f64;
        best = best.min(ns);
    }
    best
}

fn main() {
    let runtime = Runtime::new(SandboxConfig::default()).expect("runtime");
    // `cargo xtask bench-rules languages`: only the Python and JS section.
    if std::env::args().any(|a| a == "languages") {
        other_languages(&runtime);
        return;
    }
    let mut ratios_100 = Vec::new();
    let mut slowest_wasm_rate = f64::INFINITY;
    println!(
        "rule        writes/commit  native ns/write  wasm ns/write  wasm/native  wasm writes/s/core"
    );
    for case in cases() {
        let rule = LoadedRule::load(&runtime, Path::new(case.wasm)).expect("example rule loads");
        for per_commit in [1u64, 100] {
            let commits = workload(&case, per_commit, if per_commit == 1 { 200 } else { 20 });
            let native_commits: Vec<sdk::Commit> = commits.iter().map(to_sdk).collect();
            // The two sides must agree before their speed means anything.
            for (c, n) in commits.iter().zip(&native_commits) {
                let wasm = rule.call(c).expect("wasm rule succeeds");
                let native = (case.native)(n).expect("native rule succeeds");
                assert_eq!(
                    format!("{wasm:?}"),
                    format!("{native:?}"),
                    "rule {}",
                    case.name
                );
            }
            let native = measure(&native_commits, per_commit, |c| {
                black_box((case.native)(black_box(c)).ok());
            });
            let wasm = measure(&commits, per_commit, |c| {
                black_box(rule.call(black_box(c)).ok());
            });
            let ratio = wasm / native;
            let rate = 1e9 / wasm;
            if per_commit == 100 {
                ratios_100.push(ratio);
                slowest_wasm_rate = slowest_wasm_rate.min(rate);
            }
            println!(
                "{:<11} {:>13}  {:>15.1}  {:>13.1}  {:>11.2}  {:>18.0}",
                case.name, per_commit, native, wasm, ratio, rate
            );
        }
    }
    println!(
        "slowest rule as wasm (100 writes per commit): {slowest_wasm_rate:.0} writes/s per core"
    );
    let geomean = (ratios_100.iter().map(|r| r.ln()).sum::<f64>() / ratios_100.len() as f64).exp();
    println!("wasm/native ratio (geomean, 100 writes per commit): {geomean:.2}");
    println!();
    other_languages(&runtime);
}

/// The Python and JS rules against the Rust ones, all as Wasm.
fn other_languages(runtime: &Runtime) {
    let all = cases();
    let find = |name: &str| all.iter().find(|c| c.name == name).expect("a case");
    let others = [
        ("python", find("turnus"), polyglot::python_rule("turnus")),
        ("js", find("pos"), polyglot::js_rule("pos")),
    ];
    println!(
        "rule    language  workload                  rust ns/write  language ns/write  language/rust  memory per instance"
    );
    let mut ratios = Vec::new();
    for (language, case, path) in &others {
        let rust = LoadedRule::load(runtime, Path::new(case.wasm)).expect("rust rule loads");
        let other = LoadedRule::load(runtime, path).expect("rule loads");
        let row = |workload: &str, rust_ns: f64, other_ns: f64| {
            let mib = other.counters().peak_memory() as f64 / f64::from(1 << 20);
            println!(
                "{:<7} {:<9} {:<25} {:>13.1}  {:>17.1}  {:>13.2}  {:>15.1} MiB",
                case.name,
                language,
                workload,
                rust_ns,
                other_ns,
                other_ns / rust_ns,
                mib
            );
            other_ns / rust_ns
        };
        for per_commit in [1u64, 100] {
            let commits = workload(case, per_commit, if per_commit == 1 { 50 } else { 5 });
            let targets = |rule: &LoadedRule, c: &Commit| {
                let mut set = TargetSet::new();
                set.extend(rule.call(c).expect("the rule succeeds"));
                set
            };
            for c in &commits {
                assert_eq!(
                    targets(&rust, c),
                    targets(&other, c),
                    "{language} {} differs from Rust on {}",
                    case.name,
                    c.txn
                );
            }
            let rust_ns = measure(&commits, per_commit, |c| {
                black_box(rust.call(black_box(c)).ok());
            });
            let other_ns = measure(&commits, per_commit, |c| {
                black_box(other.call(black_box(c)).ok());
            });
            row(&format!("{per_commit} writes/commit"), rust_ns, other_ns);
        }
        // 256 one-write commits per batch: one call per batch.
        let batches: Vec<Vec<Commit>> = (0..4).map(|_| workload(case, 1, 256)).collect();
        let rust_set = RuleSet::new(vec![rust.clone()]).unwrap();
        let other_set = RuleSet::new(vec![other.clone()]).unwrap();
        for batch in &batches {
            let (r, o) = (
                rust_set.evaluate_batch(batch),
                other_set.evaluate_batch(batch),
            );
            assert!(r.failures.is_empty() && o.failures.is_empty());
            assert_eq!(r.targets, o.targets, "{language} batch differs");
        }
        let rust_ns = measure(&batches, 256, |b| {
            black_box(rust_set.evaluate_batch(black_box(b)));
        });
        let other_ns = measure(&batches, 256, |b| {
            black_box(other_set.evaluate_batch(black_box(b)));
        });
        ratios.push((*language, row("256 commits/batch", rust_ns, other_ns)));
    }
    println!(
        "memory limit per instance (sandbox default): {} MiB",
        SandboxConfig::default().memory_limit >> 20
    );
    for (language, ratio) in ratios {
        println!("{language}/rust ratio at 256 commits per batch: {ratio:.2}");
    }
}
