//! Property tests at the boundaries where bytes come in: the commit JSON
//! decoder, and the flat commit layout a rule reads through the SDK.
//!
//! The HTTP boundary is tested the same way against a real `serve`, in
//! `host/tests/http.rs`. Failures print the shrunk input; set
//! `PROPTEST_CASES` for a longer run.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use invalidator::commit::{
    Commit, Op, Row, Value, Write, commit_from_value, for_each_commit, parse_json,
};
use invalidator::rules::{LoadedRule, RuleSet, Runtime, SandboxConfig};
use invalidator::targets::TargetSet;
use invalidator_tests::guests;
use proptest::prelude::*;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(SandboxConfig::default()).expect("runtime"))
}

fn rule_set(paths: &[&str]) -> RuleSet {
    let loaded = paths
        .iter()
        .map(|p| LoadedRule::load(runtime(), Path::new(p)).expect(p))
        .collect();
    RuleSet::new(loaded).expect("unique names")
}

// ---- strategies -------------------------------------------------------------

/// Text with multi-byte characters, metacharacters and controls.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,8}",
        "[a-zé߀😀\\\\\"\\n\\t|:;=\\[\\]-]{0,12}",
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![
            any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()),
            Just(0.1),
            Just(-0.0),
            Just(1e300),
            Just(5e-324),
        ]
        .prop_map(Value::Float),
        text().prop_map(Value::Text),
    ]
}

/// A row: distinct column names (a JSON object cannot repeat a key), in
/// any order, possibly none.
fn row() -> impl Strategy<Value = Row> {
    prop::collection::vec((text(), value()), 0..5).prop_map(|cols| {
        let mut seen = std::collections::HashSet::new();
        cols.into_iter()
            .filter(|(name, _)| seen.insert(name.clone()))
            .collect()
    })
}

fn write(tables: Vec<String>) -> impl Strategy<Value = Write> {
    let table = prop::sample::select(tables);
    (table, 0..3u8, row(), row(), row()).prop_map(|(table, op, key, before, after)| {
        let (op, before, after) = match op {
            0 => (Op::Insert, None, Some(after)),
            1 => (
                Op::Update,
                Some(before).filter(|b| !b.is_empty()),
                Some(after),
            ),
            _ => (Op::Delete, Some(before).filter(|b| !b.is_empty()), None),
        };
        Write {
            table,
            op,
            key,
            before,
            after,
        }
    })
}

fn commit_over(tables: Vec<String>, max_writes: usize) -> impl Strategy<Value = Commit> {
    (
        text(),
        prop::option::of(text()),
        prop::collection::vec(write(tables), 0..max_writes),
    )
        .prop_map(|(txn, source, writes)| Commit {
            txn,
            source,
            writes,
        })
}

/// Any commit, with any (non-empty) table names.
fn commit() -> impl Strategy<Value = Commit> {
    prop::collection::vec(
        text().prop_filter("tables are named", |t| !t.is_empty()),
        1..4,
    )
    .prop_flat_map(|tables| commit_over(tables, 5))
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<u64>().prop_map(J::from),
        any::<f64>().prop_map(J::from),
        text().prop_map(J::String),
        prop::sample::select(vec!["insert", "update", "delete", "txn", "writes"])
            .prop_map(|s| J::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let names = prop_oneof![
            prop::sample::select(vec![
                "txn", "source", "writes", "table", "op", "key", "before", "after",
            ])
            .prop_map(String::from),
            text(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::btree_map(names, inner, 0..6)
                .prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

// ---- encoding a commit as JSON, in the order given ---------------------------

fn json_row(row: &Row) -> String {
    let fields: Vec<String> = row
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::Null => "null".to_owned(),
                Value::Boolean(b) => b.to_string(),
                Value::Integer(n) => n.to_string(),
                Value::Float(f) => serde_json::to_string(f).unwrap(),
                Value::Text(s) => serde_json::to_string(s).unwrap(),
            };
            format!("{}:{value}", serde_json::to_string(name).unwrap())
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn json_commit(c: &Commit) -> String {
    let writes: Vec<String> = c
        .writes
        .iter()
        .map(|w| {
            let op = match w.op {
                Op::Insert => "insert",
                Op::Update => "update",
                Op::Delete => "delete",
            };
            let mut s = format!(
                "{{\"table\":{},\"op\":\"{op}\",\"key\":{}",
                serde_json::to_string(&w.table).unwrap(),
                json_row(&w.key)
            );
            if let Some(b) = &w.before {
                s += &format!(",\"before\":{}", json_row(b));
            }
            if let Some(a) = &w.after {
                s += &format!(",\"after\":{}", json_row(a));
            }
            s + "}"
        })
        .collect();
    let source = c
        .source
        .as_ref()
        .map(|s| format!(",\"source\":{}", serde_json::to_string(s).unwrap()))
        .unwrap_or_default();
    format!(
        "{{\"txn\":{}{source},\"writes\":[{}]}}",
        serde_json::to_string(&c.txn).unwrap(),
        writes.join(",")
    )
}

// ---- the echo guest's encoding, computed on the host side ------------------

fn echo_text(out: &mut String, s: &str) {
    out.push_str(&format!("{}:{s}", s.len()));
}

fn echo_row(out: &mut String, row: Option<&Row>) {
    let Some(row) = row else {
        out.push('-');
        return;
    };
    out.push_str(&format!("[{}", row.len()));
    for (column, value) in row {
        out.push(';');
        echo_text(out, column);
        out.push('=');
        match value {
            Value::Null => out.push('N'),
            Value::Boolean(b) => out.push_str(if *b { "B1" } else { "B0" }),
            Value::Integer(n) => out.push_str(&format!("I{n}")),
            Value::Float(f) => out.push_str(&format!("F{:x}", f.to_bits())),
            Value::Text(s) => {
                out.push('T');
                echo_text(out, s);
            }
        }
    }
    out.push(']');
}

/// The keys the echo guest must return for `c`.
fn echoed(c: &Commit) -> TargetSet {
    let mut head = String::from("c|");
    echo_text(&mut head, &c.txn);
    head.push('|');
    match &c.source {
        Some(s) => echo_text(&mut head, s),
        None => head.push('-'),
    }
    let mut set = TargetSet::new();
    set.keys.insert(head);
    for (i, w) in c.writes.iter().enumerate() {
        let op = match w.op {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        };
        let mut key = format!("w|{i:06}|");
        echo_text(&mut key, &w.table);
        key.push_str(&format!("|{op}|"));
        echo_row(&mut key, Some(&w.key));
        key.push('|');
        echo_row(&mut key, w.before.as_ref());
        key.push('|');
        echo_row(&mut key, w.after.as_ref());
        set.keys.insert(key);
    }
    set
}

// ---- the properties ------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder, and every line that is
    /// not a commit is reported with its own line number.
    #[test]
    fn arbitrary_bytes_are_refused_line_by_line(lines in prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|b| String::from_utf8_lossy(&b).replace('\n', " ")),
            text().prop_map(|t| t.replace('\n', " ")),
            Just(r#"{"txn":"ok","writes":[]}"#.to_owned()),
        ],
        0..12,
    )) {
        let input = lines.join("\n");
        let mut diagnostics = Vec::new();
        let mut good = 0;
        let malformed = for_each_commit(Cursor::new(input.as_bytes()), &mut diagnostics, |_| {
            good += 1;
            Ok(())
        })
        .unwrap();
        let diagnostics = String::from_utf8(diagnostics).unwrap();
        let reported: Vec<usize> = diagnostics
            .lines()
            .map(|l| {
                let rest = l.strip_prefix("error: line ").unwrap_or_else(|| panic!("{l:?}"));
                rest.split(':').next().unwrap().parse().unwrap()
            })
            .collect();
        // `str::lines` is how the decoder sees the input, too.
        let expected: Vec<usize> = input
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && parse_json(l).is_err())
            .map(|(i, _)| i + 1)
            .collect();
        prop_assert_eq!(&reported, &expected);
        prop_assert_eq!(malformed as usize, expected.len());
        prop_assert_eq!(
            good,
            input.lines().filter(|l| !l.trim().is_empty()).count() - expected.len()
        );
    }

    /// Arbitrary JSON values never panic the decoder, and the text and
    /// value forms agree.
    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let from_text = parse_json(&value.to_string());
        let from_value = commit_from_value(value);
        match (from_text, from_value) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            // The text form's message adds where in the line it failed.
            (Err(a), Err(b)) => prop_assert!(
                a.to_string().starts_with(&b.to_string()),
                "text: {a}; value: {b}"
            ),
            (a, b) => prop_assert!(false, "text {a:?} but value {b:?}"),
        }
    }

    /// A valid commit, written as JSON, reads back exactly.
    #[test]
    fn valid_commits_round_trip(c in commit()) {
        let json = json_commit(&c);
        let back = parse_json(&json).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
        prop_assert_eq!(back, c, "{}", json);
    }

    /// What a rule reads through the SDK is exactly what the host was
    /// given: names and text with multi-byte characters, empty rows,
    /// absent images, every kind of value.
    #[test]
    fn a_rule_reads_exactly_the_commit_the_host_was_given(c in commit()) {
        static ECHO: OnceLock<RuleSet> = OnceLock::new();
        let echo = ECHO.get_or_init(|| rule_set(&[guests::ECHO]));
        let outcome = echo.evaluate(&c);
        prop_assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        // A rule is called for the writes to its tables: a commit with no
        // writes calls no rule.
        let expected = if c.writes.is_empty() { TargetSet::new() } else { echoed(&c) };
        prop_assert_eq!(outcome.targets, expected);
    }
}

/// The tables and columns the example rules read, so that random commits
/// reach their code, with values of every kind (so that some fail).
fn example_write() -> impl Strategy<Value = Write> {
    const TABLES: &[&str] = &[
        "customers",
        "inventory",
        "offers",
        "deal_bookings",
        "gl_entries",
        "hedge_instructions",
        "position_nav_master",
        "geld",
        "kinder",
        "notizen",
        "schwerpunkte",
        "auslagerorte",
        "user_profiles",
        "bills",
        "catalog",
        "contacts",
        "employees",
        "orders",
        "products",
        "relationships",
        "staff",
        "transactions",
        "users",
        "unrelated",
    ];
    const COLUMNS: &[&str] = &[
        "id",
        "vin",
        "customer_id",
        "payment_method",
        "credit_score",
        "income",
        "price",
        "status",
        "name",
        "currency",
        "entity",
        "entity_id",
        "turnus_id",
        "shop_id",
    ];
    let value = prop_oneof![
        3 => (0i64..4).prop_map(Value::Integer),
        2 => prop::sample::select(vec!["card", "cash", "A", "é"]).prop_map(Value::from),
        1 => value(),
    ];
    let row =
        prop::collection::btree_map(prop::sample::select(COLUMNS), value, 0..5).prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Row>()
        });
    (
        prop::sample::select(TABLES),
        0..3u8,
        row.clone(),
        row.clone(),
        row,
    )
        .prop_map(|(table, op, key, before, after)| {
            let (op, before, after) = match op {
                0 => (Op::Insert, None, Some(after)),
                1 => (Op::Update, Some(before), Some(after)),
                _ => (Op::Delete, Some(before), None),
            };
            Write {
                table: table.to_owned(),
                op,
                key,
                before,
                after,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Commits laid out as one batch give the example rules' targets
    /// exactly as commit by commit does.
    #[test]
    fn a_batch_gives_the_targets_of_its_commits_one_by_one(commits in prop::collection::vec(
        (prop::option::of(prop::sample::select(vec!["app", "admin"])),
         prop::collection::vec(example_write(), 1..4)),
        1..6,
    )) {
        static EXAMPLES: OnceLock<RuleSet> = OnceLock::new();
        let rules = EXAMPLES.get_or_init(|| {
            rule_set(&[guests::DEALERSHIP, guests::HEDGE, guests::TURNUS, guests::POS])
        });
        let commits: Vec<Commit> = commits
            .into_iter()
            .enumerate()
            .map(|(i, (source, writes))| Commit {
                txn: format!("t{i}"),
                source: source.map(str::to_owned),
                writes,
            })
            .collect();
        let batch = rules.evaluate_batch(&commits);
        let mut one_by_one = TargetSet::new();
        let mut failures = Vec::new();
        for c in &commits {
            let o = rules.evaluate(c);
            one_by_one.merge(o.targets);
            failures.extend(o.failures.into_iter().map(|f| (f.rule, f.message)));
        }
        prop_assert_eq!(batch.targets, one_by_one);
        let mut batch_failures: Vec<_> =
            batch.failures.into_iter().map(|f| (f.rule, f.message)).collect();
        batch_failures.sort();
        failures.sort();
        prop_assert_eq!(batch_failures, failures);
    }
}
