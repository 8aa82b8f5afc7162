//! Hot reload: rule files changed, broken, clashing or removed in a watched
//! folder, with real components built by the test build.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use invalidator::reload::{Catalog, Reloader};
use invalidator::rules::{Runtime, SandboxConfig};
use invalidator_tests::guests;

fn folder(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("invalidator-reload-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a file the way a deploy should: a temporary name, then a rename.
fn deploy(from: &str, to: &Path) {
    let tmp = to.with_file_name(format!(
        ".{}.tmp",
        to.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

fn names(catalog: &Catalog) -> Vec<String> {
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
    let mut catalog = Catalog::new(runtime(), &dir);
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
    let mut catalog = Catalog::new(runtime(), &dir);
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
    deploy(guests::TURNUS, &dir.join("turnus.shadow.wasm"));
    std::fs::copy(guests::DEALERSHIP, dir.join(".dealership.wasm.tmp.wasm")).unwrap();
    let mut catalog = Catalog::new(runtime(), &dir);
    let refresh = catalog.refresh();
    assert!(refresh.set.is_none() && refresh.loaded.is_empty());
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
    let mut catalog = Catalog::new(runtime(), &dir);
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
    let reloader = Reloader::watch(Catalog::new(runtime(), &dir), move |set| {
        let names: Vec<String> = set.rules().iter().map(|r| r.name().to_owned()).collect();
        let _ = tx.send(names);
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
}
