//! Hot reload: rule files changed, broken, clashing or removed in a watched
//! folder, with real components built by the test build.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use std::sync::Arc;

use invalidator::pipeline::{Invalidator, PipelineConfig, RollbackPolicy};
use invalidator::reload::{Reloader, RuleFolder};
use invalidator::rules::{LoadedRule, RuleSet, Runtime, SandboxConfig};
use invalidator::sink::{MemoryStore, Store};
use invalidator_tests::{deploy, fresh_dir, guests};

fn folder(name: &str) -> PathBuf {
    fresh_dir(&format!("reload-{name}"))
}

fn names(catalog: &RuleFolder) -> Vec<String> {
    catalog.rules().map(|(_, r)| r.name().to_owned()).collect()
}

fn runtime() -> Runtime {
    Runtime::new(SandboxConfig::default()).unwrap()
}

#[test]
fn a_changed_file_takes_over_and_a_broken_one_never_does() {
    let dir = folder("change");
    let file = dir.join("rule.wasm");
    deploy(guests::TURNUS, &file);
    let mut catalog = RuleFolder::new(runtime(), &dir);
    let first = catalog.refresh();
    assert_eq!(first.set.unwrap().rules()[0].name(), "turnus");

    // Unchanged: nothing to do.
    let again = catalog.refresh();
    assert!(again.set.is_none() && again.loaded.is_empty() && again.rejected.is_empty());

    // Half written, or not a component at all: refused, turnus stays.
    std::fs::write(&file, b"\0asm\x0d\0\x01\0 truncated").unwrap();
    let broken = catalog.refresh();
    assert!(broken.set.is_none());
    assert_eq!(broken.rejected.len(), 1);
    assert!(
        broken.rejected[0].1.contains("rule.wasm"),
        "{}",
        broken.rejected[0].1
    );
    assert_eq!(names(&catalog), ["turnus"]);

    // A good new version takes over.
    deploy(guests::DEALERSHIP, &file);
    let changed = catalog.refresh();
    assert_eq!(changed.loaded, std::slice::from_ref(&file));
    assert_eq!(changed.set.unwrap().rules()[0].name(), "dealership");

    // Removed: its rule leaves service.
    std::fs::remove_file(&file).unwrap();
    let removed = catalog.refresh();
    assert_eq!(removed.removed, [file]);
    assert!(removed.set.unwrap().rules().is_empty());
}

#[test]
fn a_name_clash_keeps_the_running_set() {
    let dir = folder("clash");
    deploy(guests::TURNUS, &dir.join("a.wasm"));
    let mut catalog = RuleFolder::new(runtime(), &dir);
    assert!(catalog.refresh().set.is_some());
    deploy(guests::TURNUS, &dir.join("b.wasm"));
    let clash = catalog.refresh();
    assert!(clash.set.is_none());
    assert_eq!(clash.rejected.len(), 1);
    assert!(
        clash.rejected[0].1.contains("turnus"),
        "{}",
        clash.rejected[0].1
    );
    assert_eq!(names(&catalog), ["turnus"]);
}

#[test]
fn shadow_and_temporary_files_are_not_rules_in_service() {
    let dir = folder("shadow");
    deploy(guests::TURNUS_V2, &dir.join("turnus.shadow.wasm"));
    std::fs::copy(guests::DEALERSHIP, dir.join(".dealership.wasm.tmp.wasm")).unwrap();
    let mut catalog = RuleFolder::new(runtime(), &dir);
    let refresh = catalog.refresh();
    assert!(refresh.set.is_none(), "no rule in service");
    let shadows = refresh.shadows.expect("the shadow is loaded as a shadow");
    assert_eq!(shadows.rules()[0].info().version, "2.0.0");
    assert_eq!(catalog.shadows().count(), 1);
}

/// A shadow runs beside the live rule of the same name on the same
/// commits: differences are counted, its targets never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_is_compared_never_applied_and_promotion_replaces_the_live_rule() {
    let runtime = runtime();
    let load = |path: &str| {
        let rule = LoadedRule::load(&runtime, Path::new(path)).unwrap();
        Arc::new(RuleSet::new(vec![rule]).unwrap())
    };
    let memory = Arc::new(MemoryStore::new());
    let invalidator = Invalidator::start(
        load(guests::TURNUS),
        Store::Memory(memory.clone()),
        PipelineConfig::default(),
    );
    invalidator.set_shadows(Some(load(guests::TURNUS_V2)));
    for t in 1..=3 {
        memory.set(&format!("turnus_data_{t}"), b"v", None, &[]);
        memory.set(&format!("page:{t}"), b"v", None, &[format!("turnus:{t}")]);
    }
    let geld = |tx: &mut invalidator::source::Transaction<'_>, t: i64| {
        tx.insert("geld", [("id", t)], [("id", t), ("turnus_id", t)]);
    };
    for t in 1..=2 {
        let mut tx = invalidator.begin(format!("a-{t}"));
        geld(&mut tx, t);
        tx.commit();
    }
    invalidator.flush().await;
    let stats = invalidator.stats();
    assert_eq!(
        (stats.shadowed, stats.shadow_differences),
        (2, 2),
        "v2 adds a tag each time"
    );
    assert!(memory.get("turnus_data_1").is_none() && memory.get("turnus_data_2").is_none());
    assert!(
        memory.get("page:1").is_some(),
        "the shadow's tag is never applied"
    );

    // Promote: v2 goes live, the shadow goes away.
    invalidator.swap_rules(load(guests::TURNUS_V2));
    invalidator.set_shadows(None);
    let mut tx = invalidator.begin("b");
    geld(&mut tx, 3);
    tx.commit();
    invalidator.flush().await;
    let stats = invalidator.stats();
    assert_eq!(stats.shadowed, 2, "no shadow any more");
    assert!(
        memory.get("page:3").is_none(),
        "v2's tag is applied now that it is live"
    );
    assert!(memory.get("page:1").is_some());
}

/// A swap is ordered with the commits: those handed over before
/// `swap_rules` are evaluated by the old set, those after it by the new
/// one, even when both would fall in one batch (a linger holds the batch
/// open while the swap happens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_applies_from_the_next_commit_handed_over() {
    let runtime = runtime();
    let load = |path: &str| {
        let rule = LoadedRule::load(&runtime, Path::new(path)).unwrap();
        Arc::new(RuleSet::new(vec![rule]).unwrap())
    };
    let memory = Arc::new(MemoryStore::new());
    let invalidator = Invalidator::start(
        load(guests::TURNUS),
        Store::Memory(memory.clone()),
        PipelineConfig {
            linger: Duration::from_millis(300),
            ..PipelineConfig::default()
        },
    );
    for t in 1..=2 {
        memory.set(&format!("page:{t}"), b"v", None, &[format!("turnus:{t}")]);
    }
    let geld = |t: i64| {
        let mut tx = invalidator.begin(format!("g-{t}"));
        tx.insert("geld", [("id", t)], [("id", t), ("turnus_id", t)]);
        tx.commit();
    };
    geld(1);
    let v2 = load(guests::TURNUS_V2);
    let replaced = invalidator.swap_rules(v2.clone());
    assert_eq!(replaced.rules()[0].info().version, "1.0.0");
    assert!(
        Arc::ptr_eq(&invalidator.rule_set(), &v2),
        "in service once it returns"
    );
    geld(2);
    invalidator.flush().await;
    assert!(
        memory.get("page:1").is_some(),
        "commit 1 was handed over before the swap: version 1, which names no tag"
    );
    assert!(
        memory.get("page:2").is_none(),
        "commit 2 came after the swap: version 2's tag is applied"
    );
}

#[test]
fn a_version_failing_its_fixture_never_takes_over() {
    let dir = folder("fixture");
    let file = dir.join("turnus.wasm");
    let fixture = dir.join("turnus.test.jsonl");
    let case = |expect: &str| {
        format!(
            r#"{{"commit":{{"txn":"f","writes":[{{"table":"geld","op":"insert","key":{{"id":1}},"after":{{"id":1,"turnus_id":7}}}}]}},"expect":{expect}}}"#
        )
    };
    std::fs::write(&fixture, case(r#"{"keys":["turnus_data_8"]}"#) + "\n").unwrap();
    deploy(guests::TURNUS, &file);
    let mut catalog = RuleFolder::new(runtime(), &dir);
    let refused = catalog.refresh();
    assert!(refused.set.is_none());
    let reason = &refused.rejected[0].1;
    assert!(
        reason.contains("turnus.test.jsonl") && reason.contains("line 1"),
        "{reason}"
    );
    assert!(
        reason.contains("turnus_data_7"),
        "says what it got: {reason}"
    );

    // A line of `run` output, pasted as it is, passes.
    std::fs::write(
        &fixture,
        case(r#"{"txn":"f","keys":["turnus_data_7"],"patterns":[],"tags":[],"errors":[]}"#) + "\n",
    )
    .unwrap();
    // Same bytes as before, but the file was refused, so it is tried again.
    let accepted = catalog.refresh();
    assert!(accepted.set.is_some(), "{:?}", accepted.rejected);
}

#[test]
fn the_watcher_puts_a_renamed_file_in_service() {
    let dir = folder("watch");
    let (tx, rx) = mpsc::channel();
    let reloader = Reloader::watch(RuleFolder::new(runtime(), &dir), move |change| {
        if let Some(set) = &change.set {
            let names: Vec<String> = set.rules().iter().map(|r| r.name().to_owned()).collect();
            let _ = tx.send(names);
        }
    })
    .unwrap();
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a swap after the rename");
    assert_eq!(first, ["turnus"]);
    deploy(guests::DEALERSHIP, &dir.join("turnus.wasm"));
    let second = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a swap after the change");
    assert_eq!(second, ["dealership"]);
    // A broken file: no swap.
    std::fs::write(dir.join("turnus.wasm"), b"garbage").unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a broken file never takes over"
    );
    assert!(reloader.refresh().set.is_none());
    assert!(reloader.refused() >= 1, "refusals are counted");
}

/// Reading a rule file (as the refresh itself does, or a backup, or an
/// operator's `sha256sum`) changes nothing, and sets off no refresh: the
/// watcher once heard the refresh's own reads and looked again, for ever,
/// twenty times a second.
#[test]
fn reading_the_rule_files_sets_off_no_refresh() {
    let dir = folder("quiet");
    let (tx, rx) = mpsc::channel();
    let reloader = Reloader::watch(RuleFolder::new(runtime(), &dir), move |change| {
        if change.set.is_some() {
            let _ = tx.send(());
        }
    })
    .unwrap();
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a swap after the deploy");
    // Let the deploy's own events and the refresh it set off pass.
    std::thread::sleep(Duration::from_millis(500));
    let settled = reloader.looks();
    assert!(settled >= 1, "the deploy was looked at");
    for _ in 0..5 {
        std::fs::read(dir.join("turnus.wasm")).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        reloader.looks(),
        settled,
        "reads of the rule files, the refresh's own included, set off no refresh"
    );
    // A write still does.
    deploy(guests::DEALERSHIP, &dir.join("turnus.wasm"));
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a swap after the change");
    assert!(reloader.looks() > settled);
}

/// A promoted version that fails on too many commits within its window is
/// replaced by the version before it, and refused if deployed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_failing_too_often_is_rolled_back_and_stays_refused() {
    let runtime = runtime();
    let load = |path: &str| {
        let rule = LoadedRule::load(&runtime, Path::new(path)).unwrap();
        Arc::new(RuleSet::new(vec![rule]).unwrap())
    };
    let memory = Arc::new(MemoryStore::new());
    let config = PipelineConfig {
        rollback: Some(RollbackPolicy {
            window: Duration::from_secs(60),
            min_commits: 5,
            max_failure_rate: 0.5,
        }),
        ..PipelineConfig::default()
    };
    let invalidator =
        Invalidator::start(load(guests::TURNUS), Store::Memory(memory.clone()), config);
    let version = |inv: &Invalidator| inv.rule_set().rules()[0].info().version.clone();
    let v2 = load(guests::TURNUS_V2);
    invalidator.swap_rules(v2.clone());
    assert_eq!(version(&invalidator), "2.0.0");
    // On probation for the window, since the swap.
    let states = invalidator.rule_states();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (name, hash, until) = &states.probation[0];
    assert_eq!(
        (name.as_str(), hash.as_str()),
        ("turnus", v2.rules()[0].hash())
    );
    assert!(
        *until > now_ms + 50_000 && *until <= now_ms + 60_000,
        "{until} vs {now_ms}"
    );
    assert!(states.swapped_at["turnus"] <= now_ms);
    let commit = |t: i64| {
        let mut tx = invalidator.begin(format!("t-{t}"));
        tx.insert("geld", [("id", t)], [("id", t), ("turnus_id", t)]);
        tx.commit();
    };
    // Version 2 fails on turnus ids above 1000.
    for t in 2001..=2010 {
        commit(t);
    }
    invalidator.flush().await;
    let stats = invalidator.stats();
    assert_eq!(stats.rollbacks, 1, "{stats:?}");
    assert_eq!(version(&invalidator), "1.0.0", "version 1 restored");
    let states = invalidator.rule_states();
    let back = &states.rolled_back[0];
    assert_eq!(
        (
            back.name.as_str(),
            back.version.as_str(),
            back.restored.as_deref()
        ),
        ("turnus", "2.0.0", Some("1.0.0"))
    );
    assert!(states.probation.is_empty(), "{states:?}");

    // Version 1 handles what version 2 could not.
    let failures = stats.failed_rule_calls;
    memory.set("turnus_data_5000", b"v", None, &[]);
    commit(5000);
    invalidator.flush().await;
    assert!(memory.get("turnus_data_5000").is_none());
    assert_eq!(invalidator.stats().failed_rule_calls, failures);

    // The rolled-back build is refused until its file changes.
    invalidator.swap_rules(v2);
    assert_eq!(version(&invalidator), "1.0.0");
}
