//! The compile cache of rule components: a restart loads compiled code
//! instead of compiling again; an entry of another engine, of another
//! rule, truncated or random is refused and rebuilt; a folder others can
//! write, or a key others can read, is refused, naming it.

use std::path::Path;

use invalidator::commit::parse_json;
use invalidator::rules::{RuleSet, Runtime, SandboxConfig};
use invalidator_tests::guests;

fn cache_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("invalidator-cc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A restart (a new runtime on the same folder) loads the compiled code
/// instead of compiling again, and the rule still works.
#[test]
fn the_compile_cache_is_used_on_restart() {
    let dir = cache_dir("restart");
    let first = Runtime::with_compile_cache(SandboxConfig::default(), &dir).unwrap();
    let rule = invalidator::rules::LoadedRule::load(&first, Path::new(guests::TURNUS)).unwrap();
    let cache = first.compile_cache().unwrap();
    assert_eq!((cache.hits(), cache.misses()), (0, 1));
    assert!(cache.entry(rule.hash()).is_file(), "entry written");
    assert_eq!(rule.hash().len(), 64);

    let second = Runtime::with_compile_cache(SandboxConfig::default(), &dir).unwrap();
    let again = invalidator::rules::LoadedRule::load(&second, Path::new(guests::TURNUS)).unwrap();
    let cache = second.compile_cache().unwrap();
    assert_eq!((cache.hits(), cache.misses()), (1, 0));
    assert_eq!(again.hash(), rule.hash());
    let set = RuleSet::new(vec![again]).unwrap();
    let commit = parse_json(
        r#"{"txn":"c","writes":[{"table":"geld","op":"insert","key":{"id":1},"after":{"id":1,"turnus_id":9}}]}"#,
    )
    .unwrap();
    let o = set.evaluate(&commit);
    assert_eq!(o.targets.keys.iter().collect::<Vec<_>>(), ["turnus_data_9"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An entry that does not load with this engine (from another wasmtime,
/// or damaged) is ignored, never used, and replaced by a fresh compile.
/// Entries of other engines are not even looked up: the engine's
/// compatibility key is part of every entry's name.
#[test]
fn a_compile_cache_entry_that_does_not_fit_this_engine_is_ignored() {
    let dir = cache_dir("foreign");
    let runtime = Runtime::with_compile_cache(SandboxConfig::default(), &dir).unwrap();
    let bytes = std::fs::read(guests::TURNUS).unwrap();
    let hash = {
        // Learn the hash and the entry name, then damage the entry.
        let rule =
            invalidator::rules::LoadedRule::from_bytes(&runtime, Path::new("t"), &bytes).unwrap();
        rule.hash().to_owned()
    };
    let entry = runtime.compile_cache().unwrap().entry(&hash);
    std::fs::write(&entry, b"\x7fELF not really a compiled component").unwrap();
    let fresh = Runtime::with_compile_cache(SandboxConfig::default(), &dir).unwrap();
    let rule = invalidator::rules::LoadedRule::from_bytes(&fresh, Path::new("t"), &bytes).unwrap();
    let cache = fresh.compile_cache().unwrap();
    assert_eq!(
        (cache.hits(), cache.misses()),
        (0, 1),
        "the damaged entry was not used"
    );
    assert_eq!(rule.name(), "turnus");
    assert!(
        std::fs::read(&entry).unwrap().len() > 1000,
        "and was replaced"
    );
    let name = entry.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with(&hash) && name.ends_with(".cwasm") && name.len() > hash.len() + 16,
        "{name}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Loads `guest` through a runtime on the cache folder `dir`, returning the
/// rule and the cache's (hits, misses, rejected).
fn load_cached(dir: &Path, guest: &str) -> (invalidator::rules::LoadedRule, (u64, u64, u64)) {
    let runtime = Runtime::with_compile_cache(SandboxConfig::default(), dir).unwrap();
    let rule = invalidator::rules::LoadedRule::load(&runtime, Path::new(guest)).unwrap();
    let c = runtime.compile_cache().unwrap();
    (rule, (c.hits(), c.misses(), c.rejected()))
}

/// Copying one rule's compiled entry over another's must not make the
/// second rule's file run the first rule's code: the entry is bound to the
/// component it was compiled from, so it is refused and rebuilt.
#[test]
fn another_rules_compiled_entry_is_refused() {
    let dir = cache_dir("swap");
    let (turnus, _) = load_cached(&dir, guests::TURNUS);
    let (dealership, _) = load_cached(&dir, guests::DEALERSHIP);
    let runtime = Runtime::with_compile_cache(SandboxConfig::default(), &dir).unwrap();
    let cache = runtime.compile_cache().unwrap();
    std::fs::copy(cache.entry(turnus.hash()), cache.entry(dealership.hash())).unwrap();

    let (again, (hits, misses, rejected)) = load_cached(&dir, guests::DEALERSHIP);
    assert_eq!(again.name(), "dealership", "the file's own code runs");
    assert_eq!((hits, misses, rejected), (0, 1, 1));
    let (_, counts) = load_cached(&dir, guests::DEALERSHIP);
    assert_eq!(counts, (1, 0, 0), "the entry was rebuilt and is used again");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Truncated entries and random bytes, with or without a plausible
/// header, are refused, counted and rebuilt; never handed to wasmtime.
#[test]
fn truncated_and_random_entries_are_refused() {
    let dir = cache_dir("damaged");
    let (rule, _) = load_cached(&dir, guests::TURNUS);
    let runtime = Runtime::with_compile_cache(SandboxConfig::default(), &dir).unwrap();
    let entry = runtime.compile_cache().unwrap().entry(rule.hash());
    let good = std::fs::read(&entry).unwrap();
    let mut random = vec![0u8; 4096];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let with_header = [&good[..40], &random[..]].concat();
    for (what, bytes) in [
        ("truncated", &good[..good.len() / 2]),
        ("header only", &good[..40]),
        ("random", &random[..]),
        ("random after a header", &with_header[..]),
        ("empty", &[][..]),
    ] {
        std::fs::write(&entry, bytes).unwrap();
        let (again, counts) = load_cached(&dir, guests::TURNUS);
        assert_eq!(again.name(), "turnus", "{what}");
        assert_eq!(counts, (0, 1, 1), "{what}: refused, counted and rebuilt");
        assert_eq!(std::fs::read(&entry).unwrap().len(), good.len(), "{what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A cache folder that group or others can write is refused, naming it;
/// and so is a key that others can read.
#[test]
fn a_cache_folder_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = cache_dir("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Runtime::with_compile_cache(SandboxConfig::default(), &dir)
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&*dir.to_string_lossy()) && msg.contains("group or others can write it"),
        "{msg}"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    load_cached(&dir, guests::TURNUS);
    let key = dir.join("key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "the key is private"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let msg = Runtime::with_compile_cache(SandboxConfig::default(), &dir)
        .err()
        .expect("refused")
        .to_string();
    assert!(msg.contains("key") && msg.contains("644"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}
