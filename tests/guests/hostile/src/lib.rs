//! A rule that misbehaves on purpose, to show the sandbox contains it. It
//! uses `std` (the SDK's `std` feature), so it also shows that the WASI the
//! host provides to such rules gives them nothing.
//! What it does depends on the table of the first write:
//!
//! - `loop`: spins forever.
//! - `grab`: allocates until memory runs out.
//! - `trap`: panics.
//! - `fail`: returns an error.
//! - `log`: logs a line and returns key `logged`.
//! - `spam`: logs column `n` lines of 4 KiB each, and returns key `spammed`.
//! - `emit`: for each write to `emit`, returns column `n` distinct keys of
//!   column `len` bytes each, each starting with the write's `id`.
//! - `bomb`: returns column `n` distinct patterns of column `stars` runs
//!   of `*a` each: expensive to match against every key.
//! - `empty`: returns an empty key, pattern and tag, and key `fine`.
//! - `inject`: logs, and then fails with, text holding a newline and a
//!   terminal escape sequence.
//! - `escape`: tries the clock, randomness, environment, arguments and the
//!   filesystem, and returns one key per thing it observed, so a test can
//!   check it saw nothing and the same thing each time.
//! - anything else: key `ok:{table}`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use invalidator_rules::prelude::*;

/// The hostile rule.
pub struct Hostile;

impl Rule for Hostile {
    fn describe() -> RuleInfo {
        RuleInfo::new("hostile", "0.0.1").fallback([Target::key("hostile:fallback")])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        let table = commit.writes().next().map_or("", |w| w.table());
        match table {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grab" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("hostile rule panics on purpose"),
            "fail" => return Err(RuleError::other("refusing on purpose")),
            "log" => {
                log(Level::Warn, "hello from the hostile rule");
                out.key("logged");
            }
            "spam" => {
                let n = commit
                    .writes()
                    .next()
                    .map_or(Ok(None), |w| w.integer("n"))?;
                let line = "x".repeat(4096);
                for _ in 0..n.unwrap_or(0) {
                    log(Level::Info, &line);
                }
                out.key("spammed");
            }
            "emit" => {
                for w in commit.writes().filter(|w| w.table() == "emit") {
                    let n = w.integer("n")?.unwrap_or(0);
                    let len = w.integer("len")?.unwrap_or(0) as usize;
                    let id = w.value("id")?;
                    for i in 0..n {
                        let mut key = format!("{id}:{i}:");
                        key.extend(core::iter::repeat_n('k', len.saturating_sub(key.len())));
                        out.key(key);
                    }
                }
            }
            "bomb" => {
                let w = commit.writes().next().expect("a write");
                let n = w.integer("n")?.unwrap_or(0);
                let stars = w.integer("stars")?.unwrap_or(0) as usize;
                for i in 0..n {
                    out.pattern(format!("{}{i}", "*a".repeat(stars)));
                }
            }
            "empty" => {
                out.key("").pattern("").tag("").key("fine");
            }
            "inject" => {
                log(Level::Warn, "innocent\n\x1b[31mFORGED log line");
                return Err(RuleError::other("bad\n\x1b[2Jcleared"));
            }
            "escape" => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                out.key(format!("clock:{now}"));
                out.key(format!("hash:{}", RandomState::new().hash_one(42u32)));
                out.key(format!("env:{}", std::env::vars().count()));
                out.key(format!("args:{}", std::env::args().count()));
                let fs = match std::fs::read_dir("/") {
                    Ok(_) => "open",
                    Err(_) => "denied",
                };
                out.key(format!("fs:{fs}"));
            }
            other => {
                out.key(format!("ok:{other}"));
            }
        }
        Ok(())
    }
}

export_rule!(Hostile);
