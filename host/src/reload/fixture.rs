//! Fixtures: `NAME.test.jsonl` beside `NAME.wasm`, one case per line:
//! `{"commit": <a commit, as in the events format>, "expect": <targets, as
//! `invalidator run` prints them>}`. Of `expect`, the `keys`, `patterns`
//! and `tags` are compared (missing ones are empty); other fields, such as
//! `txn` and `errors`, are ignored, so a line of `run` output can be pasted
//! as it is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::commit::parse_json;
use crate::rules::{LoadedRule, RuleSet};
use crate::targets::TargetSet;

#[derive(Deserialize)]
struct Case {
    commit: serde_json::Value,
    expect: Expected,
}

#[derive(Deserialize)]
struct Expected {
    #[serde(default)]
    keys: BTreeSet<String>,
    #[serde(default)]
    patterns: BTreeSet<String>,
    #[serde(default)]
    tags: BTreeSet<String>,
}

/// The fixture file of a rule file: `dir/NAME.wasm` → `dir/NAME.test.jsonl`.
pub fn fixture_path(rule_file: &Path) -> PathBuf {
    rule_file.with_extension("test.jsonl")
}

/// Runs the fixture of `rule`'s file, if there is one. The error names the
/// fixture line and what differed.
pub fn check(rule: &LoadedRule) -> Result<(), String> {
    let path = fixture_path(rule.path());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read fixture `{}`: {e}", path.display())),
    };
    let set = RuleSet::new(vec![rule.clone()]).map_err(|e| e.to_string())?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("fixture `{}` line {}", path.display(), i + 1);
        let case: Case = serde_json::from_str(line).map_err(|e| format!("{at}: {e}"))?;
        let commit = parse_json(&case.commit.to_string()).map_err(|e| format!("{at}: {e}"))?;
        let got = set.evaluate(&commit).targets;
        let want = TargetSet {
            keys: case.expect.keys,
            patterns: case.expect.patterns,
            tags: case.expect.tags,
        };
        if got != want {
            return Err(format!(
                "{at}: expected {}, got {}",
                serde_json::to_string(&want).unwrap_or_default(),
                serde_json::to_string(&got).unwrap_or_default()
            ));
        }
    }
    Ok(())
}
