//! The engine, end to end: the example rules compiled to components and run
//! through the real sandbox on the mappings of the four seed applications,
//! plus hostile rules that must be contained.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use invalidator::commit::parse_json;
use invalidator::rules::{FailureKind, LoadError, Outcome, RuleSet, Runtime, SandboxConfig};
use invalidator_tests::guests;
use tracing_subscriber::util::SubscriberInitExt;

/// One runtime for the whole binary, as a service would have.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(SandboxConfig::default()).expect("runtime"))
}

fn rules(paths: &[&str]) -> RuleSet {
    let loaded = paths
        .iter()
        .map(|p| invalidator::rules::LoadedRule::load(runtime(), Path::new(p)).expect(p))
        .collect();
    RuleSet::new(loaded).expect("unique names")
}

fn eval(set: &RuleSet, json: &str) -> Outcome {
    set.evaluate(&parse_json(json).expect("valid commit"))
}

fn keys(o: &Outcome) -> Vec<&str> {
    o.targets.keys.iter().map(String::as_str).collect()
}
fn patterns(o: &Outcome) -> Vec<&str> {
    o.targets.patterns.iter().map(String::as_str).collect()
}
fn tags(o: &Outcome) -> Vec<&str> {
    o.targets.tags.iter().map(String::as_str).collect()
}
fn errors(o: &Outcome) -> Vec<(&str, &str)> {
    o.failures
        .iter()
        .map(|f| (f.rule.as_str(), f.message.as_str()))
        .collect()
}

// ---- dealership (seed 000) -------------------------------------------------

#[test]
fn dealership_customer_payment_change_tags_their_offers() {
    let set = rules(&[guests::DEALERSHIP]);
    let o = eval(
        &set,
        r#"{"txn":"d1","writes":[{"table":"customers","op":"update","key":{"id":"K-17"},
            "before":{"id":"K-17","payment_method":"lease","credit_score":640,"income":41000},
            "after":{"id":"K-17","payment_method":"lease","credit_score":655,"income":41000}}]}"#,
    );
    assert_eq!(keys(&o), ["customer:K-17"]);
    assert_eq!(tags(&o), ["offers:customer:K-17"]);
    assert!(patterns(&o).is_empty() && o.failures.is_empty());
}

#[test]
fn dealership_customer_address_change_keeps_offers() {
    let set = rules(&[guests::DEALERSHIP]);
    let o = eval(
        &set,
        r#"{"txn":"d2","writes":[{"table":"customers","op":"update","key":{"id":99},
            "before":{"id":99,"city":"Graz","payment_method":"cash","credit_score":700,"income":1},
            "after":{"id":99,"city":"Linz","payment_method":"cash","credit_score":700,"income":1}}]}"#,
    );
    assert_eq!(keys(&o), ["customer:99"]);
    assert!(tags(&o).is_empty(), "{o:?}");
}

#[test]
fn dealership_update_without_before_counts_every_column_changed() {
    let set = rules(&[guests::DEALERSHIP]);
    let o = eval(
        &set,
        r#"{"txn":"d3","writes":[{"table":"customers","op":"update","key":{"id":"K-2"},
            "after":{"id":"K-2","payment_method":"card"}}]}"#,
    );
    assert_eq!(keys(&o), ["customer:K-2"]);
    assert_eq!(tags(&o), ["offers:customer:K-2"]);
}

#[test]
fn dealership_customer_delete_and_insert_tag_offers() {
    let set = rules(&[guests::DEALERSHIP]);
    let o = eval(
        &set,
        r#"{"txn":"d4","writes":[
            {"table":"customers","op":"delete","key":{"id":"A"},"before":{"id":"A","income":5}},
            {"table":"customers","op":"insert","key":{"id":"B"},"after":{"id":"B","income":6}}]}"#,
    );
    assert_eq!(keys(&o), ["customer:A", "customer:B"]);
    assert_eq!(tags(&o), ["offers:customer:A", "offers:customer:B"]);
}

#[test]
fn dealership_inventory_price_and_status_changes() {
    let set = rules(&[guests::DEALERSHIP]);
    let price = eval(
        &set,
        r#"{"txn":"d5","writes":[{"table":"inventory","op":"update","key":{"vin":"WVW1"},
            "before":{"vin":"WVW1","price":30000.0,"status":"listed","color":"red"},
            "after":{"vin":"WVW1","price":28999.5,"status":"listed","color":"red"}}]}"#,
    );
    assert_eq!(keys(&price), ["vehicle:WVW1"]);
    assert_eq!(tags(&price), ["inventory", "offers:vehicle:WVW1"]);
    let color = eval(
        &set,
        r#"{"txn":"d6","writes":[{"table":"inventory","op":"update","key":{"vin":"WVW1"},
            "before":{"vin":"WVW1","price":1,"status":"listed","color":"red"},
            "after":{"vin":"WVW1","price":1,"status":"listed","color":"blue"}}]}"#,
    );
    assert_eq!(keys(&color), ["vehicle:WVW1"]);
    assert_eq!(tags(&color), ["inventory"]);
    let arrival = eval(
        &set,
        r#"{"txn":"d7","writes":[{"table":"inventory","op":"insert","key":{"vin":"NEW1"},
            "after":{"vin":"NEW1","price":1,"status":"listed"}}]}"#,
    );
    assert_eq!(tags(&arrival), ["inventory", "offers:vehicle:NEW1"]);
}

#[test]
fn dealership_offer_moved_between_customers_invalidates_both() {
    let set = rules(&[guests::DEALERSHIP]);
    let o = eval(
        &set,
        r#"{"txn":"d8","writes":[{"table":"offers","op":"update","key":{"id":501},
            "before":{"id":501,"customer_id":"K-1","apr":3.9},
            "after":{"id":501,"customer_id":"K-2","apr":3.9}}]}"#,
    );
    assert_eq!(keys(&o), ["offer:501"]);
    assert_eq!(tags(&o), ["offers:customer:K-1", "offers:customer:K-2"]);
}

// ---- hedge (seed 001) ------------------------------------------------------

#[test]
fn hedge_tables_map_to_their_view_patterns() {
    let set = rules(&[guests::HEDGE]);
    let cases: &[(&str, &[&str])] = &[
        (
            "hedge_instructions",
            &[
                "*allocation_drift*",
                "*exposure_analysis*",
                "*hedge_effectiveness*",
                "*hedge_positions*",
                "*v_available_amounts_fast*",
                "*v_entity_capacity_complete*",
            ],
        ),
        (
            "position_nav_master",
            &[
                "*nav_calculations*",
                "*portfolio_valuation*",
                "*position_nav_master*",
                "*v_available_amounts_fast*",
                "*v_entity_capacity_complete*",
            ],
        ),
        (
            "deal_bookings",
            &[
                "*deal_bookings*",
                "*hedge_positions*",
                "*portfolio_structure*",
                "*real_time_pnl*",
            ],
        ),
        (
            "gl_entries",
            &["*gl_entries*", "*portfolio_valuation*", "*real_time_pnl*"],
        ),
    ];
    for (table, expected) in cases {
        let o = eval(
            &set,
            &format!(
                r#"{{"txn":"h","writes":[{{"table":"{table}","op":"update","key":{{"id":1}},"after":{{"id":1}}}}]}}"#
            ),
        );
        assert_eq!(patterns(&o), *expected, "table {table}");
        assert!(
            keys(&o).is_empty() && tags(&o).is_empty(),
            "table {table}: {o:?}"
        );
    }
}

#[test]
fn hedge_currency_and_entity_tags_follow_the_row() {
    let set = rules(&[guests::HEDGE]);
    let o = eval(
        &set,
        r#"{"txn":"h2","writes":[{"table":"deal_bookings","op":"update","key":{"id":4},
            "before":{"id":4,"currency":"EUR","entity_id":42},
            "after":{"id":4,"currency":"CHF","entity_id":42}}]}"#,
    );
    assert_eq!(tags(&o), ["currency:CHF", "currency:EUR", "entity:42"]);
    let none = eval(
        &set,
        r#"{"txn":"h3","writes":[{"table":"gl_entries","op":"insert","key":{"id":5},
            "after":{"id":5,"currency":null}}]}"#,
    );
    assert!(tags(&none).is_empty(), "{none:?}");
    let other = eval(
        &set,
        r#"{"txn":"h4","writes":[{"table":"audit_log","op":"insert","key":{"id":5},"after":{"id":5,"currency":"USD"}}]}"#,
    );
    assert!(other.targets.is_empty(), "unsubscribed table: {other:?}");
}

// ---- turnus (seed 002) -----------------------------------------------------

#[test]
fn turnus_rows_invalidate_their_turnus_page() {
    let set = rules(&[guests::TURNUS]);
    for table in ["kinder", "schwerpunkte", "notizen", "geld"] {
        let o = eval(
            &set,
            &format!(
                r#"{{"txn":"u","writes":[{{"table":"{table}","op":"insert","key":{{"id":1}},"after":{{"id":1,"turnus_id":2026}}}}]}}"#
            ),
        );
        assert_eq!(keys(&o), ["turnus_data_2026"], "table {table}");
    }
}

#[test]
fn turnus_child_moved_invalidates_both_turnuses() {
    let set = rules(&[guests::TURNUS]);
    let o = eval(
        &set,
        r#"{"txn":"u2","writes":[{"table":"kinder","op":"update","key":{"id":77},
            "before":{"id":77,"turnus_id":11},"after":{"id":77,"turnus_id":12}}]}"#,
    );
    assert_eq!(keys(&o), ["turnus_data_11", "turnus_data_12"]);
}

#[test]
fn turnus_locations_and_profiles() {
    let set = rules(&[guests::TURNUS]);
    let o = eval(
        &set,
        r#"{"txn":"u3","writes":[
            {"table":"auslagerorte","op":"update","key":{"id":3},"after":{"id":3,"name":"Halle"}},
            {"table":"user_profiles","op":"delete","key":{"id":7},"before":{"id":7,"user_id":"u-5"}}]}"#,
    );
    assert_eq!(patterns(&o), ["turnus_data_*"]);
    assert_eq!(keys(&o), ["user_profile_u-5"]);
}

#[test]
fn turnus_null_produces_nothing_and_missing_column_applies_fallback() {
    let set = rules(&[guests::TURNUS]);
    let null = eval(
        &set,
        r#"{"txn":"u4","writes":[{"table":"geld","op":"update","key":{"id":1},
            "before":{"id":1,"turnus_id":null},"after":{"id":1,"turnus_id":null}}]}"#,
    );
    assert!(
        null.targets.is_empty() && null.failures.is_empty(),
        "{null:?}"
    );
    let missing = eval(
        &set,
        r#"{"txn":"u5","writes":[{"table":"notizen","op":"insert","key":{"id":1},"after":{"id":1}}]}"#,
    );
    assert_eq!(
        errors(&missing),
        [("turnus", "missing column `turnus_id` in table `notizen`")]
    );
    assert_eq!(patterns(&missing), ["turnus_data_*", "user_profile_*"]);
}

// ---- pos (seed 003) --------------------------------------------------------

#[test]
fn pos_tables_map_to_shop_scoped_tags() {
    let set = rules(&[guests::POS]);
    let cases: &[(&str, &[&str])] = &[
        (
            "products",
            &["catalog", "dashboard", "inventory", "products"],
        ),
        (
            "customers",
            &["contacts", "customers", "dashboard", "relationships"],
        ),
        (
            "bills",
            &["bills", "dashboard", "orders", "revenue", "transactions"],
        ),
        ("employees", &["employees", "staff", "users"]),
    ];
    for (table, names) in cases {
        let o = eval(
            &set,
            &format!(
                r#"{{"txn":"p","writes":[{{"table":"{table}","op":"delete","key":{{"id":1}},"before":{{"id":1,"shop_id":"s9"}}}}]}}"#
            ),
        );
        let expected: Vec<String> = names.iter().map(|n| format!("shop:s9:{n}")).collect();
        assert_eq!(tags(&o), expected, "table {table}");
    }
}

#[test]
fn pos_product_moved_shop_invalidates_both_shops() {
    let set = rules(&[guests::POS]);
    let o = eval(
        &set,
        r#"{"txn":"p2","writes":[{"table":"products","op":"update","key":{"id":1},
            "before":{"id":1,"shop_id":3},"after":{"id":1,"shop_id":4}}]}"#,
    );
    assert_eq!(o.targets.tags.len(), 8);
    assert!(o.targets.tags.contains("shop:3:catalog") && o.targets.tags.contains("shop:4:catalog"));
}

#[test]
fn pos_missing_shop_applies_fallback() {
    let set = rules(&[guests::POS]);
    let o = eval(
        &set,
        r#"{"txn":"p3","writes":[{"table":"bills","op":"insert","key":{"id":1},"after":{"id":1,"total":3}}]}"#,
    );
    assert_eq!(
        errors(&o),
        [("pos", "missing column `shop_id` in table `bills`")]
    );
    assert_eq!(patterns(&o), ["shop:*"]);
    assert!(tags(&o).is_empty());
}

// ---- the rule set ----------------------------------------------------------

#[test]
fn targets_of_all_rules_are_merged_and_each_rule_sees_only_its_tables() {
    let set = rules(&[
        guests::DEALERSHIP,
        guests::HEDGE,
        guests::TURNUS,
        guests::POS,
    ]);
    let o = eval(
        &set,
        r#"{"txn":"m","writes":[
            {"table":"inventory","op":"delete","key":{"vin":"X"},"before":{"vin":"X"}},
            {"table":"gl_entries","op":"insert","key":{"id":1},"after":{"id":1,"entity_id":"E"}},
            {"table":"kinder","op":"insert","key":{"id":1},"after":{"id":1,"turnus_id":1}},
            {"table":"kinder","op":"insert","key":{"id":2},"after":{"id":2,"turnus_id":1}}]}"#,
    );
    // No rule failed: pos is not called at all (it subscribes to none of
    // these tables) and dealership never sees the turnus writes.
    assert!(o.failures.is_empty(), "{o:?}");
    assert_eq!(keys(&o), ["turnus_data_1", "vehicle:X"]);
    assert_eq!(
        patterns(&o),
        ["*gl_entries*", "*portfolio_valuation*", "*real_time_pnl*"]
    );
    assert_eq!(tags(&o), ["entity:E", "inventory", "offers:vehicle:X"]);
}

#[test]
fn a_folder_loads_every_rule_in_name_order() {
    let dir = temp_dir("folder");
    for (name, path) in [("b", guests::TURNUS), ("a", guests::POS)] {
        std::fs::copy(path, dir.join(format!("{name}.wasm"))).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let set = RuleSet::load(runtime(), &dir).unwrap();
    let names: Vec<&str> = set.rules().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["pos", "turnus"]);
}

#[test]
fn duplicate_rule_names_are_refused() {
    let dir = temp_dir("dup");
    std::fs::copy(guests::TURNUS, dir.join("one.wasm")).unwrap();
    std::fs::copy(guests::TURNUS, dir.join("two.wasm")).unwrap();
    let err = RuleSet::load(runtime(), &dir).err().expect("must fail");
    assert!(matches!(err, LoadError::DuplicateName { .. }), "{err}");
    assert!(err.to_string().contains("`turnus`"), "{err}");
}

#[test]
fn an_empty_folder_is_an_error() {
    let dir = temp_dir("empty");
    let err = RuleSet::load(runtime(), &dir).err().expect("must fail");
    assert!(matches!(err, LoadError::Empty(_)), "{err}");
}

// ---- hostile rules ---------------------------------------------------------

fn hostile_with_turnus() -> RuleSet {
    rules(&[guests::HOSTILE, guests::TURNUS])
}

/// A commit writing `table` (which picks the hostile behaviour) and a kinder
/// row, which the well-behaved turnus rule must still answer.
fn hostile_commit(table: &str) -> String {
    format!(
        r#"{{"txn":"x","writes":[{{"table":"{table}","op":"insert","key":{{"id":1}},"after":{{"id":1}}}},
            {{"table":"kinder","op":"insert","key":{{"id":1}},"after":{{"id":1,"turnus_id":8}}}}]}}"#
    )
}

fn assert_contained(o: &Outcome, message_part: &str) {
    assert_eq!(o.failures.len(), 1, "{o:?}");
    assert_eq!(o.failures[0].rule, "hostile");
    // Each kind of message comes with its kind, for metrics and rollback.
    let kind = [
        ("time limit", FailureKind::TimeLimit),
        ("memory limit", FailureKind::MemoryLimit),
        ("trapped", FailureKind::Trap),
        ("rule error", FailureKind::Returned),
        ("budget", FailureKind::OverBudget),
    ]
    .into_iter()
    .find(|(words, _)| message_part.contains(words))
    .map(|(_, kind)| kind)
    .expect("a message of a known kind");
    assert_eq!(o.failures[0].kind, kind, "{o:?}");
    assert!(
        o.failures[0].message.contains(message_part),
        "message `{}` should mention `{message_part}`",
        o.failures[0].message
    );
    // The fallback of the failed rule, and the other rule's own answer.
    assert_eq!(keys(o), ["hostile:fallback", "turnus_data_8"]);
}

#[test]
fn an_infinite_loop_is_stopped_at_the_time_limit() {
    let set = hostile_with_turnus();
    let start = Instant::now();
    let o = eval(&set, &hostile_commit("loop"));
    assert_contained(&o, "exceeded its time limit of 100 ms");
    // It was interrupted, not left to spin: generous bound for a busy machine.
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn time_the_host_spends_writing_a_rules_log_line_is_not_counted_against_it() {
    /// Log output that takes 300 ms a line, like a full pipe to a slow
    /// collector: three times the rule's time limit, spent outside it.
    struct SlowWriter;
    impl std::io::Write for SlowWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(300));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let set = hostile_with_turnus();
    let _slow = tracing_subscriber::fmt()
        .with_writer(|| SlowWriter)
        .finish()
        .set_default();
    let start = Instant::now();
    let o = eval(&set, &hostile_commit("log"));
    // The line went through the slow writer, inside the call...
    assert!(start.elapsed() >= Duration::from_millis(300), "{o:?}");
    // ...and the rule, which did next to no work, answered.
    assert!(o.failures.is_empty(), "{o:?}");
    assert_eq!(keys(&o), ["logged", "turnus_data_8"]);
}

#[test]
fn a_memory_grab_is_stopped_at_the_memory_limit() {
    // Growing to 64 MiB can take longer than the default 100 ms on a busy
    // machine, and the time limit would then stop it first: give time
    // enough that only the memory limit can.
    let runtime = Runtime::new(SandboxConfig {
        time_limit: Duration::from_secs(10),
        ..SandboxConfig::default()
    })
    .expect("runtime");
    let loaded = [guests::HOSTILE, guests::TURNUS]
        .iter()
        .map(|p| invalidator::rules::LoadedRule::load(&runtime, Path::new(p)).expect(p))
        .collect();
    let set = RuleSet::new(loaded).expect("unique names");
    let o = eval(&set, &hostile_commit("grab"));
    assert_contained(&o, "exceeded its memory limit of 64 MiB");
}

#[test]
fn a_trap_is_contained() {
    let set = hostile_with_turnus();
    let o = eval(&set, &hostile_commit("trap"));
    assert_contained(&o, "trapped");
}

#[test]
fn a_returned_error_applies_the_fallback() {
    let set = hostile_with_turnus();
    let o = eval(&set, &hostile_commit("fail"));
    assert_contained(&o, "rule error: refusing on purpose");
}

#[test]
fn the_engine_keeps_working_after_hostile_calls() {
    let set = hostile_with_turnus();
    for table in ["loop", "grab", "trap", "fail"] {
        assert_eq!(eval(&set, &hostile_commit(table)).failures.len(), 1);
    }
    // Many calls after the failures: no leaked instance slots or memory.
    for i in 0..300 {
        let o = eval(&set, &hostile_commit("fine"));
        assert!(o.failures.is_empty(), "call {i}: {o:?}");
        assert_eq!(keys(&o), ["ok:fine", "turnus_data_8"]);
    }
}

#[test]
fn a_rule_sees_no_clock_randomness_environment_or_files() {
    let set = rules(&[guests::HOSTILE]);
    let first = eval(&set, &hostile_commit("escape"));
    assert!(first.failures.is_empty(), "{first:?}");
    let k = keys(&first);
    assert!(k.contains(&"clock:0"), "{k:?}");
    assert!(k.contains(&"env:0") && k.contains(&"args:0"), "{k:?}");
    assert!(k.contains(&"fs:denied"), "{k:?}");
    // Same commit, same targets, even for a rule that tries to be random.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(eval(&set, &hostile_commit("escape")), first);
}

#[test]
fn a_rule_that_logs_is_linked_and_answers() {
    let set = rules(&[guests::HOSTILE]);
    let o = eval(&set, &hostile_commit("log"));
    assert_eq!(keys(&o), ["logged"]);
}

#[test]
fn a_component_of_another_world_is_refused() {
    let err = invalidator::rules::LoadedRule::load(runtime(), Path::new(guests::WRONG_WORLD))
        .err()
        .expect("must fail");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("wrong_world.wasm") && msg.contains("invalidator:rules/rule"),
        "{msg}"
    );
}

#[test]
fn garbage_and_core_modules_are_not_components() {
    let garbage = invalidator::rules::LoadedRule::from_bytes(
        runtime(),
        Path::new("garbage.wasm"),
        b"definitely not wasm",
    )
    .err()
    .expect("must fail");
    assert!(
        matches!(garbage, LoadError::NotComponent { .. }),
        "{garbage}"
    );
    assert!(
        garbage
            .to_string()
            .starts_with("`garbage.wasm` is not a valid WebAssembly component")
    );
    // The smallest core module: magic and version 1.
    let core = invalidator::rules::LoadedRule::from_bytes(
        runtime(),
        Path::new("core.wasm"),
        b"\0asm\x01\0\0\0",
    )
    .err()
    .expect("must fail");
    assert!(matches!(core, LoadError::NotComponent { .. }), "{core}");
}

#[test]
fn a_rule_set_is_shared_across_threads() {
    let set = rules(&[guests::TURNUS, guests::DEALERSHIP]);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let set = &set;
                s.spawn(move || {
                    for i in 0..50 {
                        let o = eval(
                            set,
                            &format!(
                                r#"{{"txn":"c","writes":[{{"table":"geld","op":"insert","key":{{"id":1}},"after":{{"id":1,"turnus_id":"{t}-{i}"}}}}]}}"#
                            ),
                        );
                        assert_eq!(keys(&o), [format!("turnus_data_{t}-{i}")]);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

// ---- budgets on what a call returns -----------------------------------------

/// A runtime with small budgets, so that tests need not build megabytes.
fn small_budget_runtime() -> Runtime {
    Runtime::new(SandboxConfig {
        max_targets: 50,
        max_target_bytes: 1_000,
        max_target_len: 100,
        ..SandboxConfig::default()
    })
    .expect("runtime")
}

/// Loads the hostile rule and turnus into `runtime`.
fn hostile_in(runtime: &Runtime) -> RuleSet {
    let load = |p: &str| invalidator::rules::LoadedRule::load(runtime, Path::new(p)).expect(p);
    RuleSet::new(vec![load(guests::HOSTILE), load(guests::TURNUS)]).unwrap()
}

/// A commit asking the hostile rule for `n` keys of `len` bytes, beside a
/// kinder row for turnus.
fn emit(txn: &str, id: u32, n: usize, len: usize) -> invalidator::commit::Commit {
    parse_json(&format!(
        r#"{{"txn":"{txn}","writes":[{{"table":"emit","op":"insert","key":{{"id":{id}}},"after":{{"id":{id},"n":{n},"len":{len}}}}},
            {{"table":"kinder","op":"insert","key":{{"id":1}},"after":{{"id":1,"turnus_id":8}}}}]}}"#
    ))
    .unwrap()
}

/// A single target over the per-target budget (64 KiB by default) fails
/// the rule: it is never accepted, printed or sent to Redis.
#[test]
fn a_target_over_the_per_target_budget_fails_the_rule() {
    let set = hostile_with_turnus();
    let o = set.evaluate(&emit("big", 1, 1, 1 << 20));
    assert_contained(
        &o,
        "over the budget of 65536 bytes per target (sandbox.max_target_len)",
    );
    assert!(o.failures[0].message.contains("1048576 bytes"), "{o:?}");
    let o = set.evaluate(&emit("fits", 1, 1, 60_000));
    assert!(o.failures.is_empty(), "60,000 bytes fit the default budget");
}

#[test]
fn more_targets_than_the_budget_fail_the_rule() {
    let runtime = small_budget_runtime();
    let set = hostile_in(&runtime);
    let o = set.evaluate(&emit("many", 1, 51, 8));
    assert_contained(
        &o,
        "returned 51 targets, over the budget of 50 per call (sandbox.max_targets)",
    );
    let o = set.evaluate(&emit("enough", 1, 50, 8));
    assert!(o.failures.is_empty(), "{o:?}");
    assert_eq!(o.targets.keys.len(), 51, "50 keys and turnus's");
}

#[test]
fn more_target_bytes_than_the_budget_fail_the_rule() {
    let runtime = small_budget_runtime();
    let set = hostile_in(&runtime);
    let o = set.evaluate(&emit("bulk", 1, 20, 60));
    assert_contained(
        &o,
        "returned 1200 bytes of targets, over the budget of 1000 bytes per call",
    );
    let o = set.evaluate(&emit("some", 1, 10, 60));
    assert!(o.failures.is_empty(), "{o:?}");
}

/// The budget is per call: a batch over it is re-run commit by commit, and
/// commits that fit on their own get their own targets, not the fallback.
#[test]
fn a_batch_over_the_budget_is_rerun_commit_by_commit() {
    let runtime = small_budget_runtime();
    let set = hostile_in(&runtime);
    let o = set.evaluate_batch(&[emit("a", 1, 30, 8), emit("b", 2, 30, 8)]);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(
        o.targets.keys.len(),
        61,
        "both commits' 30 keys and turnus's"
    );
    assert!(!o.targets.keys.contains("hostile:fallback"));
}

/// Empty keys, patterns and tags are dropped and counted, never sent.
#[test]
fn empty_targets_are_dropped_and_counted() {
    let set = rules(&[guests::HOSTILE]);
    let before = set.rules()[0].counters().empty_targets();
    let o = eval(&set, &hostile_commit("empty"));
    assert!(o.failures.is_empty(), "{o:?}");
    assert_eq!(keys(&o), ["fine"]);
    assert!(patterns(&o).is_empty() && tags(&o).is_empty(), "{o:?}");
    assert_eq!(set.rules()[0].counters().empty_targets() - before, 3);
}

/// What a rule writes in an error is shown escaped: a newline or an
/// escape sequence cannot forge log lines or reach a terminal.
#[test]
fn a_rule_error_message_is_escaped() {
    let set = hostile_with_turnus();
    let o = eval(&set, &hostile_commit("inject"));
    assert_contained(&o, "rule error: bad\\n\\u{1b}[2Jcleared");
    assert!(!o.failures[0].message.contains(['\n', '\x1b']), "{o:?}");
}

/// Every guest the test build makes is accounted for: it loads as a rule,
/// or it is the one built to be refused. A new guest fails here until a
/// test decides which it is.
#[test]
fn every_guest_loads_or_is_meant_to_be_refused() {
    for (name, path) in guests::ALL {
        let loaded = invalidator::rules::LoadedRule::load(runtime(), Path::new(path));
        match *name {
            "wrong-world" => assert!(loaded.is_err(), "{name} must be refused"),
            "old-wit" => {
                let e = loaded.err().expect("a rule of WIT 0.1.0 must be refused");
                assert!(
                    e.to_string()
                        .contains("it was built against `invalidator:rules@0.1.0`"),
                    "{e}"
                );
            }
            "dealership" | "hedge" | "turnus" | "pos" | "hostile" | "echo" => {
                assert_eq!(loaded.expect(name).name(), *name);
            }
            "evil-describe" => {
                let rule = loaded.expect(name);
                assert_eq!(
                    (rule.name(), rule.info().version.as_str()),
                    ("evil", "6.6.6 rule=turnus path=/rules/turnus.wasm"),
                    "the version is kept as it is"
                );
            }
            "turnus-v2" => {
                let rule = loaded.expect(name);
                assert_eq!(
                    (rule.name(), rule.info().version.as_str()),
                    ("turnus", "2.0.0")
                );
            }
            other => panic!("guest `{other}` has no test: add it to this list"),
        }
    }
}

/// A fresh, empty folder in the system's temporary directory.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("invalidator-engine-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- batches ----------------------------------------------------------------

/// A batch gives the union of what its commits give one by one, for every
/// example rule, from the sample commits of every seed.
#[test]
fn a_batch_gives_what_its_commits_give_one_by_one() {
    let set = rules(&[
        guests::DEALERSHIP,
        guests::HEDGE,
        guests::TURNUS,
        guests::POS,
    ]);
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../example-rules/commits.jsonl"
    ))
    .unwrap();
    let mut commits: Vec<_> = sample.lines().map(|l| parse_json(l).unwrap()).collect();
    // One source for all, so that the batch is laid out as one commit.
    for c in &mut commits {
        c.source = None;
    }
    let mut one_by_one = Outcome::default();
    for c in &commits {
        let o = set.evaluate(c);
        one_by_one.targets.merge(o.targets);
        one_by_one.failures.extend(o.failures);
    }
    let batch = set.evaluate_batch(&commits);
    assert_eq!(batch.targets, one_by_one.targets);
    let names = |o: &Outcome| {
        let mut n: Vec<String> = o.failures.iter().map(|f| f.rule.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&batch), names(&one_by_one));
    assert!(!batch.failures.is_empty(), "the sample has failing commits");
}

/// When a rule fails on a batch, it is run commit by commit: its fallback
/// stands in only for the commit it fails on.
#[test]
fn a_rule_failing_on_a_batch_falls_back_only_for_the_failing_commit() {
    let set = rules(&[guests::TURNUS]);
    let good = parse_json(
        r#"{"txn":"a","writes":[{"table":"kinder","op":"insert","key":{"id":1},"after":{"id":1,"turnus_id":4}}]}"#,
    )
    .unwrap();
    let bad = parse_json(
        r#"{"txn":"b","writes":[{"table":"notizen","op":"insert","key":{"id":2},"after":{"id":2}}]}"#,
    )
    .unwrap();
    let o = set.evaluate_batch(&[good, bad]);
    assert_eq!(keys(&o), ["turnus_data_4"]);
    assert_eq!(patterns(&o), ["turnus_data_*", "user_profile_*"]);
    assert_eq!(errors(&o).len(), 1);
    assert_eq!(o.failures[0].rule, "turnus");
}
